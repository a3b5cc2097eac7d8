"""The viewer at `/` in a real headless Chromium (Debian's package, driven by Playwright for
Python) against real uvicorn with the shipped checkpoint: type a puzzle, solve it while every
supervision step is drawn, and end on the verified answer. Screenshots go to the test's temp dir;
`docs/viewer.png` is the mid-solve one (`pytest tests/app/test_viewer_browser.py
--basetemp=/tmp/shots`, then copy `mid-solve.png`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import WATCH_STEPS, chromium, needs_chromium, open_viewer
from in_thread import RunningServer, serve_in_thread
from shipped_models import tiny_only

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
README_SOLUTION = (
    "483921657967345821251876493548132976729564138136798245372689514814253769695417382")
GRID_TEXT = "() => Array.from(document.querySelectorAll('.cell'), c => c.value || '.').join('')"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4)
    with serve_in_thread(settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 760) as context:
        yield context


def test_solves_the_readme_puzzle_step_by_step(browser: Any, server: RunningServer,
                                               tmp_path: Path) -> None:
    page = open_viewer(browser, server.base_url)
    page.fill("#puzzle-text", README_PUZZLE)
    page.select_option("#halting", "never")
    page.fill("#max-steps", "4")
    page.select_option("#pace", "250")
    page.evaluate(WATCH_STEPS)
    page.click("#solve")
    page.wait_for_selector("#badge[data-state=verified]", timeout=30_000)
    assert page.evaluate(GRID_TEXT) == README_SOLUTION
    assert page.text_content("#step") == "4 / 4"
    assert page.evaluate("window.stepsSeen") == [0, 1, 2, 3, 4]
    assert page.locator(".cell.given").count() == 32
    assert page.is_hidden("#error")
    page.screenshot(path=str(tmp_path / "solved.png"))
    assert (tmp_path / "solved.png").stat().st_size > 10_000


def test_mid_solve_shows_changes_and_confidence(browser: Any, server: RunningServer,
                                                tmp_path: Path) -> None:
    page = open_viewer(browser, server.base_url)
    page.select_option("#example", label="generated medium (28 givens, seed 18)")
    page.select_option("#halting", "never")
    page.select_option("#pace", "2000")
    page.click("#solve")
    page.wait_for_selector("#step[data-step='2']", timeout=30_000)
    assert page.text_content("#step") == "2 / 16"
    assert page.get_attribute("#badge", "data-state") == "running"
    assert page.locator(".cell.changed").count() > 0
    assert page.locator(".cell.wrong").count() > 0  # this puzzle is still wrong at step 2
    page.screenshot(path=str(tmp_path / "mid-solve.png"))
    page.click("#stop")
    assert page.text_content("#badge") == "stopped"


def test_shows_the_problem_next_to_the_input(browser: Any, server: RunningServer) -> None:
    page = open_viewer(browser, server.base_url)
    page.fill("#puzzle-text", "55" + "." * 79)
    page.click("#solve")
    page.wait_for_selector("#error:not([hidden])")
    assert "appears twice in row 1" in page.text_content("#error")
    assert page.get_attribute("#badge", "data-state") == "idle"


def test_generates_a_puzzle_on_request(browser: Any, server: RunningServer) -> None:
    page = open_viewer(browser, server.base_url)
    before = page.input_value("#puzzle-text")
    page.select_option("#difficulty", "easy")
    page.click("#generate")
    page.wait_for_function(f"document.getElementById('puzzle-text').value !== '{before}'")
    puzzle = page.input_value("#puzzle-text")
    assert len(puzzle) == 81 and 40 <= sum(ch.isdigit() for ch in puzzle) <= 50
    assert page.locator(".cell.given").count() == sum(ch.isdigit() for ch in puzzle)


def test_with_api_keys_the_page_asks_for_one_and_sends_it(browser: Any) -> None:
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu", max_batch_size=4,
                        api_keys=["viewer-key"])
    with serve_in_thread(settings) as keyed:
        page = browser.new_page()
        page.goto(keyed.base_url + "/")
        page.wait_for_selector("#error:not([hidden])")
        assert "missing API key" in page.text_content("#error")
        assert page.get_attribute("#key-box", "open") is not None
        page.fill("#api-key", "viewer-key")
        # Leaving the box fires its one "change" (a dispatched one would be followed by the
        # browser's own when the puzzle box takes focus, reloading and blanking the board at a
        # moment that depends on the machine's speed).
        page.locator("#api-key").blur()
        page.wait_for_selector("#example option:nth-child(2)", state="attached")
        assert page.evaluate("localStorage.getItem('trm-api-key')") == "viewer-key"
        page.fill("#puzzle-text", README_PUZZLE)
        page.click("#solve")
        page.wait_for_selector("#badge[data-state=verified]", timeout=30_000)
        assert page.evaluate(GRID_TEXT) == README_SOLUTION
        page.evaluate("localStorage.removeItem('trm-api-key')")
        page.close()
