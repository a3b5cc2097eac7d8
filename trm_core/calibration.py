"""Confidence calibration: what share of answers with a given raw confidence verify.

A result's raw confidence is the mean, over the cells the model fills in, of each cell's top
softmax probability. It saturates: on the shipped Sudoku model nearly every answer, right or
wrong, scores above 0.999. So the service never shows it as a probability. `measure` runs a
checkpoint over held-out puzzles the way the service answers them, `fit` bins the answers by raw
confidence (bins get finer towards 1.0, where the answers are) and pools neighbouring bins until
the verify rate never falls as raw confidence rises (isotonic regression, pool-adjacent-
violators), and `Calibration` maps a raw confidence to its bin's pooled verify rate, counted
with one verified and one failed answer added to each bin (Laplace's rule: 862 of 862 verified
reads 0.9988, never a certainty a finite sample cannot show). The mapping
is stored in the checkpoint card under "calibration" (`trm calibrate`), and the service reports it
as `confidence`: at confidence c, about c of the answers verified on the calibration data. It
holds for puzzles like those; harder puzzles verify less often at the same raw confidence.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trm_core.data import PuzzleSet
from trm_core.engine import Engine, Halting, SearchConfig
from trm_core.model import TRM
from trm_core.tasks.base import Task

# Lower bounds of the raw-confidence bins: one decade of (1 - confidence) each near 1.0.
BIN_EDGES = (0.0, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999, 0.9999999)
MIN_ANSWERS = 10  # a bin with fewer answers joins the bin above it


@dataclass(frozen=True)
class Calibration:
    """A step mapping: raw confidence in [edges[i], edges[i + 1]) -> values[i]."""

    edges: tuple[float, ...]  # ascending lower bounds, the first 0.0
    values: tuple[float, ...]  # verify rate per bin, non-decreasing

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.values) or not self.edges or self.edges[0] != 0.0:
            raise ValueError(f"calibration needs one value per bin and a first edge of 0.0, got "
                             f"edges {self.edges} and values {self.values}")
        if list(self.edges) != sorted(self.edges) or list(self.values) != sorted(self.values):
            raise ValueError(f"calibration edges and values must both ascend, got edges "
                             f"{self.edges} and values {self.values}")

    def __call__(self, raw: float) -> float:
        return self.values[max(0, bisect.bisect_right(self.edges, raw) - 1)]

    @classmethod
    def from_card(cls, entry: dict[str, Any]) -> Calibration:
        """The mapping of a card's "calibration" entry; ValueError naming what is wrong."""
        try:
            return cls(tuple(float(e) for e in entry["edges"]),
                       tuple(float(v) for v in entry["values"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"calibration entry lacks edges or values: {exc}") from None


def measure(model: TRM, task: Task, data: PuzzleSet, *, halting: Halting = "auto",
            max_steps: int | None = None, search: SearchConfig | None = None,
            batch_size: int = 256, autocast_dtype: torch.dtype | None = None,
            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Raw confidence (N,) float64 and verified (N,) bool of the engine's answer to each puzzle,
    with one attempt and the given halting and search, as a service request would get them."""
    slots = max(batch_size, search.attempts if search else 1)
    engine = Engine(model, task, slots=slots, max_queue=len(data) + slots,
                    autocast_dtype=autocast_dtype, seed=seed)
    options: dict[str, Any] = {"halting": halting, "seed": seed, "search": search}
    if max_steps:
        options["max_steps"] = max_steps
    results = engine.solve_batch(list(data.puzzles), **options)
    raw = np.array([r.confidence for r in results], dtype=np.float64)
    return raw, np.array([r.status == "solved" for r in results], dtype=bool)


def fit(raw: np.ndarray, verified: np.ndarray, edges: tuple[float, ...] = BIN_EDGES,
        min_answers: int = MIN_ANSWERS) -> tuple[Calibration, list[dict[str, Any]]]:
    """The monotone mapping and its table (one row per final bin: raw range, answers, verified,
    measured rate, calibrated rate) from answers' raw confidence and whether they verified."""
    if len(raw) == 0 or len(raw) != len(verified):
        raise ValueError(f"need as many verdicts as confidences (and some), got {len(raw)} and "
                         f"{len(verified)}")
    index = np.searchsorted(np.asarray(edges), raw, side="right") - 1  # (N,) bin of each
    bins: list[list[Any]] = [[float(edges[i]), int((index == i).sum()),
                              int(verified[index == i].sum())] for i in range(len(edges))]
    bins = _merge_small(bins, min_answers)
    pooled = _pool_adjacent_violators([(v + 1) / (n + 2) for _, n, v in bins],
                                      [n for _, n, _ in bins])
    calibration = Calibration(tuple(lo for lo, _, _ in bins), tuple(round(p, 4) for p in pooled))
    uppers = [lo for lo, _, _ in bins[1:]] + [1.0]
    table = [{"raw_from": lo, "raw_to": hi, "answers": n, "verified": v,
              "verify_rate": round(v / n, 4), "confidence": value}
             for (lo, n, v), hi, value in zip(bins, uppers, calibration.values, strict=True)]
    return calibration, table


def _merge_small(bins: list[list[Any]], min_answers: int) -> list[list[Any]]:
    """Bins [lower, answers, verified] with each bin of fewer than `min_answers` answers folded
    into the bin above it (the top one into the bin below), so every rate rests on at least
    `min_answers` answers when there are that many. The first bin keeps its lower bound 0.0."""
    merged: list[list[Any]] = []
    for lower, answers, verified in bins:
        if merged and merged[-1][1] < min_answers:
            merged[-1][1] += answers
            merged[-1][2] += verified
        else:
            merged.append([lower, answers, verified])
    while len(merged) > 1 and merged[-1][1] < min_answers:
        last = merged.pop()
        merged[-1][1] += last[1]
        merged[-1][2] += last[2]
    return merged


def _pool_adjacent_violators(rates: list[float], weights: list[int]) -> list[float]:
    """The non-decreasing sequence closest to `rates` in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, count]
    for rate, weight in zip(rates, weights, strict=True):
        blocks.append([rate, float(weight), 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            top = blocks.pop()
            low = blocks[-1]
            total = low[1] + top[1]
            low[0] = (low[0] * low[1] + top[0] * top[1]) / total
            low[1], low[2] = total, low[2] + top[2]
    return [mean for mean, _, count in blocks for _ in range(int(count))]


def format_table(table: list[dict[str, Any]]) -> str:
    """The calibration table as aligned text."""
    header = f"{'raw confidence':<26}{'answers':>9}{'verified':>10}{'rate':>9}{'confidence':>12}"
    lines = [header, "-" * len(header)]
    for i, row in enumerate(table):
        close = "]" if i == len(table) - 1 else ")"  # the top bin includes 1.0
        span = f"[{row['raw_from']:.7g}, {row['raw_to']:.7g}{close}"
        lines.append(f"{span:<26}{row['answers']:>9}{row['verified']:>10}"
                     f"{row['verify_rate']:>9.2%}{row['confidence']:>12.4f}")
    return "\n".join(lines)
