"""The `trm` command: build data, train, evaluate, import official checkpoints, serve.

    trm data sudoku --out data/sudoku            # generate train/val/test CSVs (disjoint splits)
    trm data maze --out data/maze --difficulty hard --exclude training/data/maze-hard-test.csv
    trm data-arc --build arc1 --out data/arc1    # augmented ARC-AGI arrays (train, test)
    trm train training/configs/sudoku-tiny-cpu.toml --set train.total_steps=500
    trm train training/configs/arc1-small-gpu.toml     # ARC: train_data is a data-arc folder
    torchrun --nproc_per_node 4 -m training.cli train CONFIG   # data-parallel over 4 GPUs
    trm eval checkpoints/sudoku/trm-sudoku-tiny --data data/sudoku/test.csv
    trm eval checkpoints/sudoku/trm-sudoku-tiny --data data/sudoku/test.csv --dtype float32
    trm eval-arc checkpoints/arc/NAME --data data/arc1 --json arc1-eval.json   # pass@1, pass@2
    trm calibrate checkpoints/sudoku/trm-sudoku-tiny --data training/data/sudoku-easy-test.csv
    trm eval checkpoints/maze/NAME --data maze-hard-test.csv --buckets derived
    trm import-official step_50000.pt --config official.json --task sudoku --out imported
    trm export checkpoints/sudoku/trm-sudoku-tiny --onnx step.onnx --check
    trm export checkpoints/sudoku/trm-sudoku-tiny --bundle bundle/   # graph, manifest, solve.py
    trm serve                                    # the HTTP service (needs the [serve] extra)
    trm task init life --data life.jsonl         # your own task: life/task.toml from your data
    trm data life && trm train life              # split it, train it (life/checkpoint/)

Each subcommand's --help explains its options.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from training import calibrate, commands, importer, own_task
from training.datasets import generating_tasks
from training.task_commands import TASK_COMMANDS
from trm_core.inference import DTYPE_CHOICES


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="generate puzzle CSVs with splits disjoint under symmetry")
    p.add_argument("task", help=f"a task's generator ({', '.join(generating_tasks())}), or your "
                                "own task's folder (it holds task.toml): its data is split")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: data/TASK-DIFFICULTY)")
    p.add_argument("--difficulty", default="easy",
                   help="bucket to generate: easy, medium, hard (both tasks)")
    p.add_argument("--train", type=int, default=20000, help="training puzzles")
    p.add_argument("--val", type=int, default=500, help="validation puzzles")
    p.add_argument("--test", type=int, default=0, help="test puzzles (0: none)")
    p.add_argument("--exclude", type=Path, action="append", default=[],
                   help="CSV whose puzzles (and their symmetric images) must not appear")
    p.add_argument("--held-out", type=float, default=0.1,
                   help="your own task: the share of examples in val, and again in test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    p.set_defaults(func=commands.run_data)


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a TRM from a run config (TOML)")
    p.add_argument("config", type=Path, nargs="?",
                   help="training/configs/NAME.toml, or your own task's folder (its run.toml, "
                        "written from the data's size on first use)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.FIELD=V",
                   help="override one field, e.g. --set train.lr=3e-4 --set model.hidden_size=64")
    p.add_argument("--fresh", action="store_true",
                   help="ignore resume state in train.out_dir and start over")
    p.add_argument("--ship", type=Path, metavar="STEM",
                   help="after training, copy the best checkpoint to STEM "
                        "(e.g. checkpoints/sudoku/x)")
    p.add_argument("--ship-dtype", choices=("float32", "bfloat16"), default="float32",
                   help="weights' dtype in the shipped copy (bfloat16 halves its size)")
    p.add_argument("--keep-latest", type=Path, metavar="STEM",
                   help="after training, write the latest EMA weights and card (in --ship-dtype) "
                        "to STEM: where the next session goes on from with train.init_from when "
                        "this machine's resume state is gone, even when they are not the best")
    p.set_defaults(func=commands.run_train)


def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a checkpoint (or a running service) on a puzzle CSV")
    p.add_argument("checkpoint", type=Path, nargs="?",
                   help="checkpoint stem (path without extension); omit with --url")
    p.add_argument("--url", help="score a running service instead, e.g. http://127.0.0.1:8000")
    p.add_argument("--task", default=None,
                   help="with --url: the task to solve (default: the one the service serves)")
    p.add_argument("--concurrency", type=int, default=16, help="with --url: requests in flight")
    p.add_argument("--api-key", help="with --url: sent as X-API-Key")
    p.add_argument("--data", type=Path, required=True,
                   help="CSV with puzzle,solution[,bucket] or question,answer (the official "
                        "source,question,answer,rating files)")
    p.add_argument("--buckets", default="auto", metavar="{auto,column,derived,COLUMN}",
                   help="group by the file's bucket column (column), by the task's reading of "
                        "each solution, e.g. maze path length (derived), the column when "
                        "there is one (auto), or by another column of the file, e.g. givens")
    p.add_argument("--max-steps", type=int, default=None, help="supervision steps (default: all)")
    p.add_argument("--halting", choices=["never", "auto"], default="never",
                   help="never: all steps, as the paper evaluates; auto: stop when done")
    p.add_argument("--attempts", type=int, default=1, help="test-time search width")
    p.add_argument("--budget-steps", type=int, default=0,
                   help="verified search: slot-steps per puzzle after a first pass that does not "
                        "verify (as the service's budget_steps; 0 = single pass only)")
    p.add_argument("--search-attempts", type=int, default=4, help="attempts per search round")
    p.add_argument("--round-steps", type=int, default=4,
                   help="supervision steps of each search round after the first pass")
    p.add_argument("--latent-noise", type=float, default=0.1,
                   help="search: noise on the starting latent of each round's symmetric "
                        "attempts (0: none)")
    p.add_argument("--keep-fraction", type=float, default=0.25,
                   help="search: share of the model's rule-abiding cells each round keeps as "
                        "givens (confidence decimation; 0: plain attempts)")
    p.add_argument("--seed", type=int, default=0, help="seeds attempts and search")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=0, help="only the first N puzzles")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", choices=DTYPE_CHOICES, default="auto",
                   help="weights' dtype, as the service's TRM_DTYPE (same policy, "
                        "trm_core/inference.py): auto = bf16 on CPUs with native bf16, else fp32; "
                        "a checkpoint and a service agree when both run the same")
    p.add_argument("--json", type=Path, help="also write the report here")
    p.add_argument("--record", action="store_true",
                   help="store the report in the checkpoint card's evaluation results")
    p.set_defaults(func=commands.run_eval)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export one supervision step to ONNX, or a portable "
                                      "bundle (graph, manifest, reference loop)")
    p.add_argument("checkpoint", type=Path, help="checkpoint stem")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("--onnx", type=Path, help="output .onnx file")
    out.add_argument("--bundle", type=Path,
                     help="output folder: step.onnx, manifest.json and solve.py")
    p.add_argument("--check", action="store_true",
                   help="run the graph in ONNX Runtime and compare with PyTorch")
    p.set_defaults(func=commands.run_export)


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the HTTP service (options: trm serve --help)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=commands.run_serve)


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a broker-mode worker (options: trm worker --help)",
                       add_help=False)
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=commands.run_worker)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_data, _add_train, _add_eval, calibrate.add_parser, importer.add_parser,
                _add_export, _add_serve, _add_worker, own_task.add_parsers):
        add(sub)
    for add_task_commands in TASK_COMMANDS.values():  # e.g. data-arc, eval-arc
        add_task_commands(sub)
    return parser


_PASSTHROUGH = frozenset({"serve", "worker"})


def main(argv: list[str] | None = None) -> int:
    # `serve` and `worker` pass their options through untouched: argparse's REMAINDER would
    # reject a leading option such as `--redis-url`.
    args, passthrough = build_parser().parse_known_args(argv)
    if passthrough and args.command not in _PASSTHROUGH:
        build_parser().parse_args(argv)  # reports the unknown arguments and exits
    if args.command in _PASSTHROUGH:
        args.args = passthrough + list(args.args)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"trm {args.command}: error: {err}", file=sys.stderr)
        return 2
    if isinstance(result, dict):
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
