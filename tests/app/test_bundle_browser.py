"""The viewer's "run in this browser" in a real headless Chromium against a real service running
fp32 (tests/bundle_cases.py says why, and what is compared): the model's bundle runs on
onnxruntime-web (WebAssembly, vendored under app/static/ort/), and the same puzzle solved on the
server and in the browser draws the same grid at every step and halts at the same step. Once the
bundle is loaded the page solves with the network cut. The default model's bundle is checked
the same way on every checked puzzle that is not rounding-sensitive for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_helpers import chromium, needs_chromium, open_viewer
from bundle_cases import (
    CELL_TOLERANCE,
    RUN_HERE,
    TOLERANCE,
    checked_puzzles,
    final_answer,
    fp32_settings,
    rounding_sensitive_puzzles,
    server_run,
)
from in_thread import RunningServer, serve_in_thread
from shipped_models import SMALL, SMALL_ID, TINY_ID

pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
pytestmark = [needs_chromium, pytest.mark.slow]  # the server exports the bundle: about 10 s

README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
MEDIUM_PUZZLE = checked_puzzles()[27]  # verifies after several steps
HARD_PUZZLE = checked_puzzles()[-1]  # never verifies: all 16 steps, conflicts at the end
GRID_TEXT = "() => Array.from(document.querySelectorAll('.cell'), c => c.value || '.').join('')"
# Records every event the page draws ([name, data]), whichever way it came.
RECORD = """() => {
  window.drawn = [];
  if (!window.drawUnrecorded) window.drawUnrecorded = window.draw;
  window.draw = (name, data) => {
    window.drawn.push([name, data]);
    window.drawUnrecorded(name, data);
  };
}"""


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    from app.ort_runtime import missing

    assert not missing(), "the browser runtime is not fetched: python -m app.ort_runtime"
    with serve_in_thread(fp32_settings()) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 800) as context:
        yield context


@pytest.fixture(scope="module")
def page(browser: Any, server: RunningServer) -> Iterator[Any]:
    """The viewer with the bundle loaded (then switched off again): later switches are instant."""
    page = open_viewer(browser, server.base_url)
    switch_here(page, True)
    assert TINY_ID in page.text_content("#local-status")
    assert "onnxruntime-web 1.30.0" in page.text_content("#local-status")
    switch_here(page, False)
    yield page
    page.close()


def switch_here(page: Any, on: bool) -> None:
    page.set_checked("#run-local", on)
    page.wait_for_selector(f"body[data-local={'ready' if on else 'off'}]", timeout=120_000)


def solve_drawn(page: Any, puzzle: str, halting: str) -> list[list[Any]]:
    """Solve through the page's form, instantly replayed; the events it drew."""
    page.evaluate(RECORD)
    page.fill("#puzzle-text", puzzle)
    page.select_option("#halting", halting)
    page.select_option("#pace", "0")
    page.click("#solve")
    page.wait_for_selector("#badge[data-state=verified], #badge[data-state=unsolved]",
                           timeout=60_000)
    drawn: list[list[Any]] = page.evaluate("window.drawn")
    return drawn


@pytest.mark.parametrize("halting", ["auto", "never"])
def test_the_browser_draws_the_servers_steps(page: Any, halting: str) -> None:
    for puzzle in (README_PUZZLE, MEDIUM_PUZZLE, HARD_PUZZLE):
        switch_here(page, False)
        served = solve_drawn(page, puzzle, halting)
        served_board = page.evaluate(GRID_TEXT)
        switch_here(page, True)
        here = solve_drawn(page, puzzle, halting)
        assert [name for name, _ in here] == [name for name, _ in served]
        for (_, ours), (_, theirs) in zip(here[1:-1], served[1:-1], strict=True):  # the steps
            for key in ("step", "max_steps", "grid", "changed_cells", "valid", "attempt"):
                assert ours[key] == theirs[key], (key, ours["step"], puzzle)
            assert ours["q_halt"] == pytest.approx(theirs["q_halt"], abs=TOLERANCE)
            assert ours["cell_confidence"] == pytest.approx(theirs["cell_confidence"],
                                                            abs=CELL_TOLERANCE)
        ours, theirs = here[-1][1], served[-1][1]
        for key in ("status", "valid", "steps_used", "halted_early", "conflicts"):
            assert ours.get(key) == theirs.get(key), (key, puzzle)
        assert final_answer(ours) == final_answer(theirs)
        assert ours["ran_in"] == "browser" and "in this browser" in page.text_content("#summary")
        assert page.evaluate(GRID_TEXT) == served_board


@pytest.mark.parametrize("halting", ["auto", "never"])
def test_the_browser_answers_as_the_server_on_the_checked_puzzles(
        page: Any, server: RunningServer, halting: str) -> None:
    puzzles = checked_puzzles()
    runs = page.evaluate(RUN_HERE, [puzzles, halting])
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for puzzle, run in zip(puzzles, runs, strict=True):
            served = server_run(client, puzzle, halting)
            assert [s["grid"] for s in run["steps"]] == \
                [s["grid"] for s in served["trajectory"]], puzzle
            assert [(s["changed"], s["valid"]) for s in run["steps"]] == \
                [(s["changed"], s["valid"]) for s in served["trajectory"]], puzzle
            for key in ("status", "steps_used", "halted_early"):
                assert run["result"][key] == served[key], (key, puzzle)


def test_the_browser_runs_the_default_models_bundle_as_the_server(browser: Any) -> None:
    per_set = 8
    puzzles = checked_puzzles(per_set)
    sensitive = rounding_sensitive_puzzles(SMALL, per_set, "auto")
    assert len(sensitive) <= len(puzzles) // 4, sorted(sensitive)
    with serve_in_thread(fp32_settings(SMALL)) as small:
        page = open_viewer(browser, small.base_url)
        switch_here(page, True)
        assert SMALL_ID in page.text_content("#local-status")
        runs = page.evaluate(RUN_HERE, [puzzles, "auto"])
        page.close()
        with httpx.Client(base_url=small.base_url, timeout=60) as client:
            for index, (puzzle, run) in enumerate(zip(puzzles, runs, strict=True)):
                if index in sensitive:
                    continue
                served = server_run(client, puzzle, "auto")
                assert [s["grid"] for s in run["steps"]] == \
                    [s["grid"] for s in served["trajectory"]], puzzle
                assert run["result"]["status"] == served["status"], puzzle


def test_the_page_solves_with_the_network_cut(browser: Any, server: RunningServer) -> None:
    page = open_viewer(browser, server.base_url)
    switch_here(page, True)
    browser.set_offline(True)
    try:
        cut = page.evaluate("fetch('/v1/models').then(() => 'reached', () => 'cut')")
        assert cut == "cut"
        page.select_option("#example", index=1)
        page.select_option("#halting", "never")
        page.select_option("#pace", "0")
        page.click("#solve")
        page.wait_for_selector("#badge[data-state=verified]", timeout=60_000)
        assert page.text_content("#step") == "16 / 16"
        assert page.is_hidden("#error")
    finally:
        browser.set_offline(False)
        page.close()


def test_the_runtime_is_served_from_the_package(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url) as client:
        wasm = client.get("/static/ort/ort-wasm-simd-threaded.wasm")
        loader = client.get("/static/ort/ort-wasm-simd-threaded.mjs")
        page = client.get("/").text
    assert wasm.headers["content-type"] == "application/wasm"
    assert loader.headers["content-type"].startswith("text/javascript")
    assert "/static/ort/ort.wasm.min.js" in page and "cdn" not in page.lower()
    vendored = Path(__file__).resolve().parents[2] / "app" / "static" / "ort"
    assert (vendored / "LICENSE").read_text().startswith("MIT License")
