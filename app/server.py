"""Running the app under uvicorn: a drain-aware server (tests and benchmarks run it in a thread
with tests/in_thread.py).

uvicorn waits for open connections before it runs the lifespan shutdown, so a streaming client
would hold shutdown for the whole graceful timeout without ever being told. `DrainingServer`
starts the service's drain the moment shutdown begins: jobs finish or fail with "shutdown", their
streams end, and the connection wait completes.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import uvicorn
from fastapi import FastAPI

from app.connections import ConnectionLimits, guarded_protocol
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
