"""Time one training supervision step (forward through all T x (n+1) passes, backward
through the last recursion, optimizer, EMA) with the real trainer, comparing precision and
compilation settings in the same run.

    python benchmarks/train_step.py                  # GPU: paper size, batch 768, compiled bf16
    python benchmarks/train_step.py --device cpu     # CPU: the sudoku-small run's size,
                                                     # fp32 eager vs the fast path, batch 128
    python benchmarks/train_step.py --device cpu --variants fp32-eager bf16-eager bf16-compiled

Each variant builds a fresh trainer, runs `--warmup` untimed steps (compilation happens there),
then times `--steps` steps; the first variant is the baseline of the speedup column. The
puzzles are symmetric images of the first row of the config's training data (of a built-in
Sudoku when that file is absent), so any task's config can be timed:

    python benchmarks/train_step.py --device cpu --config training/configs/maze-conv-cpu.toml

Prints and writes JSON (--out). The reference: the official code takes 105 ms per step (81
positions, batch 768, compiled) on one H100.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trm_core.data import PuzzleSet, load_puzzle_csv
from trm_core.inference import cpu_description, cpu_has_native_bf16
from trm_core.tasks import get_task
from trm_core.train_config import RunConfig, load_run
from trm_core.trainer import Trainer

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
# variant -> (autocast, compile) trainer settings
VARIANTS = {
    "fp32-eager": ("off", "off"),
    "fp32-compiled": ("off", "default"),
    "bf16-eager": ("bfloat16", "off"),
    "bf16-compiled": ("bfloat16", "default"),
    "bf16-cudagraphs": ("bfloat16", "reduce-overhead"),
}


def synthetic_set(run: RunConfig, count: int) -> PuzzleSet:
    """Symmetric images of one puzzle: timing does not depend on which puzzles they are."""
    task = get_task(run.train.task)
    rng = np.random.default_rng(0)
    source = Path(run.train.train_data)
    if source.exists():
        first = load_puzzle_csv(source, task).head(1)
        puzzle, solution = first.puzzles[0], first.solutions[0]
    else:
        puzzle, solution = task.parse(PUZZLE), task.parse(SOLUTION)
    syms = [task.random_symmetry(rng) for _ in range(count)]
    return PuzzleSet(np.stack([s.apply(puzzle) for s in syms]),
                     np.stack([s.apply(solution) for s in syms]), np.array(["hard"] * count))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_variant(run: RunConfig, data: PuzzleSet, warmup: int, steps: int) -> dict[str, Any]:
    """Median seconds per step of a fresh trainer, after `warmup` untimed steps."""
    trainer = Trainer(run, get_task(run.train.task), data, None)
    started = time.perf_counter()
    for _ in range(warmup):
        trainer.train_step()
    sync(trainer.device)
    warmup_s = time.perf_counter() - started
    times = []
    for _ in range(steps):
        sync(trainer.device)
        start = time.perf_counter()
        trainer.train_step()
        sync(trainer.device)
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"median_ms": round(median * 1000, 1), "warmup_s": round(warmup_s, 1),
            "samples_per_s": round(run.train.batch_size / median, 1),
            "device_name": (torch.cuda.get_device_name(trainer.device)
                            if trainer.device.type == "cuda" else cpu_description())}


def default_variants(device: str) -> list[str]:
    """CPU: fp32 eager, then the fast path (bf16 only where the CPU has native bf16, since
    emulated bf16 is slower than fp32); GPU: the compiled bf16 path alone."""
    if device != "cpu":
        return ["bf16-cudagraphs"]
    return ["fp32-eager", "bf16-compiled" if cpu_has_native_bf16() else "fp32-compiled"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="run config (default: by device)")
    parser.add_argument("--batch-size", type=int, help="default: the config's")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps (compilation)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    on_cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    config = args.config or Path("training/configs/" + ("sudoku-small-cpu.toml" if on_cpu
                                                          else "sudoku-hard-gpu.toml"))
    overrides = [f"train.device={args.device}", "train.out_dir=/tmp/trm-bench",
                 f"train.threads={args.threads}"]
    if args.batch_size:
        overrides.append(f"train.batch_size={args.batch_size}")
    data = synthetic_set(load_run(config, overrides), 4096)
    rows = []
    for name in args.variants or default_variants("cpu" if on_cpu else "cuda"):
        autocast, compile_mode = VARIANTS[name]
        run = load_run(config, [*overrides, f"train.autocast={autocast}",
                                f"train.compile={compile_mode}"])
        rows.append({"variant": name, **time_variant(run, data, args.warmup, args.steps)})
        rows[-1]["speedup"] = round(rows[0]["median_ms"] / rows[-1]["median_ms"], 2)
        print(json.dumps(rows[-1]))
    result = {"benchmark": "train_step", "task": run.train.task, "config": str(config),
              "batch_size": run.train.batch_size, "passes_forward": run.model.passes_per_step,
              "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
              "torch": torch.__version__, "rows": rows}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
