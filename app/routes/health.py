"""Probes and metrics: `/livez`, `/readyz` (and its alias `/healthz`), `/metrics`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app import errors
from app.metrics import CONTENT_TYPE
from app.routes import service_of
from app.schemas import PROBLEM_RESPONSES, Readiness

router = APIRouter(tags=["health"])


@router.get("/livez")
async def livez() -> dict[str, str]:
    """The process and its event loop are up."""
    return {"status": "alive"}


@router.get("/readyz", response_model=Readiness, responses={503: PROBLEM_RESPONSES[503]})
@router.get("/healthz", response_model=Readiness, responses={503: PROBLEM_RESPONSES[503]},
            include_in_schema=False)
async def readyz(request: Request) -> Response:
    """200 when models are loaded and warm, workers alive and not draining; else 503."""
    service = service_of(request)
    checks = service.readiness()
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        error = errors.unavailable("not_ready", f"not ready: {', '.join(failing)}",
                                   service.settings.retry_after_s)
        error.extra["checks"] = checks
        raise error
    return JSONResponse({"status": "ready", "checks": checks})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    return Response(service_of(request).metrics.render(), media_type=CONTENT_TYPE)
