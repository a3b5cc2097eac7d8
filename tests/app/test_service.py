"""The service against an exact stand-in runner: admission, records, waiting, events, cancel,
drain and lookup, without engines, threads, HTTP or Redis.

`ScriptedRunner` answers every puzzle with a known grid after a known number of steps, each step
one event loop turn, reporting through the ledger exactly as the real runners do. The real
runners are held to the same contract over HTTP by the tests that run against both of them
(`shared_server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from http_helpers import PUZZLE

from app import payloads
from app.errors import ApiError
from app.jobs import JobStore, TrackedJob
from app.metrics import Metrics
from app.registry import ModelEntry, ModelRegistry
from app.runners.base import PuzzleWork, Runner, RunnerFull, Work, WorkKind
from app.schemas import SolveRequest
from app.service import SolveService
from app.settings import Settings
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.engine import JobResult
from trm_core.model import TRM
from trm_core.tasks import TASKS

STEPS = 3
SUDOKU = TASKS["sudoku"]
# the stand-in's answer to every puzzle: the puzzle itself (blanks unfilled: "unsolved")
ANSWER = SUDOKU.format(SUDOKU.parse(PUZZLE))


class ScriptedRunner(Runner):
    """Accepts with queue position 7, then one step per loop turn for `STEPS` steps (step
    `n` has confidence n/10), then answers `ANSWER`."""

    def __init__(self, service: SolveService) -> None:
        self.ledger, self.settings = service.ledger, service.settings
        self.refuse: str | None = None
        self.full = False
        self.drained = False
        self.found: dict[str, TrackedJob] = {}
        self.playing: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        self.started = True

    def readiness(self) -> dict[str, str]:
        return {"scripted": "ok" if self.started else "not started"}

    def refusal(self, entry: ModelEntry, kind: WorkKind) -> str | None:
        return self.refuse

    def queue_position(self, entry: ModelEntry) -> int:
        return 7

    def submit(self, record: TrackedJob, entry: ModelEntry, work: Work) -> None:
        if self.full:
            raise RunnerFull
        assert isinstance(work, PuzzleWork)
        self.ledger.accept(record, 7)
        self.playing[record.id] = asyncio.get_running_loop().create_task(
            self._play(record, entry, work))

    async def _play(self, record: TrackedJob, entry: ModelEntry, work: PuzzleWork) -> None:
        for step in range(1, STEPS + 1):
            await asyncio.sleep(0)
            self.ledger.running(record, elapsed_ms=float(step))
            self.ledger.publish(record, "solve.step", {"step": step, "confidence": step / 10},
                                event_id=step)
        answer = work.cells.copy()
        result = JobResult(record.id, "unsolved", answer, False, STEPS, False, 0.5, 0.25,
                           attempt=0, attempts=1, queue_ms=1.0, compute_ms=2.0, total_ms=3.0)
        self.ledger.end(record, payloads.ending_of(
            record, entry.task, result, self.settings, puzzle=work.cells, calibration=None,
            trajectory=record.trajectory))

    async def cancel(self, record: TrackedJob, reason: str) -> bool:
        task = self.playing.pop(record.id, None)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def find(self, job_id: str) -> TrackedJob | None:
        return self.found.get(job_id)

    async def drain(self) -> None:
        self.drained = True  # jobs in flight stay unfinished: the service fails them


@pytest.fixture(scope="module")
def cards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cards")
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=16, num_heads=2, recursions=1, latent_updates=1,
                            max_supervision_steps=4))
    save_checkpoint(root / "sudoku" / "t", model, {"name": "t", "task": "sudoku"})
    return root


Scenario = Callable[[SolveService, ScriptedRunner], Awaitable[None]]


def run(cards: Path, scenario: Scenario, **settings: Any) -> Metrics:
    """Run `scenario` against a started service on card-only models and the stand-in."""
    config = Settings(checkpoint_dir=cards, device="cpu", **settings)
    metrics = Metrics()
    registry = ModelRegistry(config, metrics)
    registry.read_cards()
    service = SolveService(config, registry, JobStore(60.0), metrics)
    runner = ScriptedRunner(service)
    service.use(runner)

    async def main() -> None:
        await service.start()
        await scenario(service, runner)

    asyncio.run(asyncio.wait_for(main(), timeout=10))
    return metrics


def count(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def solve(service: SolveService, kind: Any = "solve", **body: Any) -> TrackedJob:
    request = SolveRequest.model_validate({"puzzle": PUZZLE, **body})
    return service.admit("sudoku", request, kind=kind, request_id="r1",
                         keep_events=kind != "solve")


async def never() -> None:
    await asyncio.Event().wait()


def test_a_solve_is_answered_with_the_runners_result_and_counted_once(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        record = solve(service, return_steps=False)
        result = await service.wait(record, never())
        assert result["answer"] == ANSWER and result["status"] == "unsolved"
        assert result["steps_used"] == STEPS and result["timing"]["total_ms"] == 3.0
        assert record.status == "succeeded" and not service.ledger.inflight

    metrics = run(cards, scenario)
    labels = {"task": "sudoku", "model": "t@1", "endpoint": "solve"}
    assert count(metrics, "trm_requests_total", outcome="unsolved", **labels) == 1
    assert count(metrics, "trm_time_to_first_step_seconds_count", task="sudoku",
                 model="t@1") == 1


def test_events_replay_then_follow_to_the_terminal_one(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        record = solve(service, kind="job")
        events = [e async for e in service.events(record, after=-1, cancel_on_close=False)
                  if e is not None]
        assert [(e.id, e.name) for e in events] == [
            (0, "solve.accepted"), *((n, "solve.step") for n in range(1, STEPS + 1)),
            (STEPS + 1, "solve.completed")]
        assert events[0].data["queue_position"] == 7
        assert [e.data["confidence"] for e in events[1:-1]] == [0.1, 0.2, 0.3]
        resumed = [e.id async for e in service.events(record, after=2, cancel_on_close=False)
                   if e is not None]
        assert resumed == [3, STEPS + 1]
        assert (await service.find_job(record.id)) is record

    run(cards, scenario)


def test_cancel_ends_the_record_once_and_a_finished_job_is_a_conflict(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        record = solve(service, kind="job")
        assert await service.cancel(record, "changed my mind")
        assert record.status == "cancelled" and record.events[-1].data["reason"] == \
            "changed my mind"
        assert not await service.cancel(record, "again")
        done = solve(service, kind="job")
        await done.done.wait()
        with pytest.raises(ApiError) as conflict:
            await service.cancel_job(done.id)
        assert conflict.value.status == 409

    metrics = run(cards, scenario)
    assert count(metrics, "trm_requests_total", task="sudoku", model="t@1", endpoint="jobs",
                 outcome="cancelled") == 1


@pytest.mark.parametrize(("refuse", "full", "status", "reason"), [
    ("queue_full", False, 503, "queue_full"),
    ("not_ready", False, 503, "not_ready"),
    (None, True, 503, "queue_full"),
    ("unsupported", False, 501, None),
])
def test_runner_refusals_become_problems(cards: Path, refuse: str | None, full: bool,
                                         status: int, reason: str | None) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        runner.refuse, runner.full = refuse, full
        with pytest.raises(ApiError) as refused:
            solve(service, kind="job")
        assert refused.value.status == status
        assert refused.value.extra.get("reason") == reason
        assert len(service.store) == 0 and not service.ledger.inflight  # nothing was kept

    metrics = run(cards, scenario)
    if reason is not None:
        assert count(metrics, "trm_rejections_total", task="sudoku", reason=reason) == 1


def test_invalid_puzzles_are_refused_before_the_runner_sees_them(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        with pytest.raises(ApiError) as invalid:
            solve(service, puzzle=PUZZLE[:80])
        assert invalid.value.status == 422 and not runner.playing

    metrics = run(cards, scenario)
    assert count(metrics, "trm_requests_total", task="sudoku", model="t@1", endpoint="solve",
                 outcome="invalid") == 1


def test_drain_fails_what_the_runner_left_and_refuses_new_work(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        record = solve(service, kind="job")
        runner.playing[record.id].cancel()  # a job the runner never finishes
        await service.drain()
        assert runner.drained and record.status == "failed"
        assert record.error is not None and record.error["status"] == 503
        assert service.readiness() == {"scripted": "ok", "not_draining": "draining"}
        with pytest.raises(ApiError) as refused:
            solve(service)
        assert refused.value.extra.get("reason") == "draining"

    run(cards, scenario)


def test_jobs_made_elsewhere_are_found_through_the_runner(cards: Path) -> None:
    async def scenario(service: SolveService, runner: ScriptedRunner) -> None:
        elsewhere = TrackedJob("job_x", "job", "sudoku", "t@1", 4, "r0", keep_events=True)
        runner.found["job_x"] = elsewhere
        assert await service.find_job("job_x") is elsewhere
        with pytest.raises(ApiError) as unknown:
            await service.find_job("job_y")
        assert unknown.value.status == 404

    run(cards, scenario)

