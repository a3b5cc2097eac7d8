"""One training phase of the session: the run config with the recipe, a trainer whose learning
rate follows the wall clock, the best EMA weights written to --out in bf16 each time the
selection score improves (so an overrun loses nothing already won), and one last score of the
best weights on the test rows that never took part in choosing them.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from training.gpu_session.data import load_parallel, rows_of
from training.gpu_session.plan import PhaseSpec, SessionPlan
from trm_core.checkpoint import load_checkpoint, save_checkpoint, update_card, weights_path
from trm_core.data import PuzzleSet
from trm_core.evaluate import evaluate
from trm_core.tasks import get_task
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig, load_run
from trm_core.trainer import Trainer

log = logging.getLogger(__name__)
# Share of a phase's budget kept back from training for the last selection evaluation and the
# held-out score (on an H200 about 20 s of the maze phase's 300).
TAIL_SHARE = 0.12
# When a compiled mode fails (CUDA graphs where they do not work), the next one to try.
FALLBACK = {"reduce-overhead": "default", "max-autotune": "default", "default": "off"}


def timed_scale(step: int, progress: float, warmup_steps: int, min_ratio: float) -> float:
    """Linear warmup over steps, then a cosine over the fraction of the time window used:
    1 at progress 0, min_ratio at progress 1."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps else 1.0
    progress = min(max(progress, 0.0), 1.0)
    return min(warm, min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


class SessionTrainer(Trainer):
    """The trainer for a fixed window of wall-clock time. The cosine runs on time, not steps,
    since the step rate on a machine not yet seen is unknown; its clock starts after the first
    step, which holds the compilation. No resume state: a session's machine is gone after it,
    and its best weights are already in --out."""

    def __init__(self, run: RunConfig, task: Task, train_set: PuzzleSet, eval_set: PuzzleSet,
                 ends_at: float) -> None:
        super().__init__(run, task, train_set, eval_set)
        # The limit counts from here: device start-up and model building are not on fit's
        # clock, and they take seconds on a fresh GPU machine.
        limit_s = ends_at - time.monotonic()
        if limit_s < 1:
            raise TimeoutError(f"{run.train.name}: no time left to train ({limit_s:.1f} s)")
        self.cfg = dataclasses.replace(self.cfg, time_limit_s=round(limit_s, 1))
        self.run = dataclasses.replace(self.run, train=self.cfg)
        self.schedule_origin_s: float | None = None

    def lr_scale(self) -> float:
        if not self.cfg.time_limit_s:
            return super().lr_scale()
        if self.schedule_origin_s is None and self.step >= 1:
            self.schedule_origin_s = self.elapsed_s
        if self.schedule_origin_s is None:
            return timed_scale(self.step, 0.0, self.cfg.warmup_steps, self.cfg.lr_min_ratio)
        window = max(self.cfg.time_limit_s - self.schedule_origin_s, 1e-9)
        progress = (self.elapsed_s - self.schedule_origin_s) / window
        return timed_scale(self.step, progress, self.cfg.warmup_steps, self.cfg.lr_min_ratio)

    def save_resume(self) -> None:
        return None

    def evaluate_last(self, on_eval: Callable[[dict[str, Any]], None]) -> None:
        """Score the steps since the last scheduled evaluation: the time limit ends a run
        between two of them."""
        if self.eval_set is not None and (not self.history
                                          or self.history[-1]["step"] != self.step):
            self._eval_and_keep_best(on_eval)


class Shipper:
    """on_eval hook: the EMA weights in bf16 to `stem` whenever the best score rises."""

    def __init__(self, trainer: Trainer, stem: Path) -> None:
        self.trainer, self.stem = trainer, stem
        self.shipped_exact = -1.0
        self.puzzles_per_s = 0.0

    def __call__(self, event: dict[str, Any]) -> None:
        exact = event["overall"]["exact_accuracy"]
        self.puzzles_per_s = float(event["speed"]["puzzles_per_s"])
        log.info("%s step %d: exact %.4f cell %.4f (best %.4f), eval %.1f s", self.stem.name,
                 event["step"], exact, event["overall"]["cell_accuracy"], event["best_exact"],
                 event["speed"]["seconds"])
        if event["best_exact"] > self.shipped_exact:
            report = {k: v for k, v in event.items() if k not in ("step", "best_exact")}
            save_checkpoint(self.stem, self.trainer.eval_model, self.trainer.card(report),
                            "bfloat16")
            self.shipped_exact = event["best_exact"]


class TrainLog:
    """on_log hook: keeps every logged point for the curves, writes one line in `every`."""

    def __init__(self, name: str, every: int = 100) -> None:
        self.name, self.every = name, every
        self.points: list[dict[str, float]] = []

    def __call__(self, metrics: dict[str, float]) -> None:
        self.points.append({k: round(float(v), 5) for k, v in metrics.items()})
        if int(metrics["step"]) % self.every == 0:
            log.info("%s step %d: loss %.4f exact %.3f lr %.2e %.1f steps/s", self.name,
                     metrics["step"], metrics["loss"], metrics["exact"], metrics["lr"],
                     metrics["steps_per_s"])


def phase_run(spec: PhaseSpec, plan: SessionPlan, train_csv: Path, select: int,
              extra: tuple[str, ...] = ()) -> RunConfig:
    """The phase's run config: its TOML, the recipe and the session's --set, then the
    session's own paths (the time limit is set when the trainer is ready)."""
    fixed = [f"train.train_data={train_csv}", f"train.eval_data={spec.test_csv}",
             f"train.out_dir={plan.work / 'runs' / spec.name}", f"train.eval_puzzles={select}"]
    return load_run(spec.config, [*plan.sets_for(spec), *extra, *fixed])


def train_phase(spec: PhaseSpec, plan: SessionPlan, train_csv: Path, budget_s: float,
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Train one model within `budget_s` seconds (setup, training, evaluations) and return
    its record: curves, steps, best selection score, held-out score."""
    started = time.monotonic()
    task = get_task(spec.task)
    train_set = load_parallel(train_csv, spec.task, plan.workers)
    test = load_parallel(spec.test_csv, spec.task, plan.workers)
    select = plan.select_count(spec)
    run = phase_run(spec, plan, train_csv, select, extra)
    trainer = SessionTrainer(run, task, train_set, rows_of(test, 0, select),
                             ends_at=started + budget_s * (1 - TAIL_SHARE))
    shipper, train_log = Shipper(trainer, plan.out / spec.name), TrainLog(spec.name)
    log.info("%s: training for %.0f s on %d puzzles (%s)", spec.name, trainer.cfg.time_limit_s,
             len(train_set), trainer.device)
    trainer.fit(on_log=train_log, on_eval=shipper)
    trainer.evaluate_last(shipper)
    record = _record(spec, trainer, train_log, select)
    record["shipped"] = weights_path(plan.out / spec.name).exists()
    seconds_left = budget_s - (time.monotonic() - started)
    try:  # an extra: its failure must not cost the phase its record
        record["held_out"] = score_held_out(spec, plan, task, test, select, trainer,
                                            seconds_left * shipper.puzzles_per_s * 0.8)
    except Exception as err:
        log.exception("%s: held-out scoring failed", spec.name)
        record["held_out"] = {"error": f"{type(err).__name__}: {err}"}
    return record


def _record(spec: PhaseSpec, trainer: Trainer, train_log: TrainLog, select: int
            ) -> dict[str, Any]:
    rates = [p["steps_per_s"] for p in train_log.points[1:]]  # the first holds the compile
    return {"name": spec.name, "status": "ok", "compile": trainer.cfg.compile,
            "steps": trainer.step, "train_seconds": round(trainer.elapsed_s, 1),
            "time_limit_s": trainer.cfg.time_limit_s, "select_puzzles": select,
            "best_select_exact": trainer.best_exact,
            "median_steps_per_s": round(statistics.median(rates), 2) if rates else None,
            "curve": trainer.history, "train_log": train_log.points}


def score_held_out(spec: PhaseSpec, plan: SessionPlan, task: Task, test: PuzzleSet,
                   start: int, trainer: Trainer, affordable: float) -> dict[str, Any] | None:
    """Score the shipped bf16 weights (what a user loads) on test rows after the selection
    slice, as many as the phase's remaining time affords; recorded in the checkpoint card."""
    stem = plan.out / spec.name
    count = min(len(test) - start, plan.held_out_cap or len(test), int(affordable))
    if count < 1 or not weights_path(stem).exists():
        log.info("%s: no held-out score (%d puzzles affordable)", spec.name, count)
        return None
    held_out = rows_of(test, start, start + count)
    model = load_checkpoint(stem, trainer.device).model
    report = evaluate(model, task, held_out, halting="never",
                      batch_size=trainer.cfg.eval_batch_size, autocast_dtype=trainer.autocast)
    key = f"{spec.test_csv.stem}[{start}:{start + count}]/never/k1"
    update_card(stem, evaluations={key: {k: report[k] for k in ("overall", "buckets",
                                                                  "settings")}})
    log.info("%s held-out %s: exact %.4f", spec.name, key, report["overall"]["exact_accuracy"])
    return {"rows": f"{start}:{start + count}", "overall": report["overall"],
            "speed": report["speed"]}


def train_with_fallback(spec: PhaseSpec, plan: SessionPlan, train_csv: Path, budget_s: float
                        ) -> dict[str, Any]:
    """`train_phase`, tried again with the next compile mode (CUDA graphs, then plain
    compilation, then eager) when an attempt fails before shipping anything and at least half
    the budget is left; a later failure would only trade won weights for fresh ones."""
    started = time.monotonic()
    extra: tuple[str, ...] = ()
    while True:
        try:
            return train_phase(spec, plan, train_csv, budget_s - (time.monotonic() - started),
                               extra)
        except Exception:
            left = budget_s - (time.monotonic() - started)
            mode = phase_run(spec, plan, train_csv, 1, extra).train.compile
            if (weights_path(plan.out / spec.name).exists() or mode not in FALLBACK
                    or left < budget_s / 2):
                raise
            log.exception("%s failed with compile=%s; trying compile=%s", spec.name, mode,
                          FALLBACK[mode])
            extra = (f"train.compile={FALLBACK[mode]}",)
            release_memory()


def release_memory() -> None:
    """Drop compiled graphs and cached device memory between phases."""
    gc.collect()
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
