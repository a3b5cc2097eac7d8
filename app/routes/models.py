"""`GET /v1/models` and `GET /v1/models/{id}`: what is loaded, where, and how it batches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app import errors
from app.registry import ModelEntry
from app.routes import service_of
from app.schemas import PROBLEM_RESPONSES, ModelInfo, ModelList

router = APIRouter(tags=["models"])


@router.get("/v1/models", response_model=ModelList)
async def list_models(request: Request) -> dict[str, Any]:
    registry = service_of(request).registry
    defaults = set(registry.defaults.values())
    return {"object": "list",
            "data": [e.describe(e.id in defaults) for e in registry.entries.values()]}


def entry_by_id(request: Request, model_id: str) -> ModelEntry:
    """The loaded model `model_id` (name@version); a 404 listing the loaded ones otherwise."""
    entries = service_of(request).registry.entries
    entry = entries.get(model_id)
    if entry is None:
        raise errors.not_found("model", f"unknown model {model_id!r}; loaded: "
                               f"{', '.join(entries) or 'none'}", available=sorted(entries))
    return entry


@router.get("/v1/models/{model_id}", response_model=ModelInfo, responses=PROBLEM_RESPONSES)
async def get_model(model_id: str, request: Request) -> dict[str, Any]:
    entry = entry_by_id(request, model_id)
    defaults = service_of(request).registry.defaults.values()
    return entry.describe(entry.id in set(defaults))
