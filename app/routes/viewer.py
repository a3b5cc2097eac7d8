"""The browser viewer: `/` serves `app/static/index.html`; its scripts, styles and the vendored
onnxruntime-web (`static/ort/`) live under `/static/`. Both are public so the page loads before a
key is entered."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
# onnxruntime-web (static/ort/) imports its loader as a module, which a browser runs only when it
# is served as JavaScript, and compiles its runtime fastest when served as application/wasm; not
# every system's MIME table knows either suffix.
mimetypes.add_type("text/javascript", ".mjs")
mimetypes.add_type("application/wasm", ".wasm")

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def static_files() -> StaticFiles:
    return StaticFiles(directory=STATIC_DIR)
