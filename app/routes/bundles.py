"""A model's portable bundle (training/bundle.py; built by app/bundles.py):

- `GET /v1/models/{id}/bundle`: its manifest.json (task, tokenisation, shapes, halting rule,
  files with their sha256);
- `GET /v1/models/{id}/bundle/{file}`: one file (`step.onnx`, `solve.py`, `manifest.json`);
- `GET /v1/models/{id}/bundle.zip`: all three.

Answers carry an ETag (the content's sha256), so a browser that has the graph revalidates it
instead of fetching it again. The viewer's "run in this browser" reads the first two.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from app import errors
from app.bundles import ZIP, Bundle, BundleStore
from app.routes.models import entry_by_id
from app.schemas import PROBLEM_RESPONSES

router = APIRouter(tags=["models"])
MEDIA_TYPES = {"manifest.json": "application/json", "step.onnx": "application/octet-stream",
               "solve.py": "text/x-python; charset=utf-8"}


def _store(request: Request) -> BundleStore:
    """The app's bundle store, made on first use (bundles live as long as the app)."""
    state = request.app.state
    if not hasattr(state, "bundles"):
        state.bundles = BundleStore()
    store: BundleStore = state.bundles
    return store


async def _bundle(request: Request, model_id: str) -> Bundle:
    return await _store(request).get(entry_by_id(request, model_id))


def _send(request: Request, bundle: Bundle, name: str, media_type: str,
          filename: str | None = None) -> Response:
    """One of the bundle's files (or its zip) with its ETag; 304 when the client holds it."""
    etag = bundle.etag(name)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(bundle.content(name), media_type=media_type, headers=headers)


@router.get("/v1/models/{model_id}/bundle", responses=PROBLEM_RESPONSES)
async def bundle_manifest(model_id: str, request: Request) -> Response:
    """The manifest of the model's portable bundle (built on first request: seconds)."""
    bundle = await _bundle(request, model_id)
    return _send(request, bundle, "manifest.json", MEDIA_TYPES["manifest.json"])


@router.get("/v1/models/{model_id}/bundle.zip", responses=PROBLEM_RESPONSES)
async def bundle_zip(model_id: str, request: Request) -> Response:
    """The whole bundle as a zip: unpack it and run `python solve.py PUZZLE`."""
    bundle = await _bundle(request, model_id)
    name = f"{model_id.replace('@', '-v')}-bundle.zip"
    return _send(request, bundle, ZIP, "application/zip", filename=name)


@router.get("/v1/models/{model_id}/bundle/{name}", responses=PROBLEM_RESPONSES)
async def bundle_file(model_id: str, name: str, request: Request) -> Response:
    """One file of the model's bundle."""
    bundle = await _bundle(request, model_id)
    if name not in bundle.files:
        raise errors.not_found("bundle-file", f"a bundle holds {', '.join(bundle.files)}; "
                               f"not {name!r}", available=list(bundle.files))
    return _send(request, bundle, name, MEDIA_TYPES[name])
