"""ARC training data: one split of a `trm data-arc` build (see `build.py`), opened as
memory-mapped arrays, the sampler that draws from it as the official loader does, and the
per-example scoring used while training.

Sampling: an epoch visits every group (task) once in random order; a visit picks one random
puzzle (augmented version) of the group and yields all its examples in random order, each with
that version's puzzle identifier. Nothing is augmented here: the builder already baked the
dihedral transform, the colour permutation and the translation into the arrays.

The arrays hold canvas tokens (0 PAD, 1 end-of-grid, 2..11 colours 0..9), which is also what
`ArcTask.to_tokens` returns for ARC cells, so rows go to the model as they are (as int64).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_core.inference import resolve_precision
from trm_core.model import TRM
from trm_core.solve import final_tokens
from trm_core.tasks.arc.identifiers import (
    IdentifierMap,
    VersionRef,
    load_identifiers,
    save_identifiers,
    sidecar_path,
)
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig

PAD, COLOUR0 = 0, 2


@dataclass
class ArcSplit:
    """One split (`train` or `test`) of a build folder; the arrays are read-only memmaps."""

    folder: Path  # the build folder (holding identifiers.json)
    split: str
    inputs: np.ndarray  # (examples, 900) uint8 tokens
    labels: np.ndarray  # (examples, 900) uint8 tokens
    puzzle_ids: np.ndarray  # (examples,) int32 identifier of each example
    puzzle_indices: np.ndarray  # (puzzles + 1,) first example of each puzzle (version)
    group_indices: np.ndarray  # (groups + 1,) first puzzle of each group (task)
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_groups(self) -> int:
        return len(self.group_indices) - 1

    @property
    def num_identifiers(self) -> int:
        """Rows the puzzle-embedding table needs: every identifier of the build, 0 included."""
        return int(self.manifest["identifiers"])

    @property
    def provenance(self) -> dict[str, Any]:
        keys = ("build", "subsets", "test_subset", "augmentations", "seed", "examples",
                "puzzles", "groups", "identifiers")
        return {"path": str(self.folder), "split": self.split,
                **{k: self.manifest[k] for k in keys if k in self.manifest}}

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs, labels (len(index), 900) and puzzle ids (len(index),), all int64."""
        return (self.inputs[index].astype(np.int64), self.labels[index].astype(np.int64),
                self.puzzle_ids[index].astype(np.int64))

    # ------------------------------------------------ trm_core.data.TrainingData, for the trainer
    def fit_run(self, run: RunConfig) -> RunConfig:
        return fit_run_to_build(run, self)

    def check_run(self, run: RunConfig) -> None:
        """The puzzle-embedding table must have a row for every identifier of the build."""
        model = run.model
        if model.puzzle_emb_dim and model.num_puzzle_ids != self.num_identifiers:
            raise ValueError(f"model.num_puzzle_ids is {model.num_puzzle_ids} but the ARC build "
                             f"{self.folder} has {self.num_identifiers} identifiers")

    def sampler(self, task: Task, seed: int, augment: bool) -> ArcSampler:
        """Group by group; the build baked the augmentation in, so `augment` changes nothing."""
        return ArcSampler(self, seed)

    def evaluate(self, model: TRM, task: Task, limit: int, batch_size: int) -> dict[str, Any]:
        """Per-example scores over `limit` examples spread over tasks, with fp32 weights: the
        puzzle table is shared with the training model, so it is not copied to cast."""
        device = next(model.parameters()).device
        precision = resolve_precision("float32", device)
        return evaluate_examples(model, self, eval_rows(self, limit), batch_size=batch_size,
                                 autocast_dtype=precision.autocast)

    def save_sidecars(self, stem: Path) -> None:
        """`<stem>.identifiers.json`: which task version each puzzle-embedding row stands for."""
        save_identifiers(sidecar_path(stem), self.identifiers)

    @functools.cached_property
    def identifiers(self) -> IdentifierMap:
        """The build's identifier -> task-version table (read once, on first use)."""
        return load_identifiers(self.folder / "identifiers.json")

    def task_rows(self, group: int) -> tuple[str, list[tuple[int, int]]]:
        """Task id and (row, index within its version) of every row of task `group`; in the
        test split a version's rows are its test inputs in task order."""
        first, last = self.group_indices[group], self.group_indices[group + 1]
        rows = []
        for puzzle in range(int(first), int(last)):
            start, end = int(self.puzzle_indices[puzzle]), int(self.puzzle_indices[puzzle + 1])
            rows += [(row, row - start) for row in range(start, end)]
        return self.version(rows[0][0]).task_id, rows

    def version(self, row: int) -> VersionRef:
        """The task version example `row` belongs to."""
        ref = self.identifiers.versions[int(self.puzzle_ids[row])]
        if ref is None:
            raise ValueError(f"{self.split} row {row} names the blank identifier")
        return ref


def open_split(folder: str | Path, split: str = "train") -> ArcSplit:
    """Open `folder/<split>/` of a `trm data-arc` build without reading the arrays."""
    folder = Path(folder)
    where = folder / split
    if not (where / "manifest.json").exists():
        raise FileNotFoundError(f"{where}: no ARC build split here (expected manifest.json "
                                "and arrays written by `trm data-arc`)")

    def array(name: str) -> np.ndarray:
        return np.load(where / f"{name}.npy", mmap_mode="r")

    manifest = json.loads((where / "manifest.json").read_text())
    data = ArcSplit(folder, split, array("inputs"), array("labels"), array("puzzle_ids"),
                    np.asarray(array("puzzle_indices")), np.asarray(array("group_indices")),
                    manifest)
    if data.inputs.shape != data.labels.shape or len(data.puzzle_ids) != len(data.inputs):
        raise ValueError(f"{where}: inputs {data.inputs.shape}, labels {data.labels.shape} and "
                         f"puzzle_ids {data.puzzle_ids.shape} do not line up")
    return data


def fit_run_to_build(run: RunConfig, data: ArcSplit) -> RunConfig:
    """`run` with model.num_puzzle_ids set to the build's identifier count. A config that
    leaves it at 1 (the default: one shared row, as Sudoku uses) gets the build's count; any
    other value must already equal it."""
    wanted, have = data.num_identifiers, run.model.num_puzzle_ids
    if have == wanted or run.model.puzzle_emb_dim == 0:
        return run
    if have != 1:
        raise ValueError(f"model.num_puzzle_ids is {have} but the ARC build {data.folder} has "
                         f"{wanted} identifiers; set model.num_puzzle_ids={wanted} or leave it "
                         "out of the config")
    return dataclasses.replace(run, model=dataclasses.replace(run.model, num_puzzle_ids=wanted))


class ArcSampler:
    """Draws training rows group by group (see the module docstring); satisfies
    `trm_core.data.TrainingSampler`."""

    def __init__(self, data: ArcSplit, seed: int) -> None:
        if data.num_groups == 0:
            raise ValueError(f"{data.folder}/{data.split}: the split holds no tasks")
        self.data = data
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(data.num_groups)
        self.cursor = 0
        self.epochs = 0
        self.pending = np.zeros(0, dtype=np.int64)  # examples of the last visited puzzle left

    def _visit_next_group(self) -> np.ndarray:
        """The examples of one random puzzle of the next group, in random order."""
        if self.cursor == len(self.order):
            self.order = self.rng.permutation(self.data.num_groups)
            self.cursor, self.epochs = 0, self.epochs + 1
        group = int(self.order[self.cursor])
        self.cursor += 1
        first, end = self.data.group_indices[group], self.data.group_indices[group + 1]
        puzzle = int(self.rng.integers(first, end))
        start, stop = self.data.puzzle_indices[puzzle], self.data.puzzle_indices[puzzle + 1]
        return start + self.rng.permutation(int(stop - start))

    def draw(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`count` rows: inputs, labels (count, 900) int64 tokens and puzzle ids (count,)."""
        parts, have = [self.pending], len(self.pending)
        while have < count:
            parts.append(self._visit_next_group())
            have += len(parts[-1])
        rows = np.concatenate(parts)
        picked, self.pending = rows[:count], rows[count:]
        return self.data.rows(picked)


def eval_rows(data: ArcSplit, limit: int) -> np.ndarray:
    """Up to `limit` example indices (0: all) spread over tasks: every group's first puzzle,
    then every group's second, and so on, so a small limit still covers many tasks."""
    per_group = []
    for g in range(data.num_groups):
        puzzles = range(data.group_indices[g], data.group_indices[g + 1])
        per_group.append([np.arange(data.puzzle_indices[p], data.puzzle_indices[p + 1])
                          for p in puzzles])
    depth = max((len(p) for p in per_group), default=0)
    ordered = [puzzles[k] for k in range(depth) for puzzles in per_group if k < len(puzzles)]
    flat = np.concatenate(ordered) if ordered else np.zeros(0, dtype=np.int64)
    return flat if limit <= 0 else flat[:limit]


def evaluate_examples(model: TRM, data: ArcSplit, rows: np.ndarray, *, batch_size: int = 256,
                      autocast_dtype: torch.dtype | None = None,
                      steps: int | None = None) -> dict[str, Any]:
    """Per-example scores after all supervision steps: exact (every labelled cell right; PAD
    labels are ignored, as in the loss), cell accuracy on labelled cells, and `verified`, the
    share of answers that decode to a grid (a colour in the top-left cell). Same report shape
    as `trm_core.evaluate.evaluate`."""
    steps = steps or model.config.max_supervision_steps
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    exact, cells, decodes = [], [], []
    for begin in range(0, len(rows), batch_size):
        inputs, labels, ids = (torch.from_numpy(a).to(device)
                               for a in data.rows(rows[begin:begin + batch_size]))
        predicted = final_tokens(model, inputs, steps, ids, autocast_dtype)
        valid = labels != PAD
        right = (predicted == labels) & valid
        exact.append((right | ~valid).all(1).cpu())
        cells.append((right.sum(1) / valid.sum(1).clamp_min(1)).cpu())
        decodes.append((predicted[:, 0] >= COLOUR0).cpu())
    model.train(was_training)
    elapsed = time.perf_counter() - start
    def mean(parts: list[torch.Tensor]) -> float:
        return round(float(torch.cat(parts).float().mean()), 4) if parts else 0.0

    overall = {"puzzles": len(rows), "exact_accuracy": mean(exact),
               "cell_accuracy": mean(cells), "verified": mean(decodes),
               "mean_steps": float(steps)}
    return {"overall": overall, "buckets": {},
            "settings": {"max_steps": steps, "halting": "never", "attempts": 1,
                         "puzzles": len(rows), "data": data.provenance},
            "speed": {"seconds": round(elapsed, 3),
                      "puzzles_per_s": round(len(rows) / max(elapsed, 1e-9), 2)}}
