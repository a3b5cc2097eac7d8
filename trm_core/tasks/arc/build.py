"""The ARC-AGI dataset builder: augmented, placed canvases as memory-mapped arrays.

Reads `arc-agi_<subset>_challenges.json` / `..._solutions.json`, draws up to N augmented
versions of every task (numpy seed 42, one legacy `RandomState` stream across all tasks in file
order: a dihedral id 0-7 and a permutation of colours 1..9; a draw whose multiset of
(input, output) pairs equals the original's or an earlier version's is rejected; at most 5N
draws), gives every version its own puzzle identifier (0 is reserved for blank) and writes:

    OUT/identifiers.json          identifier -> [task id, version, dihedral id, colour map], and
                                  task id -> digest of its demonstration pairs
                                  (`trm_core.tasks.arc.identifiers`, the checkpoint sidecar format)
    OUT/<split>/inputs.npy        (examples, 900) uint8 canvases
    OUT/<split>/labels.npy        (examples, 900) uint8 canvases
    OUT/<split>/puzzle_ids.npy    (examples,) int32 identifier of each example
    OUT/<split>/puzzle_indices.npy (puzzles + 1,) int64 first example of each puzzle (version)
    OUT/<split>/group_indices.npy (groups + 1,) int64 first puzzle of each group (task)
    OUT/<split>/manifest.json     counts, seconds and the build's settings

Routing: every task's demonstration pairs go to `train`; the test subset's test pairs go to
`test` only; other subsets' test pairs go to `train`. Placement: training pairs at a random
offset (drawn from the same stream after augmentation, shared by input and output) except one
randomly chosen pair per version kept at (0, 0); test pairs at (0, 0).

The identifier map is written once rather than per split: both splits share identifiers and at
1000 augmentations it is tens of megabytes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm_core.tasks.arc.grids import N_CELLS, SIZE, dihedral, encode
from trm_core.tasks.arc.identifiers import IdentifierMap, VersionRef, demos_digest, save_identifiers

BUILDS: dict[str, tuple[tuple[str, ...], str]] = {
    "arc1": (("training", "evaluation", "concept"), "evaluation"),
    "arc2": (("training2", "evaluation2", "concept"), "evaluation2"),
}
DRAWS_PER_VERSION = 5  # the draw cap is this times the number of versions asked for

Pair = tuple[np.ndarray, np.ndarray]


@dataclass
class ArcPuzzleTask:
    """One task of one subset: demonstration pairs and test pairs (outputs from solutions)."""

    task_id: str
    subset: str
    demos: list[Pair]
    tests: list[Pair]


@dataclass
class Version:
    """One augmented version: recolour by `colour_map`, then dihedral `dihedral_id`."""

    dihedral_id: int
    colour_map: np.ndarray

    def grid(self, grid: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(dihedral(self.colour_map[grid], self.dihedral_id))

    def pairs(self, pairs: list[Pair]) -> list[Pair]:
        return [(self.grid(i), self.grid(o)) for i, o in pairs]


IDENTITY = Version(0, np.arange(10, dtype=np.uint8))


# ------------------------------------------------------------------------------------ loading
def load_subset(source: Path, subset: str) -> list[ArcPuzzleTask]:
    """Every task of `subset` in file order."""
    challenges = json.loads((source / f"arc-agi_{subset}_challenges.json").read_text())
    solutions = json.loads((source / f"arc-agi_{subset}_solutions.json").read_text())
    tasks = []
    for task_id, body in challenges.items():
        demos = [(_grid(p["input"]), _grid(p["output"])) for p in body["train"]]
        outputs = solutions[task_id]
        tests = [(_grid(p["input"]), _grid(out)) for p, out in zip(body["test"], outputs,
                                                                      strict=True)]
        tasks.append(ArcPuzzleTask(task_id, subset, demos, tests))
    return tasks


def _grid(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=np.uint8)


def check_overlap(tasks: dict[str, list[ArcPuzzleTask]], test_subset: str) -> None:
    """Refuse a build whose training subsets share task ids with the test subset (scores would
    count tasks whose test outputs were trained on) or with each other."""
    test_ids = {t.task_id for t in tasks.get(test_subset, [])}
    seen: dict[str, str] = {}
    for subset, subset_tasks in tasks.items():
        if subset == test_subset:
            continue
        ids = {t.task_id for t in subset_tasks}
        overlap = ids & test_ids
        if overlap:
            raise ValueError(
                f"{len(overlap)} tasks of training subset {subset!r} are also in test subset "
                f"{test_subset!r} (e.g. {sorted(overlap)[0]}); a model trained on them must not "
                "be scored there (ARC-2's training2 holds 376 ARC-1 evaluation tasks)")
        twice = sorted(i for i in ids if i in seen)
        if twice:
            raise ValueError(f"{len(twice)} task ids appear in both {seen[twice[0]]!r} and "
                             f"{subset!r} (e.g. {twice[0]})")
        seen.update(dict.fromkeys(ids, subset))


# ------------------------------------------------------------------------------- augmentation
def pairs_key(pairs: list[Pair]) -> bytes:
    """A key equal exactly for equal multisets of (input, output) grids, shapes included."""
    parts = sorted(bytes(i.shape) + i.tobytes() + b"|" + bytes(o.shape) + o.tobytes()
                   for i, o in pairs)
    return b"#".join(parts)


def draw_versions(task: ArcPuzzleTask, count: int, rng: np.random.RandomState) -> list[Version]:
    """The original and up to `count` distinct augmented versions (fewer when the draw cap
    hits, e.g. for a task whose grids are symmetric and single-coloured)."""
    pairs = task.demos + task.tests
    versions, seen = [IDENTITY], {pairs_key(pairs)}
    for _ in range(DRAWS_PER_VERSION * count):
        if len(versions) > count:
            break
        dihedral_id = int(rng.randint(0, 8))
        colours = np.concatenate([[0], rng.permutation(np.arange(1, 10))]).astype(np.uint8)
        version = Version(dihedral_id, colours)
        key = pairs_key(version.pairs(pairs))
        if key not in seen:
            seen.add(key)
            versions.append(version)
    return versions


# ---------------------------------------------------------------------------------- placement
def place_pairs(pairs: list[Pair], translate: bool,
                rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """(k, 900) input and label canvases; with `translate`, every pair but one random one gets
    a random offset shared by its input and output."""
    inputs = np.zeros((len(pairs), N_CELLS), dtype=np.uint8)
    labels = np.zeros_like(inputs)
    keep = int(rng.randint(0, len(pairs))) if translate else -1
    for k, (i, o) in enumerate(pairs):
        row = col = 0
        if translate and k != keep:
            row = int(rng.randint(0, SIZE - max(i.shape[0], o.shape[0]) + 1))
            col = int(rng.randint(0, SIZE - max(i.shape[1], o.shape[1]) + 1))
        inputs[k], labels[k] = encode(i, row, col), encode(o, row, col)
    return inputs, labels


class SplitWriter:
    """Appends puzzles (versions) and groups (tasks) of one split into preallocated memmaps."""

    def __init__(self, folder: Path, examples: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        shape = (examples, N_CELLS)
        self.inputs = np.lib.format.open_memmap(folder / "inputs.npy", "w+", np.uint8, shape)
        self.labels = np.lib.format.open_memmap(folder / "labels.npy", "w+", np.uint8, shape)
        self.puzzle_ids = np.zeros(examples, dtype=np.int32)
        self.puzzle_indices, self.group_indices = [0], [0]
        self.identifiers: list[int] = []

    def add_puzzle(self, identifier: int, inputs: np.ndarray, labels: np.ndarray) -> None:
        start = self.puzzle_indices[-1]
        end = start + len(inputs)
        self.inputs[start:end], self.labels[start:end] = inputs, labels
        self.puzzle_ids[start:end] = identifier
        self.puzzle_indices.append(end)
        self.identifiers.append(identifier)

    def end_group(self) -> None:
        self.group_indices.append(len(self.identifiers))

    def close(self, manifest: dict[str, object]) -> dict[str, object]:
        """Flush the arrays, write the index arrays and the manifest; returns the manifest."""
        examples = self.puzzle_indices[-1]
        if examples != len(self.puzzle_ids):
            raise RuntimeError(f"wrote {examples} examples, expected {len(self.puzzle_ids)}")
        self.inputs.flush()
        self.labels.flush()
        np.save(self.folder / "puzzle_ids.npy", self.puzzle_ids)
        np.save(self.folder / "puzzle_indices.npy", np.array(self.puzzle_indices, np.int64))
        np.save(self.folder / "group_indices.npy", np.array(self.group_indices, np.int64))
        np.save(self.folder / "puzzle_identifiers.npy", np.array(self.identifiers, np.int32))
        full = {"examples": examples, "puzzles": len(self.identifiers),
                "groups": len(self.group_indices) - 1, **manifest}
        (self.folder / "manifest.json").write_text(json.dumps(full, indent=2) + "\n")
        return full


# ------------------------------------------------------------------------------------- build
def build_arc(source: Path, out: Path, build: str = "arc1", augmentations: int = 1000,
              seed: int = 42, subsets: tuple[str, ...] | None = None,
              test_subset: str | None = None, limit: dict[str, int] | None = None,
              ) -> dict[str, dict[str, object]]:
    """Build `build` ("arc1", "arc2"; or explicit `subsets` and `test_subset`) into `out`;
    `limit` keeps the first few tasks of a subset (tests). Returns the split manifests."""
    started = time.perf_counter()
    default_subsets, default_test = BUILDS[build]
    subsets, test_subset = subsets or default_subsets, test_subset or default_test
    if test_subset not in subsets:
        raise ValueError(f"test subset {test_subset!r} is not among {subsets}")
    tasks = {s: load_subset(source, s)[: (limit or {}).get(s)] for s in subsets}
    check_overlap(tasks, test_subset)

    rng = np.random.RandomState(seed)
    plans = [(t, draw_versions(t, augmentations, rng)) for s in subsets for t in tasks[s]]
    sizes = {"train": 0, "test": 0}
    for task, versions in plans:
        held_out = task.subset == test_subset
        sizes["train"] += len(versions) * (len(task.demos) + (0 if held_out else len(task.tests)))
        sizes["test"] += len(versions) * len(task.tests) if held_out else 0

    writers = {split: SplitWriter(out / split, n) for split, n in sizes.items()}
    identifiers: list[VersionRef | None] = [None]  # 0: blank
    digests: dict[str, str] = {}
    for task, versions in plans:
        digests[task.task_id] = demos_digest(task.demos)
        held_out = task.subset == test_subset
        train_pairs = task.demos if held_out else task.demos + task.tests
        for number, version in enumerate(versions):
            identifier = len(identifiers)
            identifiers.append(VersionRef(task.task_id, number, version.dihedral_id,
                                          "".join(str(c) for c in version.colour_map.tolist())))
            writers["train"].add_puzzle(identifier,
                                        *place_pairs(version.pairs(train_pairs), True, rng))
            if held_out:
                writers["test"].add_puzzle(identifier,
                                           *place_pairs(version.pairs(task.tests), False, rng))
        writers["train"].end_group()
        if held_out:
            writers["test"].end_group()

    out.mkdir(parents=True, exist_ok=True)
    save_identifiers(out / "identifiers.json", IdentifierMap(identifiers, digests))
    short = sum(1 for _, versions in plans if len(versions) < augmentations + 1)
    common = {"build": build, "subsets": list(subsets), "test_subset": test_subset,
              "augmentations": augmentations, "seed": seed, "identifiers": len(identifiers),
              "tasks_with_fewer_versions": short,
              "seconds": round(time.perf_counter() - started, 2)}
    return {split: writer.close({"split": split, **common}) for split, writer in writers.items()}
