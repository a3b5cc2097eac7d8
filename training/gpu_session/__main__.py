"""One GPU session in one command: Maze-Hard and hard-Sudoku checkpoints and the GPU speed figures,
within a time limit it enforces itself (default 570 s, under the device's 600 s per command).

    python -m training.gpu_session --out "$OUT"
    python -m training.gpu_session --out "$OUT" --maze-data data/maze-hard/train.csv   # carried
    python -m training.gpu_session --tiny --out /tmp/session     # CPU, tiny sizes, 45 s

In order: builds 40,000 hard mazes on all cores (disjoint under symmetry from the committed maze
test sets) and starts 50,000 hard Sudokus in the background; trains the paper-size Maze-Hard
TRM-Att (training/configs/maze-hard-gpu.toml) for 300 s with the sample-efficient recipe
(`plan.RECIPE`: Muon, cosine to zero on the clock, bf16, compiled with CUDA graphs), scoring the
EMA weights on the first 200 mazes of training/data/maze-hard-test.csv every 300 steps; then the
Sudoku model (training/configs/sudoku-hard-gpu.toml) the same way on what time is left; then
in 60 s gpu_inference's measurement of 81-position Sudoku (batch 1 and 512; `bench.py`) and
benchmarks/train_step.py (batch 768, CUDA graphs). Writes to --out (7 files):

  maze-hard.{safetensors,json}     best EMA weights in bf16 and their card (curve, held-out score)
  sudoku-hard.{safetensors,json}   the same for Sudoku
  session.json                     plan, per-phase curves, training log, held-out scores, timing
  benchmarks.json                  both benchmarks' rows (partial rows if one hit its limit)
  session.log                      the log

Each best checkpoint is chosen on the first rows of the committed test set and then scored once
on rows after them (`held_out` in session.json, `evaluations` in the card).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

from training.gpu_session.plan import SKIPPABLE, SessionPlan, parse_sets, tiny
from training.gpu_session.session import Session


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.gpu_session", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=os.environ.get("OUT"),
                   help="folder for the files that come back (default: $OUT)")
    p.add_argument("--work", type=Path, default=Path("runs/gpu-session"),
                   help="scratch folder for data, runs and benchmark output")
    p.add_argument("--time-limit-s", type=float, default=None,
                   help="whole session, wall clock (default 570; 45 with --tiny)")
    p.add_argument("--maze-s", type=float, help="maze phase (default 300)")
    p.add_argument("--bench-s", type=float, help="benchmarks (default 60)")
    p.add_argument("--maze-train", type=int, help="mazes to build (default 40000)")
    p.add_argument("--sudoku-train", type=int, help="Sudokus to build (default 50000)")
    p.add_argument("--maze-data", type=Path, help="prebuilt train.csv (manifest beside it)")
    p.add_argument("--sudoku-data", type=Path, help="prebuilt train.csv (manifest beside it)")
    p.add_argument("--workers", type=int, default=0, help="data processes (0: all cores)")
    p.add_argument("--set", dest="sets", action="append", default=[],
                   metavar="[PHASE:]SECTION.FIELD=V",
                   help="run override for both phases, or one: maze-hard:train.lr=3e-4")
    p.add_argument("--skip", action="append", default=[], choices=SKIPPABLE)
    p.add_argument("--tiny", action="store_true",
                   help="tiny models and data on the CPU: the whole session in under a minute")
    return p


def plan_from(args: argparse.Namespace) -> SessionPlan:
    """The plan: defaults, the tiny preset when asked, then every option given explicitly."""
    if args.out is None:
        raise ValueError("give --out (or set $OUT)")
    plan = SessionPlan(out=args.out, work=args.work, workers=args.workers,
                       overrides=parse_sets(args.sets), skip=tuple(args.skip),
                       prebuilt={name: path for name, path in (("maze-hard", args.maze_data),
                                                               ("sudoku-hard", args.sudoku_data))
                                 if path is not None})
    if args.tiny:
        plan = tiny(plan)
    counts = {**plan.train_counts, **{name: n for name, n in (("maze-hard", args.maze_train),
                                                              ("sudoku-hard", args.sudoku_train))
                                      if n is not None}}
    explicit = {k: v for k, v in (("maze_s", args.maze_s), ("bench_s", args.bench_s))
                if v is not None}
    limit = args.time_limit_s or (45.0 if args.tiny else plan.time_limit_s)
    return dataclasses.replace(plan, **explicit, train_counts=counts, time_limit_s=limit)


def setup_logging(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.StreamHandler(),
                                  logging.FileHandler(out / "session.log")])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = plan_from(args)
    except ValueError as err:
        print(f"gpu_session: error: {err}", file=sys.stderr)
        return 2
    setup_logging(plan.out)
    session = Session(plan)
    session.run()
    failed = session.failed
    logging.getLogger(__name__).info("session done in %.0f s%s", session.clock.elapsed(),
                                     f"; failed: {', '.join(failed)}" if failed else "")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
