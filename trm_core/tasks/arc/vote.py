"""ARC voting: pool the predictions of a test input's augmented versions into ranked attempts,
and score a dataset build's `test` split with pass@K as the official evaluation does.

Every version of a task predicts each test input in its own frame. A prediction is cropped to
the largest top-left rectangle of colours (`grids.crop`), mapped back through the
version's inverse symmetry and pooled with identical predictions of the same test input.
Candidates rank by votes, then by the mean sigmoid halting probability of their votes, both
descending (full ties keep first-seen order); the first K are the attempts. A test input is
solved when one attempt equals the expected output; a task scores the fraction of its test
inputs solved; the benchmark figure is the mean over tasks.

The evaluation runs the build's test rows through the plain solve loop (`trm_core.solve`, the
step the service's engine takes), each row with its version's puzzle-embedding row
(`puzzle_ids`), at full depth with no halting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_core.model import TRM
from trm_core.solve import final_answers, q_halt
from trm_core.tasks.arc.grids import ArcSymmetry, ArcTask, crop
from trm_core.tasks.arc.train_data import ArcSplit, open_split


def grid_key(grid: np.ndarray) -> bytes:
    """Equal exactly for grids of equal shape and colours."""
    g = np.asarray(grid, dtype=np.uint8)
    return bytes(g.shape) + g.tobytes()


@dataclass
class Candidate:
    """One distinct answer to a test input, in the task's own frame."""

    grid: np.ndarray  # (h, w) colours 0-9
    votes: int
    confidence: float  # mean sigmoid halting probability of its votes


@dataclass
class Ballot:
    """The pooled predictions of one test input. An empty crop is a candidate only with
    `keep_empty` (the official evaluator counts it; it can never be right, so a service that
    drops it only lets a real candidate move up)."""

    keep_empty: bool = False
    predictions: int = 0  # versions that answered, empty crops included
    _pool: dict[bytes, list[Any]] = field(default_factory=dict)  # key -> [grid, votes, q sum]

    def add(self, grid: np.ndarray, q_halt: float) -> None:
        """One version's answer, already in the task's frame."""
        self.predictions += 1
        grid = np.asarray(grid, dtype=np.int64)
        if grid.size == 0 and not self.keep_empty:
            return
        entry = self._pool.setdefault(grid_key(grid), [grid, 0, 0.0])
        entry[1] += 1
        entry[2] += float(q_halt)

    def add_canvas(self, canvas: np.ndarray, symmetry: ArcSymmetry | None, q_halt: float) -> None:
        """One version's (900,) answer canvas in its own frame: cropped, then mapped back."""
        grid = crop(canvas)
        if grid.size and symmetry is not None:
            grid = symmetry.invert_grid(grid)
        self.add(grid, q_halt)

    @property
    def abstained(self) -> int:
        """Predictions that are no candidate (empty crops, unless kept)."""
        return self.predictions - sum(entry[1] for entry in self._pool.values())

    def ranked(self) -> list[Candidate]:
        """Every candidate, best first."""
        candidates = [Candidate(grid, votes, q_sum / votes)
                      for grid, votes, q_sum in self._pool.values()]
        # sorted is stable, so full ties keep the order in which candidates were first seen.
        return sorted(candidates, key=lambda c: (c.votes, c.confidence), reverse=True)


def solved(candidates: Sequence[Candidate], expected: np.ndarray, k: int) -> bool:
    """Whether one of the top `k` candidates equals `expected`."""
    key = grid_key(expected)
    return any(grid_key(c.grid) == key for c in candidates[:k])


def task_scores(ranked: Sequence[Sequence[Candidate]], expected: Sequence[np.ndarray],
                ks: Sequence[int] = (1, 2)) -> dict[int, float]:
    """pass@k of one task: the fraction of its test inputs solved within k attempts."""
    if len(ranked) != len(expected) or not expected:
        raise ValueError(f"{len(ranked)} ballots for {len(expected)} test inputs")
    return {k: sum(solved(c, e, k) for c, e in zip(ranked, expected, strict=True))
            / len(expected) for k in ks}


# ------------------------------------------------------------------------ the build's test split
ArcTestSplit = ArcSplit  # the `test` split of a build, as `load_test_split` opens it


def load_test_split(build_dir: str | Path) -> ArcSplit:
    """`BUILD_DIR/test/` (memory-mapped) with the build's identifier table."""
    return open_split(build_dir, "test")


# ------------------------------------------------------------------------------- evaluation
@dataclass
class Prediction:
    """A test row's answer after the last step and its halting head's belief, q_halt."""

    answer: np.ndarray  # (900,) int8 canvas cells
    q_halt: float


@dataclass
class TaskPlan:
    task_id: str
    rows: list[tuple[int, int]]  # (row, test input index)

    @property
    def tests(self) -> int:
        return 1 + max(j for _, j in self.rows)


def evaluate_arc(model: TRM, data: ArcTestSplit, *, ks: Sequence[int] = (1, 2),
                 tasks: int | None = None, batch_size: int = 256, max_steps: int | None = None,
                 autocast_dtype: torch.dtype | None = None,
                 on_task: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Predict every test row, vote per test input, score pass@k per task and overall."""
    steps = max_steps or model.config.max_supervision_steps
    plans = [TaskPlan(*data.task_rows(g)) for g in range(data.num_groups)][:tasks]
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    reports = []
    for chunk in _chunks(plans, 4 * batch_size):
        rows = [row for plan in chunk for row, _ in plan.rows]
        last = final_answers(model, ArcTask(), data.inputs[rows].astype(np.int8), steps,
                             puzzle_ids=data.puzzle_ids[rows].astype(np.int64),
                             batch_size=batch_size, autocast_dtype=autocast_dtype)
        by_row = {row: Prediction(last.answers[i], q_halt(last.halt_logits[i]))
                  for i, row in enumerate(rows)}
        for plan in chunk:
            reports.append(_score_task(data, plan, by_row, ks))
            if on_task is not None:
                on_task(reports[-1])
    model.train(was_training)
    return summarise(reports, ks, time.perf_counter() - started, steps)


def _chunks(plans: list[TaskPlan], rows: int) -> list[list[TaskPlan]]:
    """Whole tasks grouped until a chunk holds at least `rows` rows (keeps slots busy)."""
    chunks: list[list[TaskPlan]] = [[]]
    count = 0
    for plan in plans:
        if count >= rows:
            chunks.append([])
            count = 0
        chunks[-1].append(plan)
        count += len(plan.rows)
    return [c for c in chunks if c]


def expected_output(data: ArcTestSplit, row: int) -> np.ndarray:
    """The right output of a test row's test input, in the task's own frame."""
    return data.version(row).symmetry.invert_grid(crop(np.asarray(data.labels[row])))


def _score_task(data: ArcTestSplit, plan: TaskPlan, results: dict[int, Prediction],
                ks: Sequence[int]) -> dict[str, Any]:
    """One task's ballots (official semantics: empty crops count) and pass@k."""
    ballots = [Ballot(keep_empty=True) for _ in range(plan.tests)]
    expected: list[np.ndarray | None] = [None] * plan.tests
    for row, j in plan.rows:
        result, symmetry = results[row], data.version(row).symmetry
        ballots[j].add_canvas(result.answer, symmetry, result.q_halt)
        if expected[j] is None:
            expected[j] = expected_output(data, row)
    truth = [e for e in expected if e is not None]
    ranked = [b.ranked() for b in ballots]
    scores = task_scores(ranked, truth, ks)
    top = max(ks)
    return {"task_id": plan.task_id, "test_inputs": plan.tests,
            "versions": len(plan.rows) // plan.tests,
            **{f"pass@{k}": v for k, v in scores.items()},  # exact: the means are taken later
            "attempts": [[{"grid": c.grid.tolist(), "votes": c.votes,
                           "confidence": round(c.confidence, 4),
                           "correct": grid_key(c.grid) == grid_key(t)} for c in r[:top]]
                         for r, t in zip(ranked, truth, strict=True)]}


def summarise(reports: list[dict[str, Any]], ks: Sequence[int], seconds: float,
              max_steps: int) -> dict[str, Any]:
    """The benchmark figures (means over tasks) and the per-task reports."""
    count = len(reports)
    overall: dict[str, Any] = {"tasks": count,
                               "test_inputs": sum(r["test_inputs"] for r in reports)}
    for k in ks:
        overall[f"pass@{k}"] = round(sum(r[f"pass@{k}"] for r in reports) / max(count, 1), 4)
    overall["seconds"] = round(seconds, 2)
    return {"overall": overall, "settings": {"max_steps": max_steps, "halting": "never",
                                             "ks": list(ks)},
            "tasks": reports}


def format_table(report: dict[str, Any]) -> str:
    """The overall figures as an aligned text table."""
    overall = report["overall"]
    ks = report["settings"]["ks"]
    header = f"{'tasks':>7}{'test inputs':>13}" + "".join(f"{f'pass@{k}':>9}" for k in ks)
    header += f"{'seconds':>10}"
    row = f"{overall['tasks']:>7}{overall['test_inputs']:>13}"
    row += "".join(f"{overall[f'pass@{k}']:>9.2%}" for k in ks) + f"{overall['seconds']:>10.1f}"
    return "\n".join([header, "-" * len(header), row])
