"""The session's training data: built on the device's cores (the first phase's now, the later
phases' in the background while the first one trains), or carried along prebuilt; always
disjoint under symmetry from the committed test sets. Large CSVs are parsed on all cores: a
maze row costs about a millisecond to parse and check, 40,000 of them most of a minute on one.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch

from training.datasets import build_splits
from training.gpu_session.clock import spawn, stop
from training.gpu_session.plan import PhaseSpec
from trm_core.data import PuzzleSet, file_digest
from trm_core.tasks import get_task

log = logging.getLogger(__name__)
Parsed = tuple[np.ndarray, np.ndarray]  # (puzzles, solutions), (N, seq_len) int8 each
SEED = 2101  # any seed: exclusion, not the seed, keeps the test sets out


def build_now(spec: PhaseSpec, folder: Path, count: int, workers: int) -> Path:
    """Generate `count` training puzzles into `folder/train.csv` on `workers` cores."""
    manifest = build_splits(spec.task, folder, difficulty=spec.difficulty,
                            counts={"train": count}, exclude=list(spec.exclude), seed=SEED,
                            workers=workers or None)
    log.info("%s: %d training puzzles built in %.1f s", spec.name, count, manifest["seconds"])
    return folder / "train.csv"


class BackgroundBuild:
    """`trm data` for one phase in a lower-priority child process, so an earlier phase can
    train meanwhile; `wait` returns the CSV once it is written."""

    def __init__(self, spec: PhaseSpec, folder: Path, count: int, workers: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.spec, self.csv = spec, folder / "train.csv"
        self.log_path = folder / "build.log"
        argv = [sys.executable, "-m", "training.cli", "data", spec.task, "--out", str(folder),
                "--difficulty", spec.difficulty, "--train", str(count), "--val", "0",
                "--seed", str(SEED), "--workers", str(workers)]
        argv += [arg for path in spec.exclude for arg in ("--exclude", str(path))]
        with self.log_path.open("wb") as sink:
            self.child = spawn(argv, sink, nice=10)

    def wait(self, timeout_s: float) -> Path:
        """The built CSV; TimeoutError (the build stopped) or RuntimeError (it failed)."""
        try:
            code = self.child.wait(timeout=max(timeout_s, 0.0))
        except subprocess.TimeoutExpired as err:
            stop(self.child)
            raise TimeoutError(f"{self.spec.name} data not built within {timeout_s:.0f} s"
                               ) from err
        if code != 0 or not self.csv.exists():
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.spec.name} data build failed ({code}): {tail}")
        return self.csv


def check_carried(path: Path, spec: PhaseSpec) -> Path:
    """A prebuilt CSV is used only when the manifest beside it shows the committed test set
    was excluded when it was built."""
    manifest_path = path.parent / "manifest.json"
    if not manifest_path.exists():
        raise ValueError(f"{path}: no manifest.json beside it to show what it excludes")
    excluded = {Path(p).name for p in json.loads(manifest_path.read_text()).get("excluded", [])}
    if spec.test_csv.name not in excluded:
        raise ValueError(f"{path}: built without --exclude {spec.test_csv}; its puzzles may "
                         "overlap the test set")
    return path


def _parse_rows(task_name: str, rows: list[tuple[str, str]]) -> Parsed:
    """The rows parsed (and checked) by the task, in a pool worker."""
    task = get_task(task_name)
    return (np.stack([task.parse(p) for p, _ in rows]),
            np.stack([task.parse_solution(s) for _, s in rows]))


def load_parallel(path: Path, task_name: str, workers: int = 0) -> PuzzleSet:
    """`trm_core.data.load_puzzle_csv` for this builder's `puzzle,solution[,bucket]` files,
    parsed on `workers` cores (0: all), with the same provenance."""
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    if not records or "puzzle" not in records[0] or "solution" not in records[0]:
        raise ValueError(f"{path}: expected a non-empty puzzle,solution[,bucket] CSV")
    pairs = [(r["puzzle"], r["solution"]) for r in records]
    cores = workers or os.cpu_count() or 1
    size = max(256, -(-len(pairs) // (cores * 4)))
    chunks = [pairs[i:i + size] for i in range(0, len(pairs), size)]
    parsed = _map_chunks(partial(_parse_rows, task_name), chunks, cores)
    buckets = np.array([r.get("bucket") or "all" for r in records])
    provenance = {"path": str(path), "sha256": file_digest(path), "rows": len(pairs)}
    return PuzzleSet(np.concatenate([p for p, _ in parsed]),
                     np.concatenate([s for _, s in parsed]), buckets, provenance)


def _map_chunks(function: Callable[[list[tuple[str, str]]], Parsed],
                chunks: list[list[tuple[str, str]]], workers: int) -> list[Parsed]:
    """A process-pool map that is safe once CUDA is up: forking a process with a CUDA
    context and compiler threads can deadlock the child, so the later phases' pools start
    from a clean fork server instead (a second or two of start-up)."""
    method = "forkserver" if torch.cuda.is_initialized() else "fork"
    workers = max(1, min(workers, len(chunks)))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        return list(pool.map(function, chunks))


def rows_of(data: PuzzleSet, start: int, stop: int) -> PuzzleSet:
    """Rows [start, stop) of a set, naming them in its provenance."""
    return PuzzleSet(data.puzzles[start:stop], data.solutions[start:stop],
                     data.buckets[start:stop], {**data.provenance, "rows_used": f"{start}:{stop}"})
