"""The viewer's maze task in a real headless Chromium (Debian's package, driven by Playwright for
Python) against real uvicorn serving a tiny Sudoku and a tiny maze checkpoint: pick the task,
load a held-out example, watch the steps arrive and end on the rendered answer; generate a fresh
maze; see a parse error next to the input with its cells flagged; switch back to Sudoku.

The maze model is a stand-in that paints every open cell as path (`maze_helpers`), so the final
state has path cells to draw and is never verified.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import WATCH_STEPS, chromium, needs_chromium
from in_thread import RunningServer, serve_in_thread
from maze_helpers import committed_mazes, save_maze_checkpoint, save_sudoku_checkpoint

from app.settings import Settings

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("checkpoints")
    save_sudoku_checkpoint(root)
    save_maze_checkpoint(root, painter=True)
    settings = Settings(checkpoint_dir=root, device="cpu", max_batch_size=4)
    with serve_in_thread(settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 820) as context:
        yield context


def _open_maze(browser: Any, server: RunningServer) -> Any:
    """The page with the maze task picked through the task selector and its examples in."""
    page = browser.new_page()
    page.goto(server.base_url + "/")
    page.wait_for_selector("#task option[value=maze]", state="attached")
    page.select_option("#task", "maze")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    return page


def test_solves_a_maze_example_step_by_step(browser: Any, server: RunningServer,
                                            tmp_path: Path) -> None:
    page = _open_maze(browser, server)
    assert page.is_visible("#maze") and page.is_hidden("#grid")
    assert page.text_content("#task-title") == "Maze"
    assert page.input_value("#max-steps") == "3"  # the maze model's own limit
    page.select_option("#example", index=1)
    example = committed_mazes(1)[0]["puzzle"]
    assert page.input_value("#puzzle-text").replace("\n", "") == example
    assert page.locator(".mcell.wall").count() == example.count("#")
    assert page.locator(".mcell.start").count() == page.locator(".mcell.goal").count() == 1
    page.select_option("#halting", "never")
    page.select_option("#pace", "250")
    page.evaluate(WATCH_STEPS)
    page.click("#solve")
    page.wait_for_selector("#badge[data-state=unsolved]", timeout=30_000)
    assert page.evaluate("window.stepsSeen") == [0, 1, 2, 3]
    assert page.text_content("#step") == "3 / 3"
    open_cells = example.count(" ")
    assert page.locator(".mcell.path").count() == open_cells
    assert page.get_attribute("#maze", "data-path-cells") == str(open_cells)
    assert page.locator(".mcell.path.off").count() > 0  # painted cells off the known path
    assert page.text_content("#path-stat") == f"{open_cells} cells"
    assert "do not join S to G" in page.text_content("#summary")
    assert page.is_hidden("#error")
    page.screenshot(path=str(tmp_path / "maze-solved.png"))
    assert (tmp_path / "maze-solved.png").stat().st_size > 10_000


def test_mid_solve_marks_changed_cells(browser: Any, server: RunningServer) -> None:
    page = browser.new_page()
    page.goto(server.base_url + "/?task=maze")  # the task can be named in the address
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    assert page.input_value("#task") == "maze"
    page.select_option("#halting", "never")
    page.select_option("#pace", "2000")
    page.click("#solve")
    page.wait_for_selector("#step[data-step='1']", timeout=30_000)
    assert page.get_attribute("#badge", "data-state") == "running"
    assert page.locator(".mcell.changed").count() > 0
    assert page.locator(".mcell.path").count() == page.locator(".mcell.changed").count()
    page.click("#stop")
    assert page.text_content("#badge") == "stopped"


def test_generates_a_maze_on_request(browser: Any, server: RunningServer) -> None:
    page = _open_maze(browser, server)
    before = page.input_value("#puzzle-text")
    page.select_option("#difficulty", "hard")
    page.click("#generate")
    page.wait_for_function(
        "([before]) => document.getElementById('puzzle-text').value !== before", arg=[before])
    rows = page.input_value("#puzzle-text").split("\n")
    assert len(rows) == 30 and all(len(row) == 30 for row in rows)
    assert page.locator(".mcell.start").count() == 1
    summary = page.text_content("#summary")
    assert summary.startswith("A new hard maze: shortest path ")
    assert int(summary.split("shortest path ")[1].split()[0]) >= 111
    assert page.input_value("#example") == ""


def test_shows_a_maze_problem_and_flags_its_cells(browser: Any, server: RunningServer) -> None:
    page = _open_maze(browser, server)
    rows = page.input_value("#puzzle-text").split("\n")
    rows[1] = "#G" + rows[1][2:]  # a second goal (row 2 of a held-out maze starts in a wall)
    page.fill("#puzzle-text", "\n".join(rows))
    page.click("#solve")
    page.wait_for_selector("#error:not([hidden])")
    assert "expected exactly one G, found 2" in page.text_content("#error")
    assert page.locator(".mcell.flag").count() == 2
    assert page.get_attribute("#badge", "data-state") == "idle"


def test_switching_back_to_sudoku_keeps_its_board(browser: Any, server: RunningServer) -> None:
    page = _open_maze(browser, server)
    page.select_option("#task", "sudoku")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    assert page.is_visible("#grid") and page.is_hidden("#maze")
    assert page.text_content("#footer-task") == "sudoku"
    assert len(page.input_value("#puzzle-text")) == 81
    assert page.locator(".cell.given").count() > 0
    assert page.input_value("#max-steps") == "4"
