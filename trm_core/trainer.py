"""The trainer: deep supervision with a persistent carry, halted rows refilled with new puzzles,
stablemax CE + halting BCE, AdamW with warmup and cosine decay, sign-SGD for the puzzle
embeddings, an EMA copy used for evaluation and saving, bf16 autocast and torch.compile on
CUDA, data-parallel over torchrun ranks, resumable.

One optimizer step = one supervision step for every row of the batch. A puzzle stays in its row
for several consecutive optimizer steps until it halts (halting head, or the step limit).

Under torchrun (`trm_core.distributed`) every rank holds `batch_size / world_size` rows of the
global batch and draws them from its own sampler stream; DistributedDataParallel averages the
dense gradients, sign-SGD all-gathers the puzzle rows, and rank 0 alone logs, evaluates and
writes checkpoints and resume state.
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
from torch.nn.parallel import DistributedDataParallel

from trm_core import distributed
from trm_core.checkpoint import load_checkpoint, save_checkpoint
from trm_core.config import ModelConfig
from trm_core.data import TrainingData, TrainingSampler
from trm_core.distributed import Ranks, resolve_device
from trm_core.inference import (
    cpu_description,
    cpu_has_native_bf16,
)
from trm_core.losses import step_loss
from trm_core.model import TRM, State
from trm_core.optim import build_optimizers
from trm_core.resume import load_resume, resume_exists, save_resume
from trm_core.sign_sgd import SignSGD
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig

__all__ = ["EMA", "Carry", "Trainer", "local_batch_size", "lr_at", "resolve_device",
           "warm_start"]

log = logging.getLogger(__name__)
TrainData = TrainingData  # kept: the name callers import
PUZZLE_TABLE = "puzzle_embedding.weight"


class EMA:
    """Exponential moving average of a model's weights: ema <- ema + (1 - rate)(w - ema).

    Tensors in `shared` (the puzzle-embedding table) are not copied: the EMA model uses the live
    tensor, as the reference does (its EMA covers the trainable parameters; the embedding used
    at evaluation is the live one), so a 900,000 x 512 table is held once."""

    def __init__(self, model: nn.Module, rate: float, shared: tuple[torch.Tensor, ...] = ()
                 ) -> None:
        self.rate = rate
        memo: dict[int, Any] = {id(t): t for t in shared}
        self.model = copy.deepcopy(model, memo).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        pairs = [(e, p) for e, p in zip(self.model.parameters(), model.parameters(), strict=True)
                 if e is not p]
        torch._foreach_lerp_([e for e, _ in pairs], [p.detach() for _, p in pairs],
                             1 - self.rate)


def lr_at(step: int, base: float, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warmup to `base`, then cosine down to base * min_ratio at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def local_batch_size(global_batch: int, world_size: int) -> int:
    """Rows per rank; the global batch must split evenly so every rank steps the same rows."""
    if global_batch % world_size:
        raise ValueError(f"train.batch_size {global_batch} is not divisible by the "
                         f"{world_size} ranks of this launch; use a multiple of {world_size}")
    return global_batch // world_size


@dataclass
class Carry:
    """Per-row training state kept across optimizer steps, all on the device."""

    state: State
    inputs: torch.Tensor  # (B, S) long tokens
    labels: torch.Tensor  # (B, S) long tokens
    puzzle_ids: torch.Tensor  # (B,) long: the puzzle-embedding row of each row's puzzle
    steps: torch.Tensor  # (B,) supervision steps taken by the row's current puzzle
    halted: torch.Tensor  # (B,) bool: refill this row before the next step


def check_data(run: RunConfig, task: Task, train_set: TrainData) -> None:
    """Refuse data the model cannot take: another grid size or vocabulary, or whatever the
    data itself refuses (`TrainingData.check_run`: an ARC build whose identifier count differs
    from the puzzle-embedding table's rows)."""
    model = run.model
    if (task.seq_len, task.vocab_size) != (model.seq_len, model.vocab_size):
        raise ValueError(f"task {task.name!r} has seq_len {task.seq_len} and vocab_size "
                         f"{task.vocab_size}; the model config has {model.seq_len} and "
                         f"{model.vocab_size}")
    train_set.check_run(run)


def make_sampler(data: TrainData, task: Task, seed: int, augment: bool) -> TrainingSampler:
    """The data's own sampler (CSV sets: row by row with on-the-fly symmetries)."""
    return data.sampler(task, seed, augment)


class Trainer:
    """Owns model, EMA, optimizers, carry and sampler for one run (one rank of it)."""

    def __init__(self, run: RunConfig, task: Task, train_set: TrainData,
                 eval_set: TrainData | None, ranks: Ranks | None = None) -> None:
        self.run, self.cfg, self.task = run, run.train, task
        self.ranks = ranks or distributed.current()
        self.local_batch = local_batch_size(self.cfg.batch_size, self.ranks.world_size)
        check_data(run, task, train_set)
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        torch.manual_seed(self.cfg.seed)
        self.device = resolve_device(self.cfg.device, self.ranks.local_rank)
        self.model = TRM(run.model).to(self.device)
        self.sign_sgd = self._take_out_puzzle_table()
        shared = () if self.sign_sgd is None else (self.sign_sgd.weight,)
        self.ema = EMA(self.model, self.cfg.ema_rate, shared) if self.cfg.ema_rate > 0 else None
        self.optimizers = build_optimizers(self.model, self.cfg, self.device.type == "cuda")
        if self.ranks.distributed:  # halting exploration draws differ between ranks
            torch.manual_seed(self.cfg.seed + self.ranks.rank)
        self.sampler = make_sampler(train_set, task, self.cfg.seed + self.ranks.rank,
                                    self.cfg.augment)
        self.train_set, self.eval_set = train_set, eval_set
        self.autocast = self._autocast_dtype()
        self.net, self.forward = self._wrap_and_compile()
        self.uses_cuda_graphs = (self.device.type == "cuda"
                                 and self.cfg.compile in ("reduce-overhead", "max-autotune"))
        self.step = 0
        self.rewarm_from = 0  # warm starts repeat the learning-rate warmup from here
        self.best_exact = -1.0
        self.history: list[dict[str, Any]] = []
        self.elapsed_s = 0.0
        self._call_started = time.perf_counter()
        self.stop_requested = False  # stop cleanly after the current step (evaluate, save)
        self.carry = self._empty_carry()
        self.out_dir = Path(self.cfg.out_dir)

    def _take_out_puzzle_table(self) -> SignSGD | None:
        """The puzzle-embedding table leaves autograd, AdamW and DDP: sign-SGD owns it."""
        table = self.model.puzzle_embedding
        if table is None:
            return None
        table.weight.requires_grad_(False)
        return SignSGD(table.weight, self.cfg.puzzle_emb_lr, self.cfg.puzzle_emb_weight_decay)

    def _autocast_dtype(self) -> torch.dtype | None:
        choice = self.cfg.autocast
        on_cuda = self.device.type == "cuda"
        if choice == "bfloat16" or (choice in ("auto", "native") and on_cuda):
            return torch.bfloat16
        if choice == "native" and self.device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return None

    def _compile_mode(self) -> str | None:
        """torch.compile's mode, or None for eager ("off", or "auto" off CUDA)."""
        mode = self.cfg.compile
        if mode == "off" or (mode == "auto" and self.device.type != "cuda"):
            return None
        return "default" if mode == "auto" else mode

    def _wrap_and_compile(self) -> tuple[nn.Module, Callable[..., Any]]:
        """(the module the step calls, the step function). One process: the whole forward and
        loss are compiled, as the reference does. Several ranks: the TRM is compiled inside
        DDP (DDP's gradient hooks stay outside the graph, nanoGPT's arrangement) and the loss
        runs eagerly."""
        mode = self._compile_mode()
        if not self.ranks.distributed:
            forward = self._forward_loss
            return self.model, forward if mode is None else torch.compile(forward, mode=mode)
        inner = self.model if mode is None else torch.compile(self.model, mode=mode)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(inner, device_ids=device_ids), self._forward_loss

    def _forward_loss(self, state: State, inputs: torch.Tensor, labels: torch.Tensor,
                      puzzle_vectors: torch.Tensor | None) -> Any:
        """Embed, one supervision step, loss: the part worth compiling."""
        with torch.autocast(self.device.type, self.autocast, enabled=self.autocast is not None):
            out = self.net(state, inputs, puzzle_vectors=puzzle_vectors)
        loss = step_loss(out.logits, out.halt_logits, labels, self.cfg.loss,
                         self.cfg.halt_loss_weight, self.cfg.label_smoothing)
        return out, loss

    def _empty_carry(self) -> Carry:
        batch, seq = self.local_batch, self.run.model.seq_len
        zeros = torch.zeros(batch, seq, dtype=torch.long, device=self.device)
        return Carry(self.model.initial_state(batch, self.device), zeros, zeros.clone(),
                     torch.zeros(batch, dtype=torch.long, device=self.device),
                     torch.zeros(batch, dtype=torch.long, device=self.device),
                     torch.ones(batch, dtype=torch.bool, device=self.device))

    def _refill(self) -> None:
        """Rows that halted last step get a fresh puzzle (and its puzzle id) and a fresh
        carry."""
        carry = self.carry
        rows = carry.halted.nonzero().squeeze(1)
        if len(rows) == 0:
            return
        inputs, labels, puzzle_ids = self.sampler.draw(len(rows))
        carry.inputs[rows] = torch.from_numpy(inputs).to(self.device)
        carry.labels[rows] = torch.from_numpy(labels).to(self.device)
        carry.puzzle_ids[rows] = torch.from_numpy(puzzle_ids).to(self.device)
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

    def _set_learning_rates(self, scale: float) -> None:
        """The warmup/cosine schedule, applied alike to AdamW and the puzzle embeddings."""
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * scale
        if self.sign_sgd is not None:
            self.sign_sgd.lr = self.cfg.puzzle_emb_lr * scale

    def lr_scale(self) -> float:
        """The schedule's multiplier at this step; after a warm start the warmup runs again
        (fresh optimizer moments), capped by the cosine where it would be lower."""
        scale = lr_at(self.step, 1.0, self.cfg.warmup_steps, self.cfg.total_steps,
                      self.cfg.lr_min_ratio)
        if self.rewarm_from:
            since = self.step - self.rewarm_from
            scale = min(scale, lr_at(since, 1.0, self.cfg.warmup_steps, 2**62, 1.0))
        return scale

    def forward_backward(self) -> tuple[Any, Any, torch.Tensor | None]:
        """Refill, one supervision step and backward; returns (output, loss, puzzle rows)."""
        self._refill()
        if self.uses_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        rows = None if self.sign_sgd is None else self.sign_sgd.lookup(self.carry.puzzle_ids)
        out, loss = self.forward(self.carry.state, self.carry.inputs, self.carry.labels, rows)
        # The gradient is of (total loss / global batch). DDP averages over the world's ranks,
        # so each rank divides its own rows' sum by its local batch (global / world).
        (loss.total / self.local_batch).backward()
        return out, loss, rows

    def train_step(self) -> dict[str, float]:
        """One optimizer step over the batch; returns scalar metrics (this rank's rows)."""
        lr_scale = self.lr_scale()
        self._set_learning_rates(lr_scale)
        out, loss, rows = self.forward_backward()
        for optimizer in self.optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if self.sign_sgd is not None and rows is not None:
            self.sign_sgd.step(self.carry.puzzle_ids, rows)
        if self.ema is not None:
            self.ema.update(self.model)
        # CUDA-graph outputs live in buffers the next replay overwrites: keep a copy.
        self.carry.state = (State(out.state.y.clone(), out.state.z.clone())
                            if self.uses_cuda_graphs else out.state)
        self._update_halting(out.halt_logits)
        self.step += 1
        batch = self.local_batch
        return {"loss": loss.total.item() / batch, "answer_loss": loss.answer.item() / batch,
                "halt_loss": loss.halting.item() / batch,
                "cell_acc": loss.cell_correct.mean().item(),
                "exact": loss.exact.float().mean().item(), "lr": self.cfg.lr * lr_scale,
                "epochs": float(self.sampler.epochs)}

    @property
    def eval_model(self) -> TRM:
        return self.ema.model if self.ema is not None else self.model  # type: ignore[return-value]

    def evaluate(self) -> dict[str, Any]:
        """Score the EMA model on the evaluation set at full depth (all steps, as the paper), as
        the set evaluates itself (`TrainingData.evaluate`)."""
        assert self.eval_set is not None
        return self.eval_set.evaluate(self.eval_model, self.task, self.cfg.eval_puzzles,
                                      self.cfg.eval_batch_size)

    def fit(self, on_log: Callable[[dict[str, float]], None] | None = None,
            on_eval: Callable[[dict[str, Any]], None] | None = None,
            log_every: int = 20) -> dict[str, Any]:
        """Train to `total_steps` (or the time limit); evaluates, keeps the best, saves resume
        state (rank 0; the other ranks wait). Returns the last evaluation report (empty without
        an eval set, and on ranks other than 0)."""
        report: dict[str, Any] = {}
        # elapsed_s counts the whole run across resumes; the time limit counts this call only,
        # so a run that spans sessions trains time_limit_s in each.
        self._call_started = time.perf_counter()
        started = self._call_started - self.elapsed_s
        window_start, window_steps = time.perf_counter(), 0
        self.model.train()
        while self.step < self.cfg.total_steps:
            metrics = self.train_step()
            window_steps += 1
            self.elapsed_s = time.perf_counter() - started
            last = self.step == self.cfg.total_steps
            if on_log and self.ranks.is_main and (self.step % log_every == 0 or last):
                now = time.perf_counter()
                metrics["steps_per_s"] = window_steps / max(now - window_start, 1e-9)
                metrics["step"], metrics["elapsed_s"] = self.step, self.elapsed_s
                on_log(metrics)
                window_start, window_steps = now, 0
            out_of_time = self._out_of_time()
            # Stopping early evaluates too, so the best checkpoint (what `--ship` ships) holds
            # the latest weights when a session's time ends between scheduled evaluations.
            evaluated = bool(self.history) and self.history[-1]["step"] == self.step
            due = self.step % self.cfg.eval_every == 0 or last or (out_of_time and not evaluated)
            report = self._evaluate_and_save(due, out_of_time, on_eval) or report
            if out_of_time:
                log.info("stopping at step %d (%s)", self.step,
                         "asked to stop" if self.stop_requested else
                         f"time limit {self.cfg.time_limit_s:.0f}s")
                break
        return report

    def _out_of_time(self) -> bool:
        """Past `time_limit_s` of this call, or asked to stop (`stop_requested`, set by the
        CLI on SIGTERM / Ctrl-C), on any rank (so every rank stops at the same step)."""
        spent = time.perf_counter() - self._call_started
        stop = self.stop_requested or (
            bool(self.cfg.time_limit_s) and spent >= self.cfg.time_limit_s)
        return distributed.any_rank(stop, self.device)  # plain `stop` on a single process

    def _evaluate_and_save(self, due: bool, out_of_time: bool,
                           on_eval: Callable[[dict[str, Any]], None] | None
                           ) -> dict[str, Any] | None:
        """On schedule, rank 0 evaluates (keeping the best checkpoint) and saves resume state
        while the other ranks wait; returns the evaluation report if one ran here."""
        if not (due or out_of_time):
            return None
        report = None
        if self.ranks.is_main:
            if due and self.eval_set is not None:
                report = self._eval_and_keep_best(on_eval)
            self.save_resume()
        distributed.barrier()
        return report

    def _eval_and_keep_best(self, on_eval: Callable[[dict[str, Any]], None] | None
                            ) -> dict[str, Any]:
        report = self.evaluate()
        exact = report["overall"]["exact_accuracy"]
        point = {"step": self.step, "elapsed_s": round(self.elapsed_s, 1),
                 "exact_accuracy": exact, "cell_accuracy": report["overall"]["cell_accuracy"],
                 "device": _device_name(self.device)}
        if len(report.get("buckets", {})) > 1:  # the curve per bucket (e.g. medium vs hard)
            point["buckets"] = {name: b["exact_accuracy"]
                                for name, b in report["buckets"].items()}
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
                        "ranks": self.ranks.world_size,
                        "train_seconds": round(self.elapsed_s, 1)},
            "evaluation": report or {}, "curve": self.history, **self.task.card_fields(),
        }

    def save_checkpoint(self, stem: Path, report: dict[str, Any] | None = None) -> Path:
        """The EMA weights and card, and whatever files the training data keeps beside them
        (ARC: `<stem>.identifiers.json`, the task version of each puzzle-embedding row)."""
        stem = save_checkpoint(stem, self.eval_model, self.card(report))
        self.train_set.save_sidecars(stem)
        return stem

    def save_resume(self) -> None:
        info = {"step": self.step, "best_exact": self.best_exact, "history": self.history,
                "elapsed_s": self.elapsed_s, "run": self.run.to_dict(),
                "sampler_epochs": self.sampler.epochs, "rewarm_from": self.rewarm_from}
        ema_model = self.ema.model if self.ema is not None else None
        # The puzzle table is stored in the moments' dtype: bf16 halves an ARC table.
        low_precision = (PUZZLE_TABLE,) if self.sign_sgd is not None else ()
        save_resume(self.out_dir / "resume", self.model, ema_model, self.optimizers, info,
                    self.cfg.resume_state_dtype, self.cfg.resume_shard_mb, low_precision)

    def try_resume(self) -> bool:
        """Continue from `<out_dir>/resume.*` if present (every rank reads the same files).
        The carry starts fresh (all rows refilled), which costs nothing measurable."""
        stem = self.out_dir / "resume"
        if not resume_exists(stem):
            return False
        saved = json.loads(stem.with_suffix(".json").read_text())
        # Compared as configs, so a field added since (at its default) is no difference.
        if ModelConfig.from_dict(saved["run"]["model"]) != self.run.model:
            raise ValueError(f"{stem}: saved model config differs from this run's; "
                             "use another train.out_dir or the same config")
        ema_model = self.ema.model if self.ema is not None else None
        info = load_resume(stem, self.model, ema_model, self.optimizers)
        self.step, self.best_exact = int(info["step"]), float(info["best_exact"])
        self.history, self.elapsed_s = info["history"], float(info["elapsed_s"])
        self.rewarm_from = int(info.get("rewarm_from", 0))  # a warm start's warmup goes on
        self.sampler.epochs = int(info.get("sampler_epochs", 0))
        log.info("resumed from %s at step %d", stem, self.step)
        return True


def warm_start(trainer: Trainer, stem: str | Path) -> None:
    """Start `trainer` from a saved checkpoint (see `train.init_from`): weights into model and
    EMA, step, curve and training time from its card; optimizers stay fresh."""
    checkpoint = load_checkpoint(stem)
    if checkpoint.config != trainer.run.model:
        raise ValueError(f"{stem}: its model config differs from this run's "
                         f"({checkpoint.config} vs {trainer.run.model})")
    weights = checkpoint.model.state_dict()
    trainer.model.load_state_dict(weights)
    if trainer.ema is not None:
        trainer.ema.model.load_state_dict(weights)
    card = checkpoint.card
    trainer.step = trainer.rewarm_from = int(card["step"])
    trainer.history = list(card.get("curve", []))
    # A best measured on other evaluation data is no bar for this run's: a fine-tune on new data
    # keeps its first evaluation however it compares with the old curve.
    evaluated_on = ((card.get("data") or {}).get("eval") or {}).get("sha256")
    if (trainer.eval_set is not None and evaluated_on is not None
            and evaluated_on == trainer.eval_set.provenance.get("sha256")):
        trainer.best_exact = max((p["exact_accuracy"] for p in trainer.history), default=-1.0)
    trainer.elapsed_s = float(card.get("compute", {}).get("train_seconds", 0.0))
    log.info("warm start from %s at step %d (fresh optimizer, warmup again)", stem, trainer.step)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_description()
