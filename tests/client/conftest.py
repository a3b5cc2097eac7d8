"""A real service with the shipped checkpoint for the client tests, on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from in_thread import RunningServer, serve_in_thread
from shipped_models import tiny_only

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def shipped_settings() -> Settings:
    return Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4,
                    shutdown_timeout_s=2.0)


@pytest.fixture(scope="module")
def server(shipped_settings: Settings) -> Iterator[RunningServer]:
    with serve_in_thread(shipped_settings) as running:
        yield running
