"""The session in order: data, the maze phase, the Sudoku phase, the benchmarks, each in its own
slice of one wall-clock budget and each failing alone (logged, recorded, the next one runs).
`session.json` in --out is rewritten after every step, and by the watchdog if the budget runs out.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

from training.gpu_session.bench import run_benchmarks
from training.gpu_session.clock import Clock, Watchdog, stop_children
from training.gpu_session.data import BackgroundBuild, build_now, check_carried
from training.gpu_session.plan import PHASES, PhaseSpec, SessionPlan
from training.gpu_session.train import release_memory, train_with_fallback

log = logging.getLogger(__name__)
DataSource = Path | BackgroundBuild


class Session:
    """Runs a `SessionPlan`; `summary` is what `session.json` holds."""

    def __init__(self, plan: SessionPlan) -> None:
        self.plan, self.clock = plan, Clock(plan.time_limit_s)
        self.phases = [spec for spec in PHASES if spec.name not in plan.skip]
        self.sources: dict[str, DataSource] = {}
        self.summary: dict[str, Any] = {
            "plan": json.loads(json.dumps(dataclasses.asdict(plan), default=str)),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "torch": torch.__version__,
            "cpu_count": os.cpu_count(), "data": {}, "phases": {}}

    def run(self) -> dict[str, Any]:
        self.plan.out.mkdir(parents=True, exist_ok=True)
        watchdog = Watchdog(self.clock, self.plan.time_limit_s + self.plan.slack_s,
                            self.write_summary)
        watchdog.start()
        try:
            self.prepare_data()
            # Named only now: asking starts CUDA, and the first data build forks its workers.
            self.summary["device"] = _device_name()
            for spec in self.phases:
                self.run_phase(spec)
            if "bench" not in self.plan.skip:
                self.run_bench()
        finally:
            watchdog.cancel()
            stop_children()
            self.write_summary()
        return self.summary

    def prepare_data(self) -> None:
        """The first phase's data now, on every core; the later phases' in the background."""
        cores = self.plan.workers or os.cpu_count() or 1
        for index, spec in enumerate(self.phases):
            folder = self.plan.work / "data" / spec.name
            count = self.plan.train_counts[spec.name]
            try:
                if spec.name in self.plan.prebuilt:
                    self.sources[spec.name] = check_carried(self.plan.prebuilt[spec.name], spec)
                elif index == 0:
                    self.sources[spec.name] = build_now(spec, folder, count, cores)
                else:
                    self.sources[spec.name] = BackgroundBuild(spec, folder, count,
                                                              max(1, cores - 2))
            except Exception as err:
                log.exception("%s: no training data", spec.name)
                self.summary["phases"][spec.name] = _failure(err)
            self.summary["data"][spec.name] = {"folder": str(folder), "requested": count}
        self.write_summary()

    def budget_for(self, spec: PhaseSpec) -> float:
        """Seconds the phase may use: the maze phase its own cap, the last what is left once
        the benchmarks and the final writes are set aside."""
        left = self.clock.left() - self.plan.bench_s - self.plan.slack_s
        return min(self.plan.maze_s, left) if spec.name == "maze-hard" else left

    def run_phase(self, spec: PhaseSpec) -> None:
        source = self.sources.get(spec.name)
        if source is None:
            return
        try:
            if isinstance(source, BackgroundBuild):
                source = source.wait(self.budget_for(spec) / 2)
            self.summary["data"][spec.name].update(
                csv=str(source), ready_at_s=round(self.clock.elapsed(), 1))
            budget = self.budget_for(spec)
            log.info("%s: phase budget %.0f s at %.0f s", spec.name, budget, self.clock.elapsed())
            record = train_with_fallback(spec, self.plan, source, budget)
        except Exception as err:
            log.exception("%s failed", spec.name)
            record = _failure(err)
        record["ended_at_s"] = round(self.clock.elapsed(), 1)
        self.summary["phases"][spec.name] = record
        release_memory()
        self.write_summary()

    def run_bench(self) -> None:
        budget = min(self.plan.bench_s, self.clock.left() - self.plan.slack_s)
        log.info("benchmarks: %.0f s at %.0f s", budget, self.clock.elapsed())
        try:
            report = run_benchmarks(self.plan.bench_device, self.plan.work / "bench", budget)
        except Exception as err:
            log.exception("benchmarks failed")
            report = _failure(err)
        (self.plan.out / "benchmarks.json").write_text(json.dumps(report, indent=2) + "\n")

    def write_summary(self) -> None:
        self.summary["elapsed_s"] = round(self.clock.elapsed(), 1)
        text = json.dumps(self.summary, indent=1, default=str)
        (self.plan.out / "session.json").write_text(text + "\n")

    @property
    def failed(self) -> list[str]:
        return [name for name, record in self.summary["phases"].items()
                if record.get("status") != "ok"]


def _failure(err: BaseException) -> dict[str, Any]:
    return {"status": "failed", "error": f"{type(err).__name__}: {err}"[:2000]}


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return platform.processor() or "cpu"
