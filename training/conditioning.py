"""Which puzzles a model answers the same whatever fp32 runtime runs it, and which it does not.

A recursive model applies one network up to 16 x T x (n+1) times. On a puzzle it has settled, a
difference in the last bits of the latent dies out; on one it has not, the difference grows from
step to step until a cell flips, and the runs part from there. Two fp32 runtimes that sum in
different orders (torch on the server, onnxruntime in a bundle or a browser) can therefore give
different answers on such a puzzle, and neither is more right than the other: the server's own
fp32 run departs from the same model in float64 on those puzzles as often as the bundle does
(`benchmarks/bundle_agreement.py`).

Whether a puzzle is one of them is a property of the model, not of a runtime: it is
*rounding-sensitive* when the model's steps in float64 change once its weights move by one part
in 2^20 (about the rounding error an fp32 dot product of a few hundred terms accumulates), under
any of a few seeded moves. On every other puzzle, two faithful fp32 runtimes agree at every step,
which is what the bundle tests assert.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from trm_core.engine import Engine
from trm_core.model import TRM
from trm_core.tasks.base import Task

SCALE = 2.0 ** -20  # relative size of the weight moves
SEEDS = 4  # moves tried per puzzle


@dataclass
class Run:
    """One puzzle's single pass: the grid after every step, whether it ended solved, and
    (where the runtime reports it) each step's per-cell top probability."""

    grids: list[str]
    solved: bool
    confidence: list[list[float]] = field(default_factory=list)


def engine_runs(model: TRM, task: Task, puzzles: Sequence[str], halting: str,
                max_steps: int) -> list[Run]:
    """Each puzzle's single pass on the engine, one puzzle at a time (as for a lone request),
    in the model's own dtype."""
    engine = Engine(model, task, slots=1, max_queue=1)
    runs = []
    for text in puzzles:
        run = Run([], False)

        def record(update: object, run: Run = run) -> None:
            run.grids.append(task.format(update.answer))  # type: ignore[attr-defined]
            run.confidence.append(update.cell_confidence.tolist())  # type: ignore[attr-defined]

        result = engine.solve(task.parse(text), halting=halting, max_steps=max_steps,
                              on_step=record)
        run.solved = result.status == "solved"
        runs.append(run)
    return runs


def moved(model: TRM, seed: int, scale: float = SCALE) -> TRM:
    """A float64 copy of `model` whose every weight is multiplied by (1 + scale * N(0, 1))."""
    copied = copy.deepcopy(model).to(torch.float64).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in copied.parameters():
            noise = torch.randn(weight.shape, generator=generator, dtype=torch.float64)
            weight.mul_(1 + scale * noise)
    return copied


def differing(reference: Sequence[Run], other: Sequence[Run]) -> set[int]:
    """Indices of the puzzles whose runs differ at some step (or in length)."""
    return {index for index, (a, b) in enumerate(zip(reference, other, strict=True))
            if a.grids != b.grids}


def float64_runs(model: TRM, task: Task, puzzles: Sequence[str], halting: str,
                 max_steps: int) -> list[Run]:
    """The single passes of a float64 copy of `model`: the reference the others depart from."""
    exact = copy.deepcopy(model).to(torch.float64).eval()
    return engine_runs(exact, task, puzzles, halting, max_steps)


def rounding_sensitive(model: TRM, task: Task, puzzles: Sequence[str], halting: str,
                       max_steps: int, seeds: int = SEEDS, scale: float = SCALE,
                       reference: Sequence[Run] | None = None) -> set[int]:
    """Indices of the puzzles whose float64 single pass changes under some seeded weight move;
    `reference` is `float64_runs` of the same puzzles when the caller has it already."""
    if reference is None:
        reference = float64_runs(model, task, puzzles, halting, max_steps)
    found: set[int] = set()
    for seed in range(seeds):
        found |= differing(reference, engine_runs(moved(model, seed, scale), task, puzzles,
                                                  halting, max_steps))
    return found


def first_difference(a: Run, b: Run) -> int | None:
    """0-based index of the first step whose grids differ (or that only one run has)."""
    for step in range(max(len(a.grids), len(b.grids))):
        if step >= len(a.grids) or step >= len(b.grids) or a.grids[step] != b.grids[step]:
            return step
    return None


def cells_apart(a: str, b: str) -> np.ndarray:
    """Positions where two formatted grids of the same length differ."""
    return np.flatnonzero(np.frombuffer(a.encode(), np.uint8) != np.frombuffer(b.encode(),
                                                                              np.uint8))
