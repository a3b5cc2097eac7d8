"""Full-depth (16 supervision steps) inference speed on a GPU, paper-size models with random
weights (speed does not depend on them), each backend in the same run as the eager baseline.

    python benchmarks/gpu_inference.py --out benchmarks/results/gpu_inference_h100.json
    python benchmarks/gpu_inference.py --device cpu --tiny     # a quick run of the code paths

Workloads: Sudoku TRM-MLP at 81 positions and at 81 + 16, Maze TRM-Att at 900 + 16. Backends:
- eager: one Python-driven step at a time (the baseline), at the precision the service and
  `trm eval` pick for the device (`trm_core/inference.py`; on CUDA fp32 weights, bf16 autocast);
- compiled: `torch.compile` of one supervision step;
- graph: the whole 16-step solve captured once as a CUDA graph over compiled steps and replayed
  (one launch per solve, which is what removes the batch-1 launch overhead).
Figures: puzzles/s at a large batch and milliseconds for one puzzle. The official code's best on
one H100 (`anchors.md`): Sudoku 81 positions 747/s and 34 ms, 97 positions 356/s and 34 ms, Maze
96 mazes/s and 30 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from trm_core.config import ModelConfig
from trm_core.inference import prepare_for_inference
from trm_core.model import TRM

Solve = Callable[[torch.Tensor], torch.Tensor]
WORKLOADS = {
    "sudoku-81": (ModelConfig(), 2048),
    "sudoku-97": (ModelConfig(puzzle_emb_len=16, puzzle_emb_dim=512), 2048),
    "maze-916": (ModelConfig(seq_len=900, vocab_size=6, token_mixer="attention",
                             position_encoding="rope", latent_updates=4, puzzle_emb_len=16,
                             puzzle_emb_dim=512), 256),
}


def tiny(config: ModelConfig) -> ModelConfig:
    return ModelConfig.from_dict({**config.to_dict(), "hidden_size": 32, "num_heads": 2,
                                  "puzzle_emb_dim": min(config.puzzle_emb_dim, 32)})


def make_solve(model: TRM, steps: int, step_fn: Callable[..., Any]) -> Solve:
    """tokens (B, seq_len) -> answers (B, seq_len) after `steps` supervision steps."""

    def solve(tokens: torch.Tensor) -> torch.Tensor:
        x = model.embed(tokens)
        state = model.initial_state(tokens.shape[0], tokens.device, x.dtype)
        for _ in range(steps):
            out = step_fn(state, x)
            state = out.state
        return out.logits.argmax(-1)

    return solve


def graphed(solve: Solve, tokens: torch.Tensor) -> Solve:
    """`solve` captured as one CUDA graph for inputs shaped like `tokens`."""
    static_in = tokens.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            solve(static_in)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = solve(static_in)

    def replay(new_tokens: torch.Tensor) -> torch.Tensor:
        static_in.copy_(new_tokens)
        graph.replay()
        return static_out

    return replay


def timed(solve: Solve, tokens: torch.Tensor, repeats: int) -> float:
    """Median seconds of `solve(tokens)` after two untimed calls."""
    for _ in range(2):
        solve(tokens)
    times = []
    for _ in range(repeats):
        sync(tokens.device)
        start = time.perf_counter()
        solve(tokens)
        sync(tokens.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def backends(model: TRM, steps: int, device: torch.device) -> dict[str, Callable[[int], Solve]]:
    """Backend name -> (batch -> solve function built for that batch)."""
    compiled_step = torch.compile(model.step, mode="max-autotune-no-cudagraphs", dynamic=False)
    chosen: dict[str, Callable[[int], Solve]] = {
        "eager": lambda batch: make_solve(model, steps, model.step),
        "compiled": lambda batch: make_solve(model, steps, compiled_step),
    }
    if device.type == "cuda":
        def graph(batch: int) -> Solve:
            tokens = torch.ones(batch, model.config.seq_len, dtype=torch.long, device=device)
            return graphed(make_solve(model, steps, compiled_step), tokens)
        chosen["graph"] = graph
    return chosen


def measure(name: str, config: ModelConfig, batch: int, device: torch.device,
            repeats: int) -> dict[str, Any]:
    torch.manual_seed(0)
    model, precision = prepare_for_inference(TRM(config), device)
    steps = config.max_supervision_steps
    row: dict[str, Any] = {"workload": name, "batch": batch, "precision": precision.name,
                           "parameters": sum(p.numel() for p in model.parameters())}
    cast = precision.autocast
    autocast = torch.autocast(device.type, cast or torch.bfloat16, enabled=cast is not None)
    with torch.inference_mode(), autocast:
        for backend, build in backends(model, steps, device).items():
            for size in (1, batch):
                tokens = torch.randint(1, config.vocab_size, (size, config.seq_len),
                                       device=device)
                seconds = timed(build(size), tokens, repeats)
                key = "ms_one" if size == 1 else "per_s"
                row[f"{backend}_{key}"] = round(seconds * 1000, 2) if size == 1 else round(
                    size / seconds, 1)
            print(json.dumps({k: v for k, v in row.items() if k.startswith(backend)}), name)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workloads", nargs="*", default=list(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="hidden 32, batch 4: code paths")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = []
    for name in args.workloads:
        config, batch = WORKLOADS[name]
        if args.tiny:
            config, batch = tiny(config), 4
        rows.append(measure(name, config, batch, device, args.repeats))
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "steps": 16, "results": rows}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
