"""Fixtures for the HTTP service tests: a tiny seeded Sudoku checkpoint, settings pointing at it,
a real uvicorn server on a loopback port, an engine-speed control, and SSE / metrics parsers.

`shared_server` (and so `client`) runs every contract test twice, once per runner: "local"
(engine threads in the server's process) and "broker" (a private redis-server, one broker worker
process and an API replica in broker mode), so both modes keep one HTTP contract. A module that
serves other checkpoints or limits overrides `shared_overrides` (tests/app/test_arc_http.py).

The model is untrained, so answers are mostly "unsolved"; tests check shapes, sequences and
statuses, not correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from http_helpers import MAX_STEPS, TickControl
from in_thread import RunningServer, serve_in_thread
from redis_helpers import broker_stack

from app.metrics import ModelMetrics
from app.settings import Settings
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.engine import TickStats
from trm_core.model import TRM


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2,
                            max_supervision_steps=MAX_STEPS))
    save_checkpoint(root / "sudoku" / "tiny", model, {"name": "trm-sudoku-tiny",
                                                      "task": "sudoku"})
    return root


@pytest.fixture(scope="session")
def make_settings(checkpoint_dir: Path) -> Callable[..., Settings]:
    """Settings for the tiny checkpoint; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {"checkpoint_dir": checkpoint_dir, "device": "cpu",
                                "max_batch_size": 16, "shutdown_timeout_s": 5.0}
        return Settings(**{**base, **overrides})

    return make


@pytest.fixture(scope="module")
def shared_overrides() -> dict[str, Any]:
    """Settings of the module's `shared_server` beyond the defaults (for the API replica and,
    in broker mode, the worker too)."""
    return {}


@pytest.fixture(scope="module", params=["local", "broker"])
def shared_server(request: pytest.FixtureRequest, checkpoint_dir: Path,
                  shared_overrides: dict[str, Any],
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that do not change its state or settings, per runner."""
    settings = Settings(**{"checkpoint_dir": checkpoint_dir, "device": "cpu",
                           "max_batch_size": 16, **shared_overrides})
    if request.param == "local":
        with serve_in_thread(settings) as running:
            yield running
        return
    worker = {k: v for k, v in shared_overrides.items() if k != "checkpoint_dir"}
    with broker_stack(settings, tmp_path_factory.mktemp("broker"), **worker) as running:
        yield running


@pytest.fixture
def runner(shared_server: RunningServer, request: pytest.FixtureRequest) -> str:
    """Which runner `client` talks to: "local" or "broker"."""
    return str(request.node.callspec.params["shared_server"])


@pytest.fixture
def client(shared_server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.base_url, timeout=30) as http:
        yield http


@pytest.fixture
def start_server(make_settings: Callable[..., Settings]
                 ) -> Iterator[Callable[..., tuple[RunningServer, httpx.Client]]]:
    """Start a dedicated server with overridden settings; stopped after the test."""
    stack: list[tuple[Any, httpx.Client]] = []

    def start(**overrides: Any) -> tuple[RunningServer, httpx.Client]:
        context = serve_in_thread(make_settings(**overrides))
        running = context.__enter__()
        http = httpx.Client(base_url=running.base_url, timeout=30)
        stack.append((context, http))
        return running, http

    yield start
    for context, http in reversed(stack):
        http.close()
        context.__exit__(None, None, None)


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> Iterator[TickControl]:
    control = TickControl()
    original = ModelMetrics.observe_tick

    def observe(self: ModelMetrics, stats: TickStats) -> None:
        original(self, stats)
        control.hook(stats)

    monkeypatch.setattr(ModelMetrics, "observe_tick", observe)
    yield control
    control.delay_s = 0.0
    control.gate.set()
