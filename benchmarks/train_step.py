"""Time one Sudoku training supervision step (forward through all T x (n+1) passes, backward
through the last recursion, AdamW, EMA) with the real trainer, on whatever device is present.

    python benchmarks/train_step.py                      # GPU: batch 768, compiled, bf16
    python benchmarks/train_step.py --device cpu --batch-size 16 --steps 3 --compile off

Prints and writes JSON (--out) with the device name, batch, median ms per step, samples/s.
The reference: the official code takes 105 ms (81 positions, compiled) on one H100.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from trm_core.data import PuzzleSet
from trm_core.tasks import get_task
from trm_core.train_config import load_run
from trm_core.trainer import Trainer

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def synthetic_set(count: int) -> PuzzleSet:
    """Symmetric images of one puzzle: timing does not depend on which puzzles they are."""
    task = get_task("sudoku")
    rng = np.random.default_rng(0)
    puzzle, solution = task.parse(PUZZLE), task.parse(SOLUTION)
    syms = [task.random_symmetry(rng) for _ in range(count)]
    return PuzzleSet(np.stack([s.apply(puzzle) for s in syms]),
                     np.stack([s.apply(solution) for s in syms]), np.array(["hard"] * count))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path,
                        default=Path("training/configs/sudoku-hard-gpu.toml"))
    parser.add_argument("--batch-size", type=int, default=768)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compilation)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", default="reduce-overhead")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = load_run(args.config, [f"train.batch_size={args.batch_size}",
                                 f"train.device={args.device}", f"train.compile={args.compile}",
                                 "train.out_dir=/tmp/trm-bench"])
    trainer = Trainer(run, get_task("sudoku"), synthetic_set(4096), None)
    for _ in range(args.warmup):
        trainer.train_step()
    times = []
    for _ in range(args.steps):
        sync(trainer.device)
        start = time.perf_counter()
        trainer.train_step()
        sync(trainer.device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {"benchmark": "sudoku_train_step", "device": trainer.device.type,
              "device_name": (torch.cuda.get_device_name()
                              if trainer.device.type == "cuda" else "cpu"),
              "batch_size": args.batch_size, "compile": args.compile,
              "passes_forward": run.model.passes_per_step,
              "median_ms": round(median * 1000, 2),
              "samples_per_s": round(args.batch_size / median),
              "torch": torch.__version__}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
