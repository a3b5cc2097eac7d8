"""`/docs`: Swagger UI for `/openapi.json`, its script and styles served from the installed
`fastapi-offline` package under `/docs-assets/`, never a CDN, so the page works air-gapped.
(FastAPI's own page loads them from jsDelivr and is blank offline. `/redoc` is off: ReDoc still
fetches its logo from Redocly's CDN.)"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = "/docs-assets"
# swagger-ui-bundle.js and swagger-ui.css (Swagger UI 5, which reads OpenAPI 3.1), favicon.png
ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json", title=f"{request.app.title} · API docs",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css", swagger_favicon_url=f"{ASSETS}/favicon.png")


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


def assets() -> StaticFiles:
    """The documentation page's files as the package ships them."""
    return StaticFiles(directory=ASSETS_DIR)
