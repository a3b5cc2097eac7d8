"""What test-time adaptation buys on ARC tasks a checkpoint never trained on.

For every task: draw augmented versions (the identity first), then answer each test input of
every version and vote, twice: once with blank puzzle rows (all zeros, what a model is left
with for a task it has no row for) and once with rows fitted to the task's demonstrations
(`adapt.fit_rows`, network frozen). Both score pass@k exactly as the build evaluation does,
on the same versions, so the difference is what adaptation alone adds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from trm_core.engine import Engine
from trm_core.model import TRM
from trm_core.tasks.arc.adapt import AdaptConfig, draw_symmetries, fit_rows
from trm_core.tasks.arc.build import ArcPuzzleTask
from trm_core.tasks.arc.grids import ArcSymmetry, ArcTask, encode
from trm_core.tasks.arc.vote import Ballot, summarise, task_scores


def evaluate_unseen(model: TRM, tasks: Sequence[ArcPuzzleTask], adapt: AdaptConfig, *,
                    versions: int = 8, ks: Sequence[int] = (1, 2), max_steps: int | None = None,
                    autocast_dtype: torch.dtype | None = None,
                    on_task: Callable[[dict[str, Any]], None] | None = None
                    ) -> dict[str, dict[str, Any]]:
    """{"blank": report, "adapted": report}, each as `vote.summarise` writes it."""
    if model.puzzle_embedding is None:
        raise ValueError("the model has no puzzle embedding: nothing to adapt")
    steps = max_steps or model.config.max_supervision_steps
    engine = Engine(model, ArcTask(), slots=max(1, versions * 4), max_queue=1 << 16,
                    autocast_dtype=autocast_dtype)
    reports: dict[str, list[dict[str, Any]]] = {"blank": [], "adapted": []}
    seconds = {"blank": 0.0, "adapted": 0.0}
    for task in tasks:
        tests = [t for t, _ in task.tests]
        for mode in ("blank", "adapted"):
            started = time.perf_counter()
            symmetries, rows, fit = _rows(model, task, tests, versions, adapt, mode,
                                          autocast_dtype)
            report = _answer(engine, task, symmetries, rows, steps, ks)
            report["fit"] = fit
            report["seconds"] = round(time.perf_counter() - started, 2)
            seconds[mode] += report["seconds"]
            reports[mode].append(report)
            if on_task is not None:
                on_task({"mode": mode, **report})
    return {mode: summarise(reports[mode], ks, seconds[mode], steps) for mode in reports}


def _rows(model: TRM, task: ArcPuzzleTask, tests: list[np.ndarray], versions: int,
          adapt: AdaptConfig, mode: str, autocast_dtype: torch.dtype | None
          ) -> tuple[list[ArcSymmetry], np.ndarray, dict[str, Any] | None]:
    if mode == "adapted":
        fitted = fit_rows(model, task.demos, tests, versions, adapt,
                          autocast_dtype=autocast_dtype)
        return fitted.symmetries, fitted.rows, fitted.report.to_dict()
    symmetries = draw_symmetries(task.demos, tests, versions,
                                 np.random.default_rng(adapt.seed))
    return symmetries, np.zeros((len(symmetries), model.config.puzzle_emb_dim), np.float32), None


def _answer(engine: Engine, task: ArcPuzzleTask, symmetries: list[ArcSymmetry],
            rows: np.ndarray, steps: int, ks: Sequence[int]) -> dict[str, Any]:
    """Every version answers every test input; one ballot per test input; pass@k."""
    jobs = [(v, j) for v in range(len(symmetries)) for j in range(len(task.tests))]
    canvases = [encode(symmetries[v].apply_grid(task.tests[j][0])).astype(np.int8)
                for v, j in jobs]
    results = engine.solve_batch(canvases, halting="never", max_steps=steps,
                                 puzzle_vectors=[rows[v] for v, _ in jobs])
    ballots = [Ballot(keep_empty=True) for _ in task.tests]
    for (v, j), result in zip(jobs, results, strict=True):
        if result.answer is not None:
            ballots[j].add_canvas(result.answer, symmetries[v], result.q_halt)
    scores = task_scores([b.ranked() for b in ballots], [out for _, out in task.tests], ks)
    return {"task_id": task.task_id, "test_inputs": len(task.tests),
            "versions": len(symmetries), **{f"pass@{k}": v for k, v in scores.items()}}
