"""What the viewer's browser tests share: Debian's Chromium driven by Playwright for Python
through `executable_path` (never a downloaded browser), its flags, and a step recorder."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Records every step number the page draws, so a test can tell that steps were shown one by one
# rather than only the last.
WATCH_STEPS = """() => {
  window.stepsSeen = [];
  new MutationObserver(() => {
    const step = document.getElementById("step").dataset.step;
    if (step && window.stepsSeen.at(-1) !== Number(step)) window.stepsSeen.push(Number(step));
  }).observe(document.getElementById("step"), { attributes: true, childList: true });
}"""
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on this "
                                                             "machine (apt-get install chromium)")


@contextmanager
def chromium(profile: Path, height: int) -> Iterator[Any]:
    """A headless persistent Chromium context, 1060 px wide and `height` tall."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1060, "height": height})
        try:
            yield context
        finally:
            context.close()


def open_viewer(browser: Any, base_url: str) -> Any:
    """A new page on the viewer, once its example list has loaded."""
    page = browser.new_page()
    page.goto(base_url + "/")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    return page
