"""Real infrastructure for broker-mode tests: a private `redis-server` on a free loopback port
(never a shared one) and broker worker processes (`python -m app.worker_main`). Used by
tests/broker and by the contract tests in tests/app that run against both runners.

Every wait is bounded; every process started here is stopped here, SIGKILLed if it lingers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from in_thread import RunningServer, serve_in_thread

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str,
               every_s: float = 0.05) -> None:
    """Poll `check` until it holds; fail the test naming `what` after `timeout_s`."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class RedisProcess:
    """A private redis-server that a test may stop and start again on the same port."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        # None: nothing kept across a restart; a folder: an append-only file there, as compose
        # runs Redis (appendfsync everysec)
        self.data_dir: Path | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        persistence = (["--appendonly", "no"] if self.data_dir is None else
                       ["--appendonly", "yes", "--appendfsync", "everysec",
                        "--dir", str(self.data_dir)])
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, "redis-server to answer")
        client.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


class Workers:
    """Worker subprocesses of one test."""

    def __init__(self, tmp_path: Path, checkpoint_dir: Path) -> None:
        self.tmp_path = tmp_path
        self.checkpoint_dir = checkpoint_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, redis_url: str, worker_fault: str = "", **settings: Any
              ) -> subprocess.Popen[bytes]:
        """A worker process with `settings` (TRM_* names, lower case); `worker_fault` "drop"
        or "slow" starts tests/fault_worker.py instead."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRM_")}
        base = {"checkpoint_dir": str(self.checkpoint_dir), "device": "cpu", "torch_threads": 1,
                "max_batch_size": 8, "worker_heartbeat_s": 0.5, "log_level": "info",
                "redis_url": redis_url, "worker_id": f"w{len(self.procs)}"}
        for key, value in {**base, **settings}.items():
            env[f"TRM_{key.upper()}"] = str(value)
        log = (self.tmp_path / f"worker{len(self.procs)}.log").open("ab")
        command = ([str(ROOT / "tests" / "fault_worker.py"), worker_fault] if worker_fault
                   else ["-m", "app.worker_main"])
        proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("worker*.log")))


@contextlib.contextmanager
def broker_stack(settings: Settings, folder: Path, **worker_settings: Any
                 ) -> Iterator[RunningServer]:
    """A redis-server, one broker worker process for `settings`' checkpoints (with
    `worker_settings` as well) and an API replica in broker mode, all stopped on exit."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("needs a redis-server binary")
    redis_server = RedisProcess(free_port(), folder / "redis.log")
    redis_server.start()
    workers = Workers(folder, Path(settings.checkpoint_dir or "."))
    try:
        workers.start(redis_server.url, **{"max_batch_size": settings.max_batch_size,
                                           "search_budget_steps": 0, **worker_settings})
        api = settings.model_copy(update={"redis_url": redis_server.url})
        with serve_in_thread(api, wait_ready=False) as running:
            running.wait_ready(90)
            yield running
    finally:
        workers.stop_all()
        redis_server.stop()
