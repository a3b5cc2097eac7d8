"""The trainer: deep supervision with a persistent carry, halted rows refilled with new puzzles,
stablemax CE + halting BCE, AdamW with warmup and cosine decay, an EMA copy used for evaluation
and saving, bf16 autocast and torch.compile on CUDA, resumable.

One optimizer step = one supervision step for every row of the batch. A puzzle stays in its row
for several consecutive optimizer steps until it halts (halting head, or the step limit).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trm_core.checkpoint import save_checkpoint
from trm_core.data import PuzzleSet, Sampler
from trm_core.evaluate import evaluate
from trm_core.losses import step_loss
from trm_core.model import TRM, State
from trm_core.resume import load_resume, resume_exists, save_resume
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class EMA:
    """Exponential moving average of a model's weights: ema <- ema + (1 - rate)(w - ema)."""

    def __init__(self, model: nn.Module, rate: float) -> None:
        self.rate = rate
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params: list[torch.Tensor] = list(self.model.parameters())
        torch._foreach_lerp_(ema_params, [p.detach() for p in model.parameters()], 1 - self.rate)


def lr_at(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to `base`, then cosine down to base * min_ratio at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class Carry:
    """Per-row training state kept across optimizer steps, all on the device."""

    state: State
    inputs: torch.Tensor  # (B, S) long tokens
    labels: torch.Tensor  # (B, S) long tokens
    steps: torch.Tensor  # (B,) supervision steps taken by the row's current puzzle
    halted: torch.Tensor  # (B,) bool: refill this row before the next step


class Trainer:
    """Owns model, EMA, optimizer, carry and sampler for one run."""

    def __init__(self, run: RunConfig, task: Task, train_set: PuzzleSet,
                 eval_set: PuzzleSet | None) -> None:
        self.run, self.cfg, self.task = run, run.train, task
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)
        self.device = resolve_device(self.cfg.device)
        self.model = TRM(run.model).to(self.device)
        self.ema = EMA(self.model, self.cfg.ema_rate) if self.cfg.ema_rate > 0 else None
        self.optimizer = self._build_optimizer()
        self.sampler = Sampler(train_set, task, self.cfg.seed, self.cfg.augment)
        self.train_set, self.eval_set = train_set, eval_set
        self.autocast = self._autocast_dtype()
        self.forward = self._compiled_forward()
        self.uses_cuda_graphs = (self.device.type == "cuda"
                                 and self.cfg.compile in ("reduce-overhead", "max-autotune"))
        self.step = 0
        self.best_exact = -1.0
        self.history: list[dict[str, Any]] = []
        self.elapsed_s = 0.0
        self.carry = self._empty_carry()
        self.out_dir = Path(self.cfg.out_dir)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.cfg
        puzzle = [p for n, p in self.model.named_parameters() if n.startswith("puzzle_embedding")]
        rest = [p for n, p in self.model.named_parameters() if not n.startswith("puzzle_embedding")]
        groups: list[dict[str, Any]] = [{"params": rest, "lr": cfg.lr,
                                         "weight_decay": cfg.weight_decay, "base_lr": cfg.lr}]
        if puzzle:
            groups.append({"params": puzzle, "lr": cfg.puzzle_emb_lr, "base_lr": cfg.puzzle_emb_lr,
                           "weight_decay": cfg.puzzle_emb_weight_decay})
        fused = self.device.type == "cuda"
        return torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), fused=fused)

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.cfg.autocast == "bfloat16":
            return torch.bfloat16
        if self.cfg.autocast == "auto" and self.device.type == "cuda":
            return torch.bfloat16
        return None

    def _compiled_forward(self) -> Callable[..., Any]:
        mode = self.cfg.compile
        if mode == "off" or (mode == "auto" and self.device.type != "cuda"):
            return self._forward_loss
        compile_mode = None if mode in ("auto", "default") else mode
        return torch.compile(self._forward_loss, mode=compile_mode)

    def _forward_loss(self, state: State, inputs: torch.Tensor, labels: torch.Tensor) -> Any:
        """Embed, one supervision step, loss: the part worth compiling."""
        with torch.autocast(self.device.type, self.autocast, enabled=self.autocast is not None):
            out = self.model(state, inputs)
        loss = step_loss(out.logits, out.halt_logits, labels, self.cfg.loss,
                         self.cfg.halt_loss_weight)
        return out, loss

    def _empty_carry(self) -> Carry:
        batch, seq = self.cfg.batch_size, self.run.model.seq_len
        zeros = torch.zeros(batch, seq, dtype=torch.long, device=self.device)
        return Carry(self.model.initial_state(batch, self.device), zeros, zeros.clone(),
                     torch.zeros(batch, dtype=torch.long, device=self.device),
                     torch.ones(batch, dtype=torch.bool, device=self.device))

    def _refill(self) -> None:
        """Rows that halted last step get a fresh puzzle and a fresh carry."""
        carry = self.carry
        rows = carry.halted.nonzero().squeeze(1)
        if len(rows) == 0:
            return
        inputs, labels = self.sampler.draw(len(rows))
        carry.inputs[rows] = torch.from_numpy(inputs).to(self.device)
        carry.labels[rows] = torch.from_numpy(labels).to(self.device)
        carry.state = self.model.reset_rows(carry.state, carry.halted)
        carry.steps = torch.where(carry.halted, 0, carry.steps)

    def _update_halting(self, halt_logits: torch.Tensor) -> None:
        """The reference's training halting: the step limit, or the halt logit > 0, except that
        with probability `halt_exploration_prob` a row must first reach a random step in
        [2, N_sup]."""
        carry, limit = self.carry, self.run.model.max_supervision_steps
        carry.steps = carry.steps + 1
        halted = (carry.steps >= limit) | (halt_logits.detach() > 0)
        explore = torch.rand_like(halt_logits) < self.cfg.halt_exploration_prob
        floor = torch.randint_like(carry.steps, 2, limit + 1)
        carry.halted = halted & (carry.steps >= torch.where(explore, floor, 0))

    def train_step(self) -> dict[str, float]:
        """One optimizer step over the batch; returns scalar metrics."""
        self._refill()
        lr_scale = lr_at(self.step, 1.0, self.cfg.warmup_steps, self.cfg.total_steps,
                         self.cfg.lr_min_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_scale
        if self.uses_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        out, loss = self.forward(self.carry.state, self.carry.inputs, self.carry.labels)
        (loss.total / self.cfg.batch_size).backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        # CUDA-graph outputs live in buffers the next replay overwrites: keep a copy.
        self.carry.state = (State(out.state.y.clone(), out.state.z.clone())
                            if self.uses_cuda_graphs else out.state)
        self._update_halting(out.halt_logits)
        self.step += 1
        batch = self.cfg.batch_size
        return {"loss": loss.total.item() / batch, "answer_loss": loss.answer.item() / batch,
                "halt_loss": loss.halting.item() / batch,
                "cell_acc": loss.cell_correct.mean().item(),
                "exact": loss.exact.float().mean().item(), "lr": self.cfg.lr * lr_scale,
                "epochs": float(self.sampler.epochs)}

    @property
    def eval_model(self) -> TRM:
        return self.ema.model if self.ema is not None else self.model  # type: ignore[return-value]

    def evaluate(self) -> dict[str, Any]:
        """Score the EMA model on the evaluation set at full depth (all steps, as the paper)."""
        assert self.eval_set is not None
        subset = self.eval_set.head(self.cfg.eval_puzzles)
        return evaluate(self.eval_model, self.task, subset, halting="never",
                        batch_size=self.cfg.eval_batch_size, autocast_dtype=self.autocast)

    def fit(self, on_log: Callable[[dict[str, float]], None] | None = None,
            on_eval: Callable[[dict[str, Any]], None] | None = None,
            log_every: int = 20) -> dict[str, Any]:
        """Train to `total_steps` (or the time limit); evaluates, keeps the best, saves resume
        state. Returns the last evaluation report (empty without an eval set)."""
        report: dict[str, Any] = {}
        started = time.perf_counter() - self.elapsed_s
        window_start, window_steps = time.perf_counter(), 0
        self.model.train()
        while self.step < self.cfg.total_steps:
            metrics = self.train_step()
            window_steps += 1
            self.elapsed_s = time.perf_counter() - started
            if on_log and (self.step % log_every == 0 or self.step == self.cfg.total_steps):
                now = time.perf_counter()
                metrics["steps_per_s"] = window_steps / max(now - window_start, 1e-9)
                metrics["step"], metrics["elapsed_s"] = self.step, self.elapsed_s
                on_log(metrics)
                window_start, window_steps = now, 0
            due = self.step % self.cfg.eval_every == 0 or self.step == self.cfg.total_steps
            out_of_time = bool(self.cfg.time_limit_s) and self.elapsed_s >= self.cfg.time_limit_s
            if due and self.eval_set is not None:
                report = self._eval_and_keep_best(on_eval)
            if due or out_of_time:
                self.save_resume()
            if out_of_time:
                log.info("time limit %.0fs reached at step %d", self.cfg.time_limit_s, self.step)
                break
        return report

    def _eval_and_keep_best(self, on_eval: Callable[[dict[str, Any]], None] | None
                            ) -> dict[str, Any]:
        report = self.evaluate()
        exact = report["overall"]["exact_accuracy"]
        point = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1),
                 "exact_accuracy": exact, "cell_accuracy": report["overall"]["cell_accuracy"]}
        self.history.append(point)
        if exact > self.best_exact:
            self.best_exact = exact
            self.save_checkpoint(self.out_dir / "best", report)
        if on_eval:
            on_eval({**report, "step": self.step, "best_exact": self.best_exact})
        return report

    def card(self, report: dict[str, Any] | None) -> dict[str, Any]:
        """The checkpoint card: what was trained, on what, for how long, and how well."""
        return {
            "name": self.cfg.name, "task": self.task.name, "step": self.step,
            "training": self.run.to_dict()["train"],
            "data": {"train": self.train_set.provenance,
                     "eval": self.eval_set.provenance if self.eval_set else None,
                     "epochs": self.sampler.epochs},
            "compute": {"device": str(self.device), "device_name": _device_name(self.device),
                        "train_seconds": round(self.elapsed_s, 1)},
            "evaluation": report or {}, "curve": self.history,
        }

    def save_checkpoint(self, stem: Path, report: dict[str, Any] | None = None) -> Path:
        return save_checkpoint(stem, self.eval_model, self.card(report))

    def save_resume(self) -> None:
        info = {"step": self.step, "best_exact": self.best_exact, "history": self.history,
                "elapsed_s": self.elapsed_s, "run": self.run.to_dict(),
                "sampler_epochs": self.sampler.epochs}
        ema_model = self.ema.model if self.ema is not None else None
        save_resume(self.out_dir / "resume", self.model, ema_model, self.optimizer, info,
                    self.cfg.resume_state_dtype, self.cfg.resume_shard_mb)

    def try_resume(self) -> bool:
        """Continue from `<out_dir>/resume.*` if present. The carry starts fresh (all rows
        refilled), which costs nothing measurable."""
        stem = self.out_dir / "resume"
        if not resume_exists(stem):
            return False
        saved = json.loads(stem.with_suffix(".json").read_text())
        if saved["run"]["model"] != self.run.to_dict()["model"]:
            raise ValueError(f"{stem}: saved model config differs from this run's; "
                             "use another train.out_dir or the same config")
        ema_model = self.ema.model if self.ema is not None else None
        info = load_resume(stem, self.model, ema_model, self.optimizer)
        self.step, self.best_exact = int(info["step"]), float(info["best_exact"])
        self.history, self.elapsed_s = info["history"], float(info["elapsed_s"])
        self.sampler.epochs = int(info.get("sampler_epochs", 0))
        log.info("resumed from %s at step %d", stem, self.step)
        return True


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "cpu"
