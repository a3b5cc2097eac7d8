"""`trm calibrate`: measure how often a checkpoint's answers verify at each raw confidence, on
held-out puzzles, and store the monotone mapping in its card (`trm_core/calibration.py`), which
the service then reports as each result's `confidence`.

    trm calibrate checkpoints/sudoku/trm-sudoku-tiny --data training/data/sudoku-easy-test.csv
    trm calibrate runs/sudoku-tiny-cpu/best --data a.csv --data b.csv --dry-run

Answers are made as a default service request makes them: one attempt, auto halting, the
service's default search budget, at the precision the service picks (`--dtype auto`).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.calibration import fit, format_table, measure
from trm_core.checkpoint import load_checkpoint, update_card
from trm_core.data import load_puzzle_csv
from trm_core.engine import SearchConfig
from trm_core.inference import DTYPE_CHOICES, prepare_for_inference
from trm_core.tasks import task_of_card
from trm_core.trainer import resolve_device

# The search a default service request gets: app/settings.py's TRM_SEARCH_* defaults are these
# (a test keeps them equal).
DEFAULT_SEARCH = SearchConfig()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="measure confidence against verification on held-out "
                                         "puzzles and store the mapping in the checkpoint card")
    p.add_argument("checkpoint", type=Path, help="checkpoint stem (path without extension)")
    p.add_argument("--data", type=Path, action="append", required=True,
                   help="held-out puzzle CSV (repeat to pool several)")
    p.add_argument("--halting", choices=["auto", "never"], default="auto",
                   help="as the service's default request: auto")
    p.add_argument("--max-steps", type=int, default=None, help="supervision steps (default: all)")
    p.add_argument("--budget-steps", type=int, default=DEFAULT_SEARCH.budget_steps,
                   help="verified search budget, as the service's default (0 = single pass)")
    p.add_argument("--limit", type=int, default=0, help="only the first N puzzles of each CSV")
    p.add_argument("--min-answers", type=int, default=10,
                   help="a bin with fewer answers joins the bin above")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="weights' dtype, as the service's TRM_DTYPE (default: what it picks)")
    p.add_argument("--dry-run", action="store_true", help="print the table, leave the card")
    p.set_defaults(func=run_calibrate)


def run_calibrate(args: argparse.Namespace) -> dict[str, Any]:
    """Measure, fit, print the table and (unless --dry-run) write it into the card."""
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device)
    task = task_of_card(checkpoint.card)
    model, precision = prepare_for_inference(checkpoint.model, device, args.dtype)
    search = None if args.budget_steps <= 0 else dataclasses.replace(
        DEFAULT_SEARCH, budget_steps=args.budget_steps)
    raws, verdicts, provenance = [], [], []
    for path in args.data:
        data = load_puzzle_csv(path, task).head(args.limit)
        raw, verified = measure(model, task, data, halting=args.halting,
                                max_steps=args.max_steps, search=search,
                                batch_size=args.batch_size, autocast_dtype=precision.autocast)
        raws.append(raw)
        verdicts.append(verified)
        provenance.append({**data.provenance, "verified": round(float(verified.mean()), 4)})
    calibration, table = fit(np.concatenate(raws), np.concatenate(verdicts),
                             min_answers=args.min_answers)
    print(format_table(table))
    entry = {"edges": list(calibration.edges), "values": list(calibration.values),
             "table": table, "answers": int(sum(len(r) for r in raws)), "data": provenance,
             "settings": {"halting": args.halting, "max_steps": args.max_steps,
                          "attempts": 1, "precision": precision.name,
                          "search": None if search is None else dataclasses.asdict(search)},
             "measured_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
    if not args.dry_run:
        update_card(args.checkpoint, calibration=entry)
    return {"checkpoint": checkpoint.id, "written": not args.dry_run,
            "answers": entry["answers"], "verified": [d["verified"] for d in provenance],
            "edges": entry["edges"], "values": entry["values"]}
