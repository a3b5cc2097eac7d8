"""A real server on a loopback port in a background thread, for tests and benchmarks:
`with serve_in_thread(settings) as running: httpx.get(running.base_url + "/readyz")`.

Benchmarks import it too (they put this folder on sys.path); the service itself never does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI

from app.main import create_app
from app.server import DrainingServer, build_server
from app.service import SolveService
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    """A server on a loopback port, in a background thread."""

    app: FastAPI
    server: DrainingServer
    thread: threading.Thread
    base_url: str

    @property
    def service(self) -> SolveService:
        service: SolveService = self.app.state.service
        return service

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until models are loaded, warm and their workers running."""
        deadline = time.monotonic() + timeout_s
        while not self.service.ready:
            if self.service.startup_error:
                raise RuntimeError(f"start-up failed: {self.service.startup_error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout_s} s: {self.service.readiness()}")
            time.sleep(0.02)

    def begin_drain(self) -> None:
        """Start draining as a shutdown would, but keep accepting connections, so a caller can
        watch what clients see meanwhile."""
        assert self.server.loop is not None
        self.server.loop.call_soon_threadsafe(self.service.begin_drain)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Shut down as SIGTERM would (drain included) and wait for the thread."""
        self.server.should_exit = True
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            log.warning("server thread still running after %.0f s", timeout_s)


@contextlib.contextmanager
def serve_in_thread(settings: Settings, app: FastAPI | None = None, wait_ready: bool = True,
                    log_level: str = "warning") -> Iterator[RunningServer]:
    """Serve `app` (or a new one from `settings`) on 127.0.0.1 at a free port."""
    app = app or create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = build_server(app, settings, "127.0.0.1", port, log_level=log_level,
                          access_log=False)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="uvicorn", daemon=True)
    thread.start()
    running = RunningServer(app, server, thread, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        if wait_ready:
            running.wait_ready()
        yield running
    finally:
        running.stop()
        sock.close()
