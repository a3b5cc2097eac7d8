"""ARC's own commands. `trm data-arc` builds the augmented arrays (`trm_core/tasks/arc/build.py`):

    trm data-arc --build arc1 --augmentations 1000 --out data/arc1 --source ../shared/data/arc

`trm eval-arc`: pass@K of an ARC checkpoint on a `trm data-arc` build's test split, voting
over every augmented version of each test input as the official evaluation does.

    trm eval-arc checkpoints/arc/trm-arc1 --data data/arc1 --json reports/arc1-eval.json
    trm eval-arc checkpoints/arc/trm-arc1 --data data/arc1 --tasks 20 --k 2

The checkpoint must have been trained on that build: the test rows name its identifiers.

With `--source`, it scores tasks the checkpoint never trained on, straight from ARC JSON, with
blank puzzle rows and with rows fitted at test time, side by side (`trm_core/tasks/arc/unseen.py`):

    trm eval-arc checkpoints/arc/trm-arc1 --source ../shared/data/arc --subset evaluation \
        --versions 8 --adapt-budget-s 30 --tasks 40
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from trm_core.checkpoint import Checkpoint, load_checkpoint
from trm_core.inference import DTYPE_CHOICES, prepare_for_inference
from trm_core.tasks.arc.adapt import AdaptConfig
from trm_core.tasks.arc.build import build_arc, load_subset
from trm_core.tasks.arc.identifiers import load_identifiers, sidecar_path
from trm_core.tasks.arc.unseen import evaluate_unseen
from trm_core.tasks.arc.vote import evaluate_arc, format_table, load_test_split
from trm_core.trainer import resolve_device

log = logging.getLogger(__name__)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """`trm data-arc` and `trm eval-arc`."""
    add_data_parser(sub)
    add_eval_parser(sub)


def add_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data-arc", help="build augmented ARC-AGI arrays (train and test splits)")
    p.add_argument("--build", choices=["arc1", "arc2"], default="arc1",
                   help="arc1: training+evaluation+concept, tested on evaluation; "
                        "arc2: training2+evaluation2+concept, tested on evaluation2")
    p.add_argument("--augmentations", type=int, default=1000, help="versions per task")
    p.add_argument("--out", type=Path, default=Path("data/arc1"), help="output folder")
    p.add_argument("--source", type=Path, default=Path("../shared/data/arc"),
                   help="folder of arc-agi_<subset>_{challenges,solutions}.json")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--subsets", nargs="+",
                   help="build from these subsets instead, e.g. `training concept` to keep every "
                        "ARC-1 evaluation task unseen for `trm eval-arc --source`")
    p.add_argument("--test-subset", help="with --subsets: the subset whose test pairs are held out")
    p.set_defaults(func=run_data)


def run_data(args: argparse.Namespace) -> dict[str, Any]:
    """Build the augmented ARC-AGI arrays; returns the split manifests."""
    subsets = tuple(args.subsets) if args.subsets else None
    if subsets and not args.test_subset:
        raise ValueError("--subsets needs --test-subset (one of them)")
    return build_arc(args.source, args.out, args.build, args.augmentations, seed=args.seed,
                     subsets=subsets, test_subset=args.test_subset)


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval-arc", help="pass@K of an ARC checkpoint on a build's test split")
    p.add_argument("checkpoint", type=Path, help="checkpoint stem (path without extension)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--data", type=Path,
                       help="a `trm data-arc` output folder (its test/ split and identifiers.json)")
    where.add_argument("--source", type=Path,
                       help="ARC JSON folder: score unseen tasks, blank rows vs adapted rows")
    p.add_argument("--subset", default="evaluation", help="with --source: which subset")
    p.add_argument("--versions", type=int, default=8, help="with --source: versions per task")
    p.add_argument("--adapt-budget-s", type=float, default=30.0,
                   help="with --source: seconds of fitting per task")
    p.add_argument("--adapt-steps", type=int, default=300,
                   help="with --source: most fitting steps per task")
    p.add_argument("--k", type=int, default=2, help="attempts per test input (pass@1 .. pass@K)")
    p.add_argument("--tasks", type=int, default=None, help="only the first N tasks")
    p.add_argument("--max-steps", type=int, default=None, help="supervision steps (default: all)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="weights' dtype, as the service's TRM_DTYPE (same policy, "
                        "trm_core/inference.py): auto = bf16 on CPUs with native bf16, else fp32")
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
    if args.source is not None:
        return run_unseen(args, checkpoint, device)
    data = load_test_split(args.data)
    rows = checkpoint.config.num_puzzle_ids
    if int(data.puzzle_ids.max(initial=0)) >= rows:
        raise ValueError(f"{args.data} names identifiers up to {int(data.puzzle_ids.max())}; "
                         f"the checkpoint has {rows} rows (was it trained on this build?)")
    model, precision = prepare_for_inference(checkpoint.model, device, args.dtype)
    ks = sorted({1, args.k})
    report = evaluate_arc(model, data, ks=ks, tasks=args.tasks, batch_size=args.batch_size,
                          max_steps=args.max_steps, autocast_dtype=precision.autocast,
                          on_task=_log_task)
    report["checkpoint"] = {"id": checkpoint.id, "sha256": checkpoint.sha256,
                            "device": str(device), "precision": precision.name,
                            "data": str(args.data)}
    print(format_table(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report["overall"]


def run_unseen(args: argparse.Namespace, checkpoint: Checkpoint,
               device: torch.device) -> dict[str, Any]:
    """Blank rows vs rows fitted at test time on tasks the checkpoint never trained on."""
    known = set(load_identifiers(sidecar_path(checkpoint.path)).rows_of()) if sidecar_path(
        checkpoint.path).exists() else set()
    tasks = [t for t in load_subset(args.source, args.subset) if t.task_id not in known]
    tasks = tasks[:args.tasks]
    model, precision = prepare_for_inference(checkpoint.model, device, args.dtype)
    adapt = AdaptConfig(budget_s=args.adapt_budget_s, max_steps=args.adapt_steps)
    reports = evaluate_unseen(model, tasks, adapt, versions=args.versions,
                              ks=sorted({1, args.k}), max_steps=args.max_steps,
                              autocast_dtype=precision.autocast)
    for mode, report in reports.items():
        print(f"{mode} rows ({len(known)} tasks known to the checkpoint skipped)")
        print(format_table(report))
    summary = {"checkpoint": {"id": checkpoint.id, "sha256": checkpoint.sha256,
                              "device": str(device), "precision": precision.name,
                              "source": str(args.source),
                              "subset": args.subset, "skipped_known": len(known)},
               **reports}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return {mode: report["overall"] for mode, report in reports.items()}


def _log_task(task: dict[str, Any]) -> None:
    log.info("%s: %d test input(s), pass@1 %.2f", task["task_id"], task["test_inputs"],
             task["pass@1"])
