"""Fixtures for broker-mode fault tests: a private `redis-server` (tests/redis_helpers.py), real
worker processes on the shipped checkpoint, and a real API server in a thread pointed at that
Redis.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from in_thread import RunningServer, serve_in_thread
from redis_helpers import (  # noqa: F401 (re-exported to the tests of this folder)
    REDIS_SERVER,
    ROOT,
    RedisProcess,
    Workers,
    free_port,
    wait_until,
)
from shipped_models import tiny_only

from app.settings import Settings

redis = pytest.importorskip("redis", reason="broker mode needs redis-py (the scale extra)")

CHECKPOINTS = tiny_only()



@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("needs a redis-server binary")
    server = RedisProcess(free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    group = Workers(tmp_path, CHECKPOINTS)
    yield group
    group.stop_all()


@pytest.fixture
def start_api() -> Iterator[Callable[..., tuple[RunningServer, httpx.Client]]]:
    """An API replica in broker mode; `ready=False` skips waiting for a worker heartbeat."""
    stack: list[tuple[Any, httpx.Client]] = []

    def start(redis_url: str, ready: bool = True, **overrides: Any
              ) -> tuple[RunningServer, httpx.Client]:
        settings = Settings(**{"checkpoint_dir": CHECKPOINTS, "device": "cpu",
                               "redis_url": redis_url, "shutdown_timeout_s": 2.0,
                               "reclaim_idle_s": 2.0, **overrides})
        context = serve_in_thread(settings, wait_ready=False)
        running = context.__enter__()
        http = httpx.Client(base_url=running.base_url, timeout=60)
        stack.append((context, http))
        if ready:  # a worker's start-up (torch import, model load, warm-up) on 2 busy cores
            running.wait_ready(180)
        return running, http

    yield start
    for context, http in reversed(stack):
        http.close()
        context.__exit__(None, None, None)
