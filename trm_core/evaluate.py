"""Evaluation: exact accuracy (whole grid right), cell accuracy on the cells the answer decides
(`Task.scored_cells`: Sudoku's blanks, a maze's open cells), verified rate and mean supervision
steps, overall and by bucket (the data's bucket column, or the task's reading of each solution,
such as a maze's path length; see `trm_core.data.load_puzzle_csv`).

A full-depth run (`halting="never"`, one attempt, no search: what training evaluates) calls the
plain solve loop (`trm_core.solve`) directly; anything the engine schedules (auto halting,
attempts, search) runs through the same `Engine` the service uses. Either way a number measured
here is what a client of the service gets with the same settings.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from trm_core.engine import Engine, Halting, JobResult
from trm_core.model import TRM
from trm_core.search import SearchConfig
from trm_core.solve import final_answers, q_halt
from trm_core.tasks.base import Task

if TYPE_CHECKING:  # trm_core.data evaluates its sets with this module
    from trm_core.data import PuzzleSet


def evaluate(model: TRM, task: Task, data: PuzzleSet, *, max_steps: int | None = None,
             halting: Halting = "never", attempts: int = 1, batch_size: int = 256,
             autocast_dtype: torch.dtype | None = None, seed: int = 0,
             search: SearchConfig | None = None) -> dict[str, Any]:
    """Solve every puzzle of `data` and score the answers against its solutions; with
    `search`, each puzzle gets the verified search (`trm_core.search`) instead of one run."""
    steps = max_steps or model.config.max_supervision_steps
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    if halting == "never" and attempts == 1 and search is None:
        results = full_depth(model, task, data.puzzles, steps, batch_size, autocast_dtype)
    else:
        results = _engine_results(model, task, data, steps, halting, attempts, batch_size,
                                  autocast_dtype, seed, search)
    elapsed = time.perf_counter() - start
    model.train(was_training)
    report = score(results, data, task)
    report["settings"] = {"max_steps": steps, "halting": halting, "attempts": attempts,
                          "puzzles": len(data), "data": data.provenance,
                          "search": None if search is None else dataclasses.asdict(search)}
    report["speed"] = {"seconds": round(elapsed, 3),
                       "puzzles_per_s": round(len(data) / max(elapsed, 1e-9), 2)}
    return report


def _engine_results(model: TRM, task: Task, data: PuzzleSet, steps: int, halting: Halting,
                    attempts: int, batch_size: int, autocast_dtype: torch.dtype | None,
                    seed: int, search: SearchConfig | None) -> list[JobResult]:
    """Every puzzle solved by an `Engine`, as the service would."""
    slots = max(batch_size, attempts, search.attempts if search else 1)
    engine = Engine(model, task, slots=slots, max_queue=len(data) + slots,
                    autocast_dtype=autocast_dtype, seed=seed)
    # A search seeds puzzle i with seed + i, as the service seeds a request with its seed.
    seeds = {} if search is None else {"seed": seed}
    return engine.solve_batch(list(data.puzzles), max_steps=steps, halting=halting,
                              attempts=attempts, search=search, **seeds)


def full_depth(model: TRM, task: Task, puzzles: np.ndarray, steps: int, batch_size: int,
               autocast_dtype: torch.dtype | None) -> list[JobResult]:
    """Every puzzle (N, seq_len) run `steps` steps by the plain loop, as results shaped like
    the engine's for `halting="never"`: givens restored, verified, never halted early."""
    last = final_answers(model, task, puzzles, steps, batch_size=batch_size,
                         autocast_dtype=autocast_dtype)
    results = []
    for i, puzzle in enumerate(puzzles):
        answer = task.keep_givens(puzzle, last.answers[i])
        valid = bool(task.verify(puzzle, answer))
        fill = puzzle == 0 if (puzzle == 0).any() else np.ones(len(puzzle), bool)  # as the engine
        results.append(JobResult(
            job_id=str(i), status="solved" if valid else "unsolved", answer=answer,
            valid=valid, steps_used=steps, halted_early=False,
            confidence=float(last.confidence[i][fill].mean()),
            q_halt=q_halt(last.halt_logits[i]), attempt=0, attempts=1, queue_ms=0.0,
            compute_ms=0.0, total_ms=0.0))
    return results


def score(results: list[JobResult], data: PuzzleSet, task: Task) -> dict[str, Any]:
    """Per-bucket and overall metrics for engine results aligned with `data` rows."""
    scored = task.scored_cells(data.puzzles)  # (N, seq_len) bool
    answers = np.stack([_answer(r, data.puzzles.shape[1]) for r in results])
    right = answers == data.solutions  # (N, seq_len)
    rows = {
        "exact": right.all(axis=1),
        "cell": (right & scored).sum(1) / np.maximum(scored.sum(1), 1),
        "verified": np.array([r.valid for r in results]),
        "steps": np.array([r.steps_used for r in results], dtype=np.float64),
        # Slot-steps: supervision steps x attempts, summed over a search's rounds.
        "model_steps": np.array([r.search["steps_used"] if r.search else r.steps_used * r.attempts
                                 for r in results], dtype=np.float64),
        # A search's first round is the plain single pass (auto halting).
        "first_pass": np.array([r.search["rounds"][0]["valid"] if r.search else r.valid
                                for r in results]),
    }
    report: dict[str, Any] = {"overall": _summary(rows, np.ones(len(results), dtype=bool))}
    report["buckets"] = {str(b): _summary(rows, data.buckets == b)
                         for b in sorted(set(data.buckets.tolist()))}
    return report


def _answer(result: JobResult, seq_len: int) -> np.ndarray:
    if result.answer is None:
        return np.zeros(seq_len, dtype=np.int8)
    return result.answer


def _summary(rows: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, float]:
    count = int(mask.sum())
    if count == 0:
        return {"puzzles": 0}
    return {
        "puzzles": count,
        "exact_accuracy": round(float(rows["exact"][mask].mean()), 4),
        "cell_accuracy": round(float(rows["cell"][mask].mean()), 4),
        "verified": round(float(rows["verified"][mask].mean()), 4),
        "mean_steps": round(float(rows["steps"][mask].mean()), 2),
        "mean_model_steps": round(float(rows["model_steps"][mask].mean()), 2),
        "first_pass_verified": round(float(rows["first_pass"][mask].mean()), 4),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table, one line per bucket then the total."""
    header = (f"{'bucket':<12}{'puzzles':>8}{'exact':>9}{'cells':>9}{'verified':>10}"
              f"{'1st pass':>10}{'steps':>8}{'model steps':>13}")
    lines = [header, "-" * len(header)]
    entries = [*report["buckets"].items(), ("all", report["overall"])]
    for name, row in entries:
        if not row.get("puzzles"):
            continue
        lines.append(f"{name:<12}{row['puzzles']:>8}{row['exact_accuracy']:>9.2%}"
                     f"{row['cell_accuracy']:>9.2%}{row['verified']:>10.2%}"
                     f"{row.get('first_pass_verified', row['verified']):>10.2%}"
                     f"{row['mean_steps']:>8.2f}{row.get('mean_model_steps', 0.0):>13.2f}")
    return "\n".join(lines)
