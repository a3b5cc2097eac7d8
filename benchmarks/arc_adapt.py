"""What answering an unseen ARC task costs with the paper-size ARC model (attention, RoPE,
D = 512, T = 3, n = 4, 916 positions; speed does not depend on the weights): seconds per
test-time adaptation step (fitting new puzzle rows to the task's demonstrations and their
augmented versions, network frozen) and seconds to predict and vote over those versions.

    python benchmarks/arc_adapt.py --device cpu --out benchmarks/results/arc_adapt_cpu.json
    python benchmarks/arc_adapt.py --device cuda --out benchmarks/results/arc_adapt_h100.json

The task is ARC-1 evaluation `00576224` (two 2x2 -> 6x6 demonstrations, one test input), read
from the committed slice in tests/data/arc.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from trm_core.config import ModelConfig
from trm_core.engine import Engine
from trm_core.inference import prepare_for_inference
from trm_core.model import TRM
from trm_core.tasks.arc.adapt import AdaptConfig, fit_rows
from trm_core.tasks.arc.grids import ArcTask, encode

SLICE = Path(__file__).resolve().parents[1] / "tests" / "data" / "arc"
PAPER_ARC = ModelConfig(seq_len=900, vocab_size=12, token_mixer="attention",
                        position_encoding="rope", latent_updates=4, puzzle_emb_len=16,
                        puzzle_emb_dim=512, num_puzzle_ids=1)


def load_task(task_id: str) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[np.ndarray]]:
    body = json.loads((SLICE / "arc-agi_evaluation_challenges.json").read_text())[task_id]
    demos = [(np.array(p["input"]), np.array(p["output"])) for p in body["train"]]
    return demos, [np.array(p["input"]) for p in body["test"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--versions", type=int, default=8)
    parser.add_argument("--fit-steps", type=int, default=2)
    parser.add_argument("--task", default="00576224")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, precision = prepare_for_inference(TRM(PAPER_ARC), args.device)
    autocast = precision.autocast
    demos, tests = load_task(args.task)
    config = AdaptConfig(budget_s=1e9, max_steps=args.fit_steps, stop_when_exact=False)
    fitted = fit_rows(model, demos, tests, args.versions, config, autocast_dtype=autocast)
    vectors = fitted.rows
    engine = Engine(model, ArcTask(), slots=len(vectors), autocast_dtype=autocast)
    canvases = [encode(s.apply_grid(tests[0])) for s in fitted.symmetries]
    started = time.perf_counter()
    engine.solve_batch(canvases, halting="never", puzzle_vectors=list(vectors))
    vote_s = time.perf_counter() - started
    report = {"device": (torch.cuda.get_device_name() if args.device.startswith("cuda")
                         else "cpu"), "weights": str(next(model.parameters()).dtype),
              "task": args.task, "versions": len(vectors), "examples": fitted.report.examples,
              "fit_steps": fitted.report.steps,
              "fit_s_per_step": round(fitted.report.seconds / fitted.report.steps, 2),
              "predict_all_versions_16_steps_s": round(vote_s, 2)}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
