"""Dataset building: generate puzzles, drop every puzzle whose canonical form (its class under
the task's symmetries) was already seen, and cut train / val / test splits that no symmetry can
connect. Training augments with those same symmetries, so plain de-duplication would not be
enough for an honest held-out score.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from trm_core.tasks import TASKS, get_task
from trm_core.tasks.generation import DatasetTools, parallel_map

log = logging.getLogger(__name__)
SPLITS = ("test", "val", "train")  # filled in this order: held-out sets first


def generator_for(task_name: str) -> DatasetTools:
    """The dataset tools of a task (`Task.dataset_tools`); ValueError when it has none."""
    tools = get_task(task_name).dataset_tools()
    if tools is None:
        raise ValueError(f"no generator for task {task_name!r}")
    return tools


def generating_tasks() -> list[str]:
    """The registered tasks `trm data` can generate, by name."""
    return [name for name, task in TASKS.items() if task.dataset_tools() is not None]


def canonical_key(puzzle: str, task_name: str) -> bytes:
    task = get_task(task_name)
    return task.canonical_form(task.parse(puzzle))[0]


def canonical_keys(puzzles: list[str], task_name: str,
                   workers: int | None = None) -> list[bytes]:
    """Canonical keys of many puzzles, on all cores."""
    return parallel_map(partial(canonical_key, task_name=task_name), puzzles, workers)


# A CSV's canonical keys may be stored beside it (`<csv>.keys.gz`, one hex key per line after
# a header naming the CSV's sha256 and the task): the committed test sets carry them, so
# excluding them costs a read instead of 4 ms of symmetry search per puzzle.
KEYS_SUFFIX = ".keys.gz"


def keys_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.name + KEYS_SUFFIX)


def _keys_header(csv_path: Path, task_name: str) -> str:
    return f"sha256 {hashlib.sha256(csv_path.read_bytes()).hexdigest()} task {task_name}"


def write_keys(csv_path: Path, task_name: str, workers: int | None = None) -> Path:
    """Store the canonical keys of `csv_path`'s puzzles beside it."""
    puzzles = [record.puzzle for record in generator_for(task_name).read_csv(csv_path)]
    keys = canonical_keys(puzzles, task_name, workers)
    target = keys_path(csv_path)
    with gzip.open(target, "wt") as handle:
        handle.write(_keys_header(csv_path, task_name) + "\n")
        handle.writelines(key.hex() + "\n" for key in keys)
    return target


def stored_keys(csv_path: Path, task_name: str) -> list[bytes] | None:
    """The keys stored beside `csv_path`, or None when there are none or they belong to
    another version of the file (they are recomputed then)."""
    target = keys_path(csv_path)
    if not target.exists():
        return None
    with gzip.open(target, "rt") as handle:
        if handle.readline().strip() != _keys_header(csv_path, task_name):
            log.warning("%s is stale (its CSV changed); recomputing the keys", target)
            return None
        return [bytes.fromhex(line.strip()) for line in handle if line.strip()]


def excluded_keys(paths: list[Path], workers: int | None, task_name: str) -> set[bytes]:
    read_csv = generator_for(task_name).read_csv
    keys: set[bytes] = set()
    to_compute: list[str] = []
    for path in paths:
        stored = stored_keys(Path(path), task_name)
        if stored is not None:
            keys.update(stored)
        else:
            to_compute += [record.puzzle for record in read_csv(path)]
    return keys | set(canonical_keys(to_compute, task_name, workers))


def build_splits(task_name: str, out: Path, difficulty: str, counts: dict[str, int],
                 exclude: list[Path], seed: int, workers: int | None = None) -> dict[str, Any]:
    """Write `<out>/{train,val,test}.csv` (splits with a count of 0 are skipped) and
    `<out>/manifest.json`. Puzzles are unique up to symmetry across all splits and disjoint
    from every puzzle in the `exclude` files."""
    tools = generator_for(task_name)
    started = time.perf_counter()
    seen = excluded_keys(exclude, workers, task_name)
    wanted = sum(counts.values())
    rows: list[Sequence[Any]] = []
    batch_seed = seed
    while len(rows) < wanted:
        fresh = tools.generate(int((wanted - len(rows)) * 1.05) + 8, difficulty, batch_seed,
                               workers)
        keys = canonical_keys([str(r[0]) for r in fresh], task_name, workers)
        for row, key in zip(fresh, keys, strict=True):
            if key not in seen and len(rows) < wanted:
                seen.add(key)
                rows.append(row)
        batch_seed += 1_000_003  # a new, non-overlapping seed stream for top-ups
    out.mkdir(parents=True, exist_ok=True)
    written = _write_splits(out, rows, counts, tools.write_csv)
    manifest = {"task": task_name, "difficulty": difficulty, "seed": seed, "splits": written,
                "excluded": [str(p) for p in exclude],
                "disjoint_under": tools.disjoint_under,
                "seconds": round(time.perf_counter() - started, 1)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_splits(out: Path, rows: list[Sequence[Any]], counts: dict[str, int],
                  write_csv: Callable[[Path, Iterable[Sequence[Any]]], int]) -> dict[str, int]:
    written, start = {}, 0
    for split in SPLITS:
        count = counts.get(split, 0)
        if count:
            written[split] = write_csv(out / f"{split}.csv", rows[start:start + count])
            start += count
    return written


def splits_disjoint(paths: list[Path], task_name: str, workers: int | None = None) -> bool:
    """True when no puzzle in one file is a symmetric image of a puzzle in another."""
    read_csv = generator_for(task_name).read_csv
    keys_per_file = [set(canonical_keys([r.puzzle for r in read_csv(p)], task_name, workers))
                     for p in paths]
    total = sum(len(keys) for keys in keys_per_file)
    return len(set().union(*keys_per_file)) == total
