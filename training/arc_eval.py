"""`trm eval-arc`: pass@K of an ARC checkpoint on a `trm data-arc` build's test split, voting
over every augmented version of each test input as the official evaluation does.

    trm eval-arc checkpoints/arc/trm-arc1 --data data/arc1 --json reports/arc1-eval.json
    trm eval-arc checkpoints/arc/trm-arc1 --data data/arc1 --tasks 20 --k 2

The checkpoint must have been trained on that build: the test rows name its identifiers.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from trm_core.arc_vote import evaluate_arc, format_table, load_test_split
from trm_core.checkpoint import load_checkpoint
from trm_core.inference import prepare_for_inference
from trm_core.trainer import resolve_device

log = logging.getLogger(__name__)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-arc", help="pass@K of an ARC checkpoint on a build's test split")
    p.add_argument("checkpoint", type=Path, help="checkpoint stem (path without extension)")
    p.add_argument("--data", type=Path, required=True,
                   help="a `trm data-arc` output folder (its test/ split and identifiers.json)")
    p.add_argument("--k", type=int, default=2, help="attempts per test input (pass@1 .. pass@K)")
    p.add_argument("--tasks", type=int, default=None, help="only the first N tasks")
    p.add_argument("--max-steps", type=int, default=None, help="supervision steps (default: all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", type=Path, help="write the report (per task attempts) here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Evaluate, print the table, write the JSON report; returns the overall figures."""
    if args.k < 1:
        raise ValueError(f"--k must be >= 1, got {args.k}")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device)
    if checkpoint.task != "arc":
        raise ValueError(f"{args.checkpoint} is a {checkpoint.task} checkpoint, not an ARC one")
    data = load_test_split(args.data)
    rows = checkpoint.config.num_puzzle_ids
    if int(data.puzzle_ids.max(initial=0)) >= rows:
        raise ValueError(f"{args.data} names identifiers up to {int(data.puzzle_ids.max())}; "
                         f"the checkpoint has {rows} rows (was it trained on this build?)")
    model, autocast = prepare_for_inference(checkpoint.model, device, "float32")
    ks = sorted({1, args.k})
    report = evaluate_arc(model, data, ks=ks, tasks=args.tasks, batch_size=args.batch_size,
                          max_steps=args.max_steps, autocast_dtype=autocast,
                          on_task=_log_task)
    report["checkpoint"] = {"id": checkpoint.id, "sha256": checkpoint.sha256,
                            "device": str(device), "data": str(args.data)}
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report["overall"]


def _log_task(task: dict[str, Any]) -> None:
    log.info("%s: %d test input(s), pass@1 %.2f", task["task_id"], task["test_inputs"],
             task["pass@1"])
