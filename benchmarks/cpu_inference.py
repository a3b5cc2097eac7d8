"""Full-depth (16 supervision steps) Sudoku inference on the CPU: the paper-size model (81
positions, D = 512, T = 3, n = 6; 4.86M parameters; speed does not depend on the weights) with
each backend, in the same run as the plain eager fp32 baseline.

    python benchmarks/cpu_inference.py --out benchmarks/results/cpu_inference.json

Backends: eager fp32 (baseline), bf16 autocast, bf16 weights (the service's CPU fast path on
CPUs with native bf16), each prepared by the precision policy in `trm_core/inference.py` (the
result names what "auto" picks here), and ONNX Runtime fp32 when the [onnx] extra is installed.
Figures: seconds for one puzzle (batch 1) and puzzles/s at batch 16. For reference, the official
code takes 4.2 s for one puzzle on this machine kind (fp32, eager).
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trm_core.config import ModelConfig
from trm_core.inference import (
    AutocastChoice,
    InferenceDtype,
    cpu_has_native_bf16,
    prepare_for_inference,
    resolve_precision,
)
from trm_core.model import TRM

Runner = Callable[[int], float]  # batch size -> seconds for the full-depth solve
# backend -> (TRM_DTYPE, TRM_AUTOCAST) choices
TORCH_BACKENDS: dict[str, tuple[InferenceDtype, AutocastChoice]] = {
    "eager fp32 (baseline)": ("float32", "off"),
    "bf16 autocast": ("float32", "bfloat16"),
    "bf16 weights": ("bfloat16", "off"),
}


def torch_runner(fp32: TRM, steps: int, dtype: InferenceDtype, autocast: AutocastChoice) -> Runner:
    model, precision = prepare_for_inference(copy.deepcopy(fp32), "cpu", dtype, autocast)
    cast = precision.autocast

    def run(batch: int) -> float:
        tokens = torch.randint(1, 11, (batch, model.config.seq_len))
        with torch.inference_mode(), torch.autocast("cpu", cast or torch.bfloat16,
                                                    enabled=cast is not None):
            start = time.perf_counter()
            state, x = model.initial_state(batch), model.embed(tokens)
            for _ in range(steps):
                state = model.step(state, x).state
            return time.perf_counter() - start
    return run


def onnx_runner(model: TRM, steps: int) -> Runner | None:
    try:
        import onnxruntime

        from training.export import export_step
    except ImportError:
        return None
    path = export_step(copy.deepcopy(model), Path(tempfile.mkdtemp()) / "step.onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(batch: int) -> float:
        tokens = torch.randint(1, 11, (batch, model.config.seq_len))
        start = time.perf_counter()
        with torch.inference_mode():
            state, x = model.initial_state(batch), model.embed(tokens).numpy()
        y, z = state.y.numpy(), state.z.numpy()
        for _ in range(steps):
            y, z = session.run(["y_next", "z_next"], {"y": y, "z": z, "x": x})
        return time.perf_counter() - start
    return run


def measure(run: Runner, batch: int, repeats: int) -> float:
    run(batch)  # warm-up: allocator, kernels, lazy initialisation
    return statistics.median(run(batch) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fp32 = TRM(ModelConfig()).eval()
    backends: dict[str, Runner | None] = {
        name: torch_runner(fp32, args.steps, *choice) for name, choice in TORCH_BACKENDS.items()}
    backends["onnxruntime fp32"] = onnx_runner(fp32, args.steps)
    rows: list[dict[str, Any]] = []
    for name, run in backends.items():
        if run is None:
            continue
        single = measure(run, 1, args.repeats)
        batched = measure(run, args.batch, max(1, args.repeats - 2))
        rows.append({"backend": name, "latency_s": round(single, 3),
                     "puzzles_per_s": round(args.batch / batched, 3)})
        print(f"{name:<24} 1 puzzle {single:6.2f} s   batch {args.batch}: "
              f"{args.batch / batched:6.2f} puzzles/s", flush=True)
    base = rows[0]
    for row in rows:
        row["latency_speedup"] = round(base["latency_s"] / row["latency_s"], 2)
        row["throughput_speedup"] = round(row["puzzles_per_s"] / base["puzzles_per_s"], 2)
    result = {"benchmark": "cpu_inference", "steps": args.steps, "batch": args.batch,
              "threads": torch.get_num_threads(), "cpu": platform.processor() or "x86_64",
              "native_bf16": cpu_has_native_bf16(),
              "auto_precision": resolve_precision("auto", "cpu").name,
              "torch": torch.__version__, "rows": rows}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
