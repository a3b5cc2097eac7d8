"""What a newcomer sees in the viewer when the model is wrong, and on a phone, in a real headless
Chromium against real uvicorn with the shipped checkpoint: an unverified answer is badged as such,
its rule-breaking cells are outlined, and no given ever changes; a 390 px screen does not scroll
sideways."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_helpers import chromium, needs_chromium, open_viewer
from in_thread import RunningServer, serve_in_thread
from shipped_models import tiny_only

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# A hard puzzle (24 givens, 6 guesses for an exact solver) the tiny model gets wrong.
with (REPO / "training" / "data" / "sudoku-hard-test.csv").open() as _handle:
    HARD = next(csv.DictReader(_handle))["puzzle"]
CELL_VALUES = "() => Array.from(document.querySelectorAll('.cell'), c => c.value || '.').join('')"
CONFLICTS = ("() => Array.from(document.querySelectorAll('.cell'))"
             ".flatMap((c, i) => c.classList.contains('conflict') ? [i] : [])")

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    # The tiny model, whatever else ships: larger ones solve this puzzle.
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4,
                        search_budget_steps=0, default_models=["trm-sudoku-tiny"])
    with serve_in_thread(settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 900) as context:
        yield context


def test_an_unverified_answer_shows_its_conflicts_and_keeps_every_given(
        browser: Any, server: RunningServer, tmp_path: Path) -> None:
    request = {"puzzle": HARD, "halting": "never", "max_steps": 16, "attempts": 1}
    expected = httpx.post(server.base_url + "/v1/solve/sudoku", json=request, timeout=60).json()
    assert expected["status"] == "unsolved" and expected["conflicts"]
    page = open_viewer(browser, server.base_url)
    page.fill("#puzzle-text", HARD)
    page.select_option("#halting", "never")
    page.select_option("#pace", "0")
    page.click("#solve")
    page.wait_for_selector("#badge[data-state=unsolved]", timeout=60_000)
    shown = page.evaluate(CELL_VALUES)
    assert shown == expected["answer"]
    assert all(s == p for s, p in zip(shown, HARD, strict=True) if p != ".")  # givens kept
    outlined = page.evaluate(CONFLICTS)
    assert outlined == [9 * r + c for r, c in expected["conflicts"]]
    assert not any(HARD[i] != "." for i in outlined)  # a given is never the broken cell
    assert page.text_content("#badge") == "✗ unverified answer"
    summary = page.text_content("#summary")
    assert f"{len(expected['conflicts'])} cells break a rule" in summary
    assert "halting “never”" not in summary  # every step already ran
    assert page.text_content("#confidence-label") == "Raw confidence"
    page.screenshot(path=str(tmp_path / "unverified.png"))
    page.close()


def test_a_phone_screen_does_not_scroll_sideways(browser: Any, server: RunningServer) -> None:
    page = open_viewer(browser, server.base_url)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = page.locator("#grid").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    page.close()
