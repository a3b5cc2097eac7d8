"""Running the app under uvicorn: a drain-aware server, and an in-thread runner on a loopback
port for tests and benchmarks.

uvicorn waits for open connections before it runs the lifespan shutdown, so a streaming client
would hold shutdown for the whole graceful timeout without ever being told. `DrainingServer`
starts the service's drain the moment shutdown begins: jobs finish or fail with "shutdown", their
streams end, and the connection wait completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from app.connections import ConnectionLimits, guarded_protocol
from app.main import create_app
from app.service import SolveService
from app.settings import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn.Server that begins the app's drain before waiting for connections."""

    def __init__(self, config: uvicorn.Config, service: SolveService) -> None:
        super().__init__(config)
        self.service = service
        self.loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.service.begin_drain()
        await super().shutdown(sockets)


def build_server(app: FastAPI, settings: Settings, host: str, port: int,
                 log_level: str | None = None, access_log: bool = True) -> DrainingServer:
    """One uvicorn worker (batches must not be split across processes) serving `app`, with the
    connection cap and header deadline from `settings` (app/connections.py)."""
    limits = ConnectionLimits(settings.max_connections, settings.request_header_timeout_s,
                              settings.retry_after_s, settings.problem_base_uri)
    config = uvicorn.Config(app, host=host, port=port, workers=1, lifespan="on",
                            http=guarded_protocol(limits),
                            log_level=log_level or settings.log_level, access_log=access_log,
                            timeout_graceful_shutdown=int(settings.graceful_shutdown_s + 0.999))
    return DrainingServer(config, app.state.service)


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
