"""What each `trm` subcommand does; argument parsing lives in `training/cli.py`."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from training import own_task
from training.datasets import build_splits, generating_tasks
from training.progress import ProgressBar
from training.remote_eval import evaluate_service, served_task
from trm_core import distributed
from trm_core.checkpoint import (
    card_path,
    load_checkpoint,
    save_checkpoint,
    update_card,
    weights_path,
)
from trm_core.config import ModelConfig
from trm_core.data import load_puzzle_csv
from trm_core.distributed import Ranks
from trm_core.evaluate import evaluate, format_table
from trm_core.inference import prepare_for_inference
from trm_core.resume import remove_resume
from trm_core.search import SearchConfig
from trm_core.tasks import get_task, task_of_card
from trm_core.tasks.base import Task
from trm_core.train_config import RunConfig, load_run
from trm_core.trainer import TrainData, Trainer, resolve_device, warm_start

log = logging.getLogger(__name__)


def run_data(args: argparse.Namespace) -> dict[str, Any]:
    """Generate train/val/test CSVs, disjoint under the task's symmetries; for a task folder,
    split its examples into them."""
    if own_task.is_task_folder(args.task):
        return own_task.import_data(Path(args.task), args.held_out, args.seed)
    if args.task not in generating_tasks():
        raise ValueError(f"{args.task!r} is neither a task with a generator "
                         f"({', '.join(generating_tasks())}) nor a folder holding task.toml")
    out = args.out or Path("data") / f"{args.task}-{args.difficulty}"
    return build_splits(args.task, out, difficulty=args.difficulty,
                        counts={"train": args.train, "val": args.val, "test": args.test},
                        exclude=args.exclude, seed=args.seed, workers=args.workers or None)


def run_train(args: argparse.Namespace) -> dict[str, Any] | None:
    """Train from a run config. Under torchrun every rank runs this (process group started
    here, NCCL or gloo by device) and rank 0 alone writes files and returns the summary."""
    if args.config is not None and own_task.is_task_folder(args.config):
        args.ship = args.ship or own_task.checkpoint_stem(args.config)
        args.config = own_task.run_config(args.config)
    run = load_run(args.config, args.overrides)
    ranks = distributed.start(run.train.device)
    try:
        return _train(args, run, ranks)
    finally:
        distributed.stop()


def _train(args: argparse.Namespace, run: RunConfig, ranks: Ranks) -> dict[str, Any] | None:
    if run.train.task_spec:
        own_task.open_task(run.train.task_spec)
    if not run.train.task:
        raise ValueError("the run config names no task: set train.task (or give `trm train` "
                         "your own task's folder)")
    task = get_task(run.train.task)
    run, train_set, eval_set = _training_data(run, task)
    trainer = Trainer(run, task, train_set, eval_set, ranks)
    out_dir = Path(run.train.out_dir)
    if args.fresh and out_dir.exists():
        if ranks.is_main:
            remove_resume(out_dir / "resume")
            for path in (weights_path(out_dir / "best"), card_path(out_dir / "best")):
                path.unlink(missing_ok=True)
        distributed.barrier()
    elif trainer.try_resume():
        log.info("continuing %s from step %d", out_dir, trainer.step)
    elif run.train.init_from:
        warm_start(trainer, run.train.init_from)
    if ranks.is_main:
        (out_dir / "run.json").parent.mkdir(parents=True, exist_ok=True)
        (out_dir / "run.json").write_text(json.dumps(run.to_dict(), indent=2) + "\n")
    bar = ProgressBar(run.train.total_steps)
    with _stop_on_signals(trainer):
        report = trainer.fit(on_log=bar, on_eval=bar.evaluation)
    if not ranks.is_main:
        return None
    summary = {"step": trainer.step, "best_exact": trainer.best_exact,
               "train_seconds": round(trainer.elapsed_s, 1), "out_dir": str(out_dir),
               "curve": trainer.history}
    if args.ship and (out_dir / "best.json").exists():
        _ship(out_dir / "best", args.ship, args.ship_dtype)
        summary["shipped"] = str(args.ship)
    if args.keep_latest:
        # A session whose evaluations never beat the best still moved the run on; without
        # these weights a session on another machine would start again from the best's step.
        _ship(trainer.save_checkpoint(out_dir / "latest", report), args.keep_latest,
              args.ship_dtype)
        summary["latest"] = str(args.keep_latest)
    return summary


@contextlib.contextmanager
def _stop_on_signals(trainer: Trainer) -> Iterator[None]:
    """SIGTERM or Ctrl-C stops training cleanly after the current step: it evaluates, keeps
    the best checkpoint, saves resume state (and `--ship` ships). A second signal is not
    caught."""
    def stop(signum: int, _frame: Any) -> None:
        log.warning("signal %d: stopping after this step (again to abort)", signum)
        trainer.stop_requested = True
        signal.signal(signum, previous[signal.Signals(signum)])

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _training_data(run: RunConfig, task: Task) -> tuple[RunConfig, TrainData, TrainData | None]:
    """The run's training and evaluation data as its task opens them
    (`Task.open_training_data`: CSV puzzle sets, or an ARC build folder's train and test
    splits), and the run with what the data decides filled in (ARC: model.num_puzzle_ids)."""
    cfg = run.train
    train_set = task.open_training_data(cfg.train_data, "train")
    eval_set = task.open_training_data(cfg.eval_data, "eval") if cfg.eval_data else None
    return train_set.fit_run(run), train_set, eval_set


def _ship(source: Path, target: Path, dtype: str = "float32") -> None:
    """Copy a run's checkpoint (its best, or with --keep-latest its latest: weights + card,
    and the task's sidecars, `Task.sidecars`: ARC's identifier table) to `target`, a
    checkpoint stem, its weights cast to `dtype`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(source)
    card = {k: v for k, v in checkpoint.card.items() if k not in ("format", "dtype", "model")}
    save_checkpoint(target, checkpoint.model, card, dtype)
    task = task_of_card(checkpoint.card)
    for sidecar, copy in zip(task.sidecars(source), task.sidecars(target), strict=True):
        if sidecar.exists():
            shutil.copyfile(sidecar, copy)


def run_eval(args: argparse.Namespace) -> dict[str, Any]:
    if args.url:
        return _eval_service(args)
    if args.checkpoint is None:
        raise ValueError("name a checkpoint, or a service with --url")
    device = resolve_device(args.device)
    checkpoint = load_checkpoint(args.checkpoint, device)
    task = task_of_card(checkpoint.card)
    data = load_puzzle_csv(args.data, task, args.buckets).head(args.limit)
    # The service's policy and choices (TRM_DTYPE): the same --dtype, the same arithmetic.
    model, precision = prepare_for_inference(checkpoint.model, device, args.dtype)
    report = evaluate(model, task, data, max_steps=args.max_steps,
                      halting=args.halting, attempts=args.attempts,
                      batch_size=args.batch_size, autocast_dtype=precision.autocast,
                      seed=args.seed, search=_search_of(args, checkpoint.config))
    report["settings"]["precision"] = precision.name
    report["checkpoint"] = {"id": checkpoint.id, "sha256": checkpoint.sha256,
                            "device": str(device)}
    _print_and_save(report, args.json)
    if args.record:
        evaluations = dict(checkpoint.card.get("evaluations", {}))
        key = f"{Path(args.data).stem}/{args.halting}/k{args.attempts}"
        if args.budget_steps:
            key += f"/b{args.budget_steps}"
        evaluations[key] = {"overall": report["overall"], "buckets": report["buckets"],
                            "settings": report["settings"]}
        update_card(args.checkpoint, evaluations=evaluations)
    return {"overall": report["overall"], "speed": report["speed"]}


def _eval_service(args: argparse.Namespace) -> dict[str, Any]:
    task = get_task(args.task or served_task(args.url, args.api_key))
    data = load_puzzle_csv(args.data, task, args.buckets).head(args.limit)
    options: dict[str, Any] = {"halting": args.halting, "attempts": args.attempts,
                               "budget_steps": args.budget_steps, "seed": args.seed}
    if args.max_steps:
        options["max_steps"] = args.max_steps
    report = evaluate_service(args.url, task, data, options=options,
                              concurrency=args.concurrency, api_key=args.api_key)
    _print_and_save(report, args.json)
    return {"overall": report["overall"], "speed": report["speed"]}


def _search_of(args: argparse.Namespace, config: ModelConfig) -> SearchConfig | None:
    """`trm eval`'s search flags as the search the service would run (None: single pass)."""
    if args.budget_steps <= 0:
        return None
    return SearchConfig(budget_steps=args.budget_steps, attempts=args.search_attempts,
                        max_steps=args.max_steps or config.max_supervision_steps,
                        round_steps=args.round_steps, latent_noise=args.latent_noise,
                        keep_fraction=args.keep_fraction)


def _print_and_save(report: dict[str, Any], path: Path | None) -> None:
    print(format_table(report))
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")


def run_export(args: argparse.Namespace) -> dict[str, Any]:
    from training.bundle import STEP_FILE, write_bundle
    from training.export import check_export, export_step  # needs the [onnx] extra

    checkpoint = load_checkpoint(args.checkpoint)
    summary: dict[str, Any]
    if args.bundle is not None:
        manifest = write_bundle(checkpoint, args.bundle)
        path = args.bundle / STEP_FILE
        summary = {"bundle": str(args.bundle), "files": manifest["files"]}
    else:
        path = export_step(checkpoint.model, args.onnx)
        summary = {"onnx": str(path), "bytes": path.stat().st_size}
    if args.check:
        summary["max_abs_diff"] = check_export(checkpoint.model, path,
                                               from_tokens=args.bundle is not None)
    return summary


def run_serve(args: argparse.Namespace) -> None:
    from app.__main__ import main as serve_main  # the service is an optional extra

    serve_main(args.args, prog="trm serve")


def run_worker(args: argparse.Namespace) -> None:
    from app.worker_main import main as worker_main  # needs the serve and scale extras

    raise SystemExit(worker_main(args.args, prog="trm worker"))
