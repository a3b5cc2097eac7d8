"""`create_app(settings)`: the FastAPI application, its middleware, routes and lifespan.

The lifespan starts loading and warming models in the background (so `/livez` answers and
`/readyz` says 503 meanwhile), sweeps expired jobs, and on shutdown drains: no new solves, in-flight
jobs get `TRM_SHUTDOWN_TIMEOUT_S` to finish, the rest fail with reason "shutdown", workers stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI
from mcp.server.fastmcp import FastMCP
from starlette.middleware import Middleware

import trm_core
from app.auth import ApiKeyMiddleware, public_paths
from app.examples import ExampleGenerator
from app.jobs import JobStore
from app.mcp_server import build_mcp
from app.metrics import Metrics
from app.middleware import BodyGuardMiddleware, HostGuardMiddleware, RequestContextMiddleware
from app.problems import install_problem_handlers
from app.registry import ModelRegistry
from app.routes import bundles, docs, examples, health, jobs, models, solve, tools, viewer
from app.runners import make_runner
from app.service import SolveService
from app.settings import Settings
from app.task_apis import OWN_ROUTES

log = logging.getLogger(__name__)
DESCRIPTION = """Tiny Recursive Models solving grid puzzles over HTTP.

Solve synchronously, stream every supervision step as server-sent events, or run a job and follow
its resumable event stream. Errors are RFC 9457 `application/problem+json`.
"""


def _lifespan(service: SolveService, mcp: FastMCP,  # type: ignore[type-arg]
              examples: ExampleGenerator,
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up in the background, job expiry while serving, drain on the way out (the
    example generator's processes stop too); the MCP session manager's task group must run
    for as long as the app serves `/mcp`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        startup = asyncio.create_task(service.start(), name="trm-startup")
        sweep_every = max(1.0, min(60.0, service.settings.job_ttl_s / 4))
        sweeper = asyncio.create_task(service.store.sweep_forever(sweep_every),
                                      name="trm-job-sweeper")
        try:
            async with mcp.session_manager.run():
                yield
        finally:
            await service.drain()
            await examples.close()
            for task in (sweeper, startup):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    return lifespan


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh application with its own models, job store and metrics registry."""
    settings = settings or Settings()
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)
    store = JobStore(settings.job_ttl_s, max_jobs=settings.job_store_max_jobs,
                     max_bytes=settings.job_store_max_bytes)
    service = SolveService(settings, registry, store, metrics)
    service.use(make_runner(service))
    keys = [key.get_secret_value() for key in settings.api_keys]
    middleware = [
        # Outermost first: the id exists before the host, auth or body checks can answer.
        Middleware(RequestContextMiddleware),
        Middleware(HostGuardMiddleware, allowed_hosts=settings.allowed_hosts,
                   problem_base_uri=settings.problem_base_uri),
        Middleware(ApiKeyMiddleware, keys=keys, problem_base_uri=settings.problem_base_uri,
                   public_paths=public_paths(settings.metrics_public)),
        Middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes,
                   problem_base_uri=settings.problem_base_uri,
                   timeout_s=settings.request_body_timeout_s),
    ]
    mcp = build_mcp(service, settings)
    examples_generator = ExampleGenerator(settings.generate_workers,
                                          settings.generate_max_inflight, settings.retry_after_s)
    mcp_routes = mcp.streamable_http_app().routes  # creates the session manager
    # /docs is ours (app/routes/docs.py): its assets come from a package, not a CDN.
    app = FastAPI(title="trm-serve", version=trm_core.__version__, description=DESCRIPTION,
                  lifespan=_lifespan(service, mcp, examples_generator), middleware=middleware,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.service = service
    app.state.examples = examples_generator
    install_problem_handlers(app, settings.problem_base_uri)
    # tasks' own routes first: a task's /v1/solve/<task> must win over /v1/solve/{task}
    for router in OWN_ROUTES.values():
        app.include_router(router)
    for module in (solve, jobs, models, bundles, health, examples, tools, viewer, docs):
        app.include_router(module.router)
    app.state.mcp = mcp
    # The MCP endpoint as a plain route at /mcp (a Mount would redirect /mcp to /mcp/).
    app.router.routes.extend(mcp_routes)
    app.mount("/static", viewer.static_files(), name="static")
    app.mount(docs.ASSETS, docs.assets(), name="docs-assets")
    if keys:
        log.info("API keys required (%d configured)", len(keys))
    return app
