"""The session's speed figures, each in a child process with its own share of the benchmark
budget: `benchmarks/gpu_inference.py`'s measurement (eager, compiled, the whole solve as one
CUDA graph; at batch 1 and at a batch that fits the minute) and `benchmarks/train_step.py` as it
is. Both print one JSON line per finished row, so a child stopped at its limit still leaves the
rows it finished (the eager baseline first).

The inference child, on its own:

    python -m training.gpu_session.bench --device cuda --batch 512 --repeats 2 --out inf.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from training.gpu_session.clock import spawn, stop
from trm_core.config import ModelConfig

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]
INFERENCE = ("-m", "training.gpu_session.bench")
TRAIN_STEP = (str(ROOT / "benchmarks" / "train_step.py"),)
# name -> (command, arguments on CUDA, arguments on a CPU for the tiny run, share of budget).
# Inference first: the training phases already timed compiled bf16 training steps, nothing
# else times compiled inference. At batch 512 an 81-position Sudoku model fills the GPU; the
# anchors (747/s, 34 ms) are the official code's at 2048 and 1. The training step runs at the
# paper's batch 768 with CUDA graphs (anchor: 105 ms).
BENCHMARKS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], float]] = {
    "gpu_inference": (INFERENCE, ("--device", "cuda", "--batch", "512", "--repeats", "2"),
                      ("--device", "cpu", "--tiny", "--batch", "2", "--repeats", "1"), 0.55),
    "train_step": (TRAIN_STEP, ("--device", "cuda", "--steps", "5", "--warmup", "3"),
                   ("--device", "cpu", "--config", "training/configs/sudoku-tiny-cpu.toml",
                    "--batch-size", "8", "--steps", "2", "--warmup", "1",
                    "--variants", "fp32-eager", "--threads", "1"), 1.0),
}


def json_rows(text: str) -> list[dict[str, Any]]:
    """Every line that starts with a JSON object (gpu_inference appends the workload's name
    after it); multi-line JSON and other output are skipped."""
    decoder, rows = json.JSONDecoder(), []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            row, end = decoder.raw_decode(line)
        except json.JSONDecodeError:
            continue
        rest = line[end:].strip()
        rows.append({**row, "workload": rest} if rest and "workload" not in row else row)
    return rows


def run_one(name: str, argv: list[str], work: Path, timeout_s: float) -> dict[str, Any]:
    """One benchmark child to completion or to `timeout_s`; its rows and report."""
    out_json, out_log = work / f"{name}.json", work / f"{name}.log"
    argv = [sys.executable, *argv, "--out", str(out_json)]
    # Unbuffered, so the rows printed before a stop reach the log.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with out_log.open("wb") as sink:
        child = spawn(argv, sink, cwd=ROOT, env=env)
        try:
            code: int | None = child.wait(timeout=max(timeout_s, 0.0))
        except subprocess.TimeoutExpired:
            stop(child)
            code = None
    text = out_log.read_text(errors="replace")
    result: dict[str, Any] = {"command": " ".join(argv[1:]), "returncode": code,
                              "timed_out": code is None,
                              "seconds": round(time.monotonic() - started, 1),
                              "rows": json_rows(text)}
    if code == 0 and out_json.exists():
        result["report"] = json.loads(out_json.read_text())
    elif code is not None:
        result["output_tail"] = text[-1500:]
    log.info("%s: %s in %.0f s, %d rows", name, "timed out" if code is None else f"exit {code}",
             result["seconds"], len(result["rows"]))
    return result


def run_benchmarks(device: str, work: Path, budget_s: float) -> dict[str, Any]:
    """The benchmarks in turn within `budget_s`: each its share of the budget, the last one
    whatever the others left."""
    work.mkdir(parents=True, exist_ok=True)
    started, results = time.monotonic(), {}
    for name, (command, cuda_args, cpu_args, share) in BENCHMARKS.items():
        left = budget_s - (time.monotonic() - started)
        args = cuda_args if device == "cuda" else cpu_args
        results[name] = run_one(name, [*command, *args], work, min(left, share * budget_s))
    return {"device": device, "budget_s": budget_s, "benchmarks": results}


def shallow(config: ModelConfig) -> ModelConfig:
    """The tiny run's model: gpu_inference's tiny widths at 2 steps of 2 passes, so the CPU
    reaches the eager row in seconds."""
    return ModelConfig.from_dict({**config.to_dict(), "recursions": 1, "latent_updates": 1,
                                  "max_supervision_steps": 2})


def main(argv: list[str] | None = None) -> None:
    """The inference child: gpu_inference's `measure` for one workload at `--batch`."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda")
    p.add_argument("--workload", default="sudoku-81")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    bench = importlib.import_module("benchmarks.gpu_inference")  # a script folder, not typed
    config, _ = bench.WORKLOADS[args.workload]
    config = shallow(bench.tiny(config)) if args.tiny else config
    device = torch.device(args.device)
    row = bench.measure(args.workload, config, args.batch, device, args.repeats)
    report = {"benchmark": "gpu_inference", "device": torch.cuda.get_device_name(device)
              if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "steps": config.max_supervision_steps, "results": [row]}
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
