"""The viewer's board for a task defined by data, in a real headless Chromium (Debian's package,
driven by Playwright for Python) against real uvicorn: the worked Life example generated, split
and trained for a few steps through `trm task example`, `trm data` and `trm train`, then served
from its checkpoint card alone (the task is unregistered first), beside a tiny Sudoku model.
Pick the task, load a held-out example, watch each step redraw the answer and end on the
result's output with the note that the answer is unverified; see a bad symbol named by row and
column with its cell flagged; switch to Sudoku and back.

The Life model trains for 4 steps, so its answers are wrong (and hold undecided cells); tests
check what is drawn against what the server sent, not correctness.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import WATCH_STEPS, chromium, needs_chromium
from in_thread import RunningServer, serve_in_thread
from maze_helpers import save_sudoku_checkpoint

from app.settings import Settings
from training.cli import main
from trm_core.tasks import unregister

pytestmark = needs_chromium

TINY_RUN = ["model.hidden_size=16", "train.total_steps=4", "train.eval_every=4",
            "model.max_supervision_steps=3", "train.batch_size=8", "train.warmup_steps=1",
            "train.eval_puzzles=16"]
STEPS = 3
# Records the answer panel's symbols each time the step number changes (the board is drawn
# before the stats, so each record is that step's drawing).
WATCH_ANSWERS = """() => {
  window.answersSeen = [];
  new MutationObserver(() => {
    const step = document.getElementById("step").dataset.step;
    const shown = document.querySelector("#data-board [data-side=output]").dataset.values;
    if (step && step !== "0") window.answersSeen.push(shown);
  }).observe(document.getElementById("step"), { attributes: true });
}"""


@pytest.fixture(scope="module")
def life_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("life")
    assert main(["task", "example", "life", "--dir", str(folder), "--count", "120"]) == 0
    assert main(["data", str(folder)]) == 0
    overrides = [arg for pair in TINY_RUN for arg in ("--set", pair)]
    assert main(["train", str(folder), *overrides]) == 0
    unregister("life")  # the service must learn the task from the checkpoint card alone
    save_sudoku_checkpoint(folder / "checkpoint")
    yield folder
    unregister("life")


@pytest.fixture(scope="module")
def server(life_dir: Path) -> Iterator[RunningServer]:
    settings = Settings(checkpoint_dir=life_dir / "checkpoint", device="cpu")
    with serve_in_thread(settings) as running:
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-profile"), 900) as context:
        yield context


def _open_life(browser: Any, server: RunningServer) -> Any:
    """The page with the life task picked through the task selector and its examples in."""
    page = browser.new_page()
    page.goto(server.base_url + "/")
    page.wait_for_selector("#task option[value=life]", state="attached")
    page.select_option("#task", "life")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    return page


def _events(stream: str) -> list[tuple[str, dict[str, Any]]]:
    """The (name, data) of each server-sent event in a response body."""
    events = []
    for frame in stream.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.split("\n") if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def _cells(page: Any, side: str) -> list[str]:
    return page.eval_on_selector_all(f"#data-board [data-side={side}] .dcell",
                                     "cells => cells.map((c) => c.textContent)")


def test_the_picker_offers_the_task_with_its_board(browser: Any, server: RunningServer,
                                                   life_dir: Path) -> None:
    page = _open_life(browser, server)
    assert page.eval_on_selector_all("#task option", "os => os.map((o) => o.value)") == [
        "sudoku", "life"]
    assert page.is_visible("#data-board") and page.is_hidden("#grid") and page.is_hidden("#maze")
    assert page.text_content("#task-title") == "life"
    assert "Conway's Game of Life" in page.text_content("#puzzle-hint")
    assert "10 lines of 10" in page.text_content("#puzzle-hint")
    assert page.is_hidden("#generate-row") and page.is_hidden("#run-local")
    assert page.is_visible("text=has no rules check")
    assert page.input_value("#max-steps") == str(STEPS)
    assert page.text_content("#halting option[value=auto]") == (
        "auto: stop when the halting head says done")
    legend = page.text_content("#data-symbols")
    assert "." in legend and "#" in legend
    examples = json.loads((life_dir / "examples.json").read_text())
    assert page.eval_on_selector_all("#example option", "os => os.length") == len(examples) + 1


def test_solves_an_example_step_by_step(browser: Any, server: RunningServer, life_dir: Path,
                                        tmp_path: Path) -> None:
    page = _open_life(browser, server)
    example = json.loads((life_dir / "examples.json").read_text())[0]
    page.select_option("#example", index=1)
    rows = page.input_value("#puzzle-text").split("\n")
    assert len(rows) == 10 and "".join(rows) == example["puzzle"]
    assert _cells(page, "input") == list(example["puzzle"])
    colours = page.eval_on_selector_all(
        "#data-board [data-side=input] .dcell",
        "cells => cells.map((c) => [c.textContent, getComputedStyle(c).backgroundColor])")
    assert {tuple(pair) for pair in colours} == {(".", "rgb(0, 0, 0)"),
                                                  ("#", "rgb(0, 116, 217)")}  # ARC's 0 and 1
    page.select_option("#halting", "never")
    page.select_option("#pace", "250")
    page.evaluate(WATCH_STEPS)
    page.evaluate(WATCH_ANSWERS)
    with page.expect_response(lambda r: r.url.endswith("/v1/solve/life")) as response:
        page.click("#solve")
    page.wait_for_selector("#badge[data-state=answered]", timeout=30_000)
    events = _events(response.value.text())
    steps = [data for name, data in events if name == "solve.step"]
    result = next(data for name, data in events if name == "solve.completed")
    assert page.evaluate("window.stepsSeen") == [0, 1, 2, 3]
    assert len(steps) == STEPS and page.text_content("#step") == f"{STEPS} / {STEPS}"
    assert page.evaluate("window.answersSeen") == [" ".join(s["grid"]) for s in steps]
    assert result["status"] == "answered" and result["valid"] is False
    answer = [symbol for row in result["output"] for symbol in row]
    assert _cells(page, "output") == answer
    assert page.locator("#data-board .dcell.changed").count() == 0  # the result: no step ring
    wrong = sum(a != b for a, b in zip(answer, example["solution"], strict=True))
    assert page.locator("#data-board [data-side=output] .dcell.off").count() == wrong
    assert page.text_content("#badge") == "answered · unverified"
    summary = page.text_content("#summary")
    assert summary.startswith(f"Answered in {STEPS} steps")
    assert "no rules check, so the answer is unverified" in summary
    assert f"{wrong} cells differ from the example's known solution" in summary
    assert page.is_hidden("#error")
    page.screenshot(path=str(tmp_path / "life-answered.png"))
    assert (tmp_path / "life-answered.png").stat().st_size > 10_000


def test_mid_solve_outlines_changed_cells(browser: Any, server: RunningServer) -> None:
    page = browser.new_page()
    page.goto(server.base_url + "/?task=life")  # the task can be named in the address
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    assert page.input_value("#task") == "life"
    page.select_option("#halting", "never")
    page.select_option("#pace", "2000")
    page.click("#solve")
    page.wait_for_selector("#step[data-step='1']", timeout=30_000)
    assert page.get_attribute("#badge", "data-state") == "running"
    changed = int(page.text_content("#changed"))
    assert changed > 0
    assert page.locator("#data-board [data-side=output] .dcell.changed").count() == changed
    page.click("#stop")
    assert page.text_content("#badge") == "stopped"


def test_a_bad_symbol_is_named_and_flagged(browser: Any, server: RunningServer) -> None:
    page = _open_life(browser, server)
    rows = page.input_value("#puzzle-text").split("\n")
    rows[1] = rows[1][:3] + "x" + rows[1][4:]
    page.fill("#puzzle-text", "\n".join(rows))
    assert _cells(page, "input")[13] == "x"  # drawn as typed, before the server's word
    page.click("#solve")
    page.wait_for_selector("#error:not([hidden])")
    assert "unknown symbol 'x' at row 2, column 4" in page.text_content("#error")
    flagged = page.eval_on_selector_all("#data-board [data-side=input] .dcell.flag",
                                        "cells => cells.map((c) => c.dataset.index)")
    assert flagged == ["13"]
    assert page.get_attribute("#badge", "data-state") == "idle"


def test_switching_to_sudoku_and_back(browser: Any, server: RunningServer) -> None:
    page = _open_life(browser, server)
    page.select_option("#task", "sudoku")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    assert page.is_visible("#grid") and page.is_hidden("#data-board")
    assert page.is_visible("#generate-row") and page.is_visible("#run-local")
    assert page.is_visible("text=Every answer is checked against the rules.")
    assert len(page.input_value("#puzzle-text")) == 81
    assert page.locator(".cell.given").count() > 0
    page.select_option("#task", "life")
    page.wait_for_selector("#example option:nth-child(2)", state="attached")
    assert page.is_visible("#data-board") and page.is_hidden("#grid")
    assert len(_cells(page, "input")) == 100
    assert len(page.input_value("#puzzle-text").split("\n")) == 10


# A sequence-to-label spec with symbols longer than one character, as /v1/models lists it.
ROUTE_SPEC = {"name": "route", "description": "", "alphabet": ["ab", "c", 7], "labels": ["left",
              "right"], "keep": [], "symmetries": [], "fixed": [],
              "input": {"kind": "sequence", "shape": [6]}, "output": {"kind": "label", "shape": []}}
DRAW_ROUTE = """(spec) => {
  const board = makeGridBoard(spec);
  board.build();
  const text = board.setPuzzle("ab c 7 ab", "right");
  const input = () => [...document.querySelectorAll("[data-side=input] .dcell")]
    .map((c) => c.textContent);
  const label = () => document.querySelector("[data-side=output] .dlabel");
  const typed = input();
  board.drawStep({ grid: "left", changed_cells: [0] });
  const step = [label().textContent, label().className];
  board.drawResult({ answer: "right", answer_grid: [[5]], output: "right" });
  return { text, typed, step, result: [label().textContent, label().className],
           note: board.resultNote({ answer: "right", answer_grid: [[5]] }), hint: board.hint };
}"""


def test_a_sequence_and_a_label_draw(browser: Any, server: RunningServer) -> None:
    page = _open_life(browser, server)
    drawn = page.evaluate(DRAW_ROUTE, ROUTE_SPEC)
    assert drawn["text"] == "ab c 7 ab"
    assert drawn["typed"] == ["ab", "c", "7", "ab", "", ""]  # up to 6; the rest still empty
    assert drawn["step"] == ["left", "dlabel changed off"]
    assert drawn["result"] == ["right", "dlabel"]
    assert drawn["note"].endswith("It matches the example's known solution.")
    assert drawn["hint"] == "(up to 6 symbols separated by spaces: ab c 7)"


CHECKED_SPEC = {"name": "mini", "description": "", "alphabet": [".", "1", "2", "3", "4"],
                "labels": [], "keep": ["1", "2", "3", "4"], "symmetries": [], "fixed": [],
                "input": {"kind": "grid", "shape": [4, 4]},
                "output": {"kind": "grid", "shape": [4, 4]},
                "check": {"units": ["rows", "columns", "boxes"], "box": [2, 2],
                          "values": ["1", "2", "3", "4"]}}
DRAW_CHECKED = """(spec) => {
  const board = makeGridBoard(spec);
  board.build();
  board.setPuzzle("1...\\n...2\\n....\\n...1", "1234341221434321");
  return { header: document.getElementById("defined-check").textContent,
           note: board.resultNote({ answer: "1234341221434321", answer_grid: [] }) };
}"""


def test_a_task_with_a_declared_check_says_its_answers_are_checked(
        browser: Any, server: RunningServer) -> None:
    page = _open_life(browser, server)
    assert "has no rules check" in page.text_content("#defined-check")
    drawn = page.evaluate(DRAW_CHECKED, CHECKED_SPEC)
    assert drawn["header"] == ("A task defined by data, with a rules check: every rows and "
                               "columns and boxes holds each of 1 2 3 4 once.")
    assert drawn["note"] == " It matches the example's known solution."
