"""The viewer's HTTP side: `/` and `/static/*` stay public when API keys are on, and
`GET /v1/examples/sudoku` lists bundled puzzles or generates one of a difficulty."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
from http_helpers import assert_problem
from in_thread import RunningServer

from trm_core.tasks.sudoku import parse_puzzle
from trm_core.tasks.sudoku_generate import count_guesses, solve

Start = Callable[..., tuple[RunningServer, httpx.Client]]


def test_page_and_assets_are_public_and_the_api_is_not(start_server: Start) -> None:
    _, http = start_server(api_keys=["k1"])
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/viewer.js"' in page.text
    for asset in ("/static/viewer.js", "/static/viewer.css"):
        assert http.get(asset).status_code == 200
    assert "cdn" not in page.text.lower() and "https://" not in http.get(
        "/static/viewer.js").text
    assert_problem(http.get("/v1/examples/sudoku"), 401)
    assert http.get("/v1/examples/sudoku", headers={"X-API-Key": "k1"}).status_code == 200
    assert_problem(http.get("/static/nothing.js"), 404)


def test_bundled_examples_are_unique_puzzles_with_their_solutions(client: httpx.Client) -> None:
    examples = client.get("/v1/examples/sudoku").json()["data"]
    assert len(examples) >= 4
    for example in examples:
        solutions, _ = solve(parse_puzzle(example["puzzle"]))
        assert len(solutions) == 1
        assert "".join(map(str, solutions[0].tolist())) == example["solution"]


def test_generates_a_puzzle_of_the_asked_difficulty(client: httpx.Client) -> None:
    hard = client.get("/v1/examples/sudoku", params={"difficulty": "hard", "seed": 3}).json()
    assert hard["difficulty"] == "hard" and 17 <= hard["givens"] <= 32
    cells = parse_puzzle(hard["puzzle"])
    assert count_guesses(cells) == hard["guesses"] >= 5
    assert int(np.count_nonzero(cells)) == hard["givens"]
    again = client.get("/v1/examples/sudoku", params={"difficulty": "hard", "seed": 3}).json()
    assert again["puzzle"] == hard["puzzle"]
    easy = client.get("/v1/examples/sudoku", params={"difficulty": "easy"}).json()
    assert easy["givens"] >= 40 and easy["guesses"] == 0


def test_example_errors_are_problems(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/examples/sudoku", params={"difficulty": "extreme"}), 422)
    assert_problem(client.get("/v1/examples/chess"), 404)
