"""`/docs` renders with the network off: Swagger UI's scripts and styles come from a package
(`app/routes/docs.py`), so a headless Chromium that may reach nothing but the service still shows
every route."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from browser_helpers import chromium, needs_chromium
from in_thread import RunningServer, serve_in_thread

from app.settings import Settings

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(checkpoint_dir: Path) -> Iterator[RunningServer]:
    with serve_in_thread(Settings(checkpoint_dir=checkpoint_dir, device="cpu",
                                  max_batch_size=2, api_keys=["k"])) as running:
        yield running


def test_docs_render_air_gapped(server: RunningServer, tmp_path: Path) -> None:
    service = urlparse(server.base_url).netloc
    blocked: list[str] = []

    def only_the_service(route: Any) -> None:
        if urlparse(route.request.url).netloc == service:
            route.continue_()
        else:  # the network is off: anything else would have to come from outside
            blocked.append(route.request.url)
            route.abort("internetdisconnected")

    with chromium(tmp_path / "profile", 900) as context:
        context.route("**/*", only_the_service)
        page = context.new_page()
        page.goto(server.base_url + "/docs")
        page.wait_for_selector(".swagger-ui .information-container .title", timeout=30_000)
        assert "trm-serve" in page.text_content(".swagger-ui .information-container .title")
        page.wait_for_selector("[data-path='/v1/solve/{task}']")
        assert page.locator(".opblock").count() >= 10
    assert blocked == []


def test_docs_and_their_assets_need_no_key(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        page = http.get("/docs")
        assert page.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text.lower()
        assert http.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert http.get("/docs-assets/swagger-ui.css").status_code == 200
        assert http.get("/redoc").status_code in (401, 404)  # off: it would reach a CDN
