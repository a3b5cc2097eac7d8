"""The service on its embedded default (the checkpoints shipped in the repo, CPU, no Redis)
solves the README's curl example over real HTTP with a verified answer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from app.server import serve_in_thread
from app.settings import Settings
from trm_core.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


def readme_curl_body() -> dict:
    """The JSON body of the README's first solve example."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"curl -s localhost:8000/v1/solve/sudoku .*?-d '(\{.*?\})'", readme, re.S)
    assert match, "README lost its curl example"
    return json.loads(match.group(1))


def test_readme_curl_example_is_solved_and_verified() -> None:
    body = readme_curl_body()
    settings = Settings(checkpoint_dir=ROOT / "checkpoints", device="cpu")
    with serve_in_thread(settings) as running, httpx.Client(base_url=running.base_url,
                                                           timeout=60) as http:
        models = http.get("/v1/models").json()["data"]
        assert any(m["task"] == "sudoku" for m in models)
        result = http.post("/v1/solve/sudoku", json=body).json()
        search = http.post("/v1/solve/sudoku", json={**body, "attempts": 4,
                                                      "latent_noise": 0.3}).json()
    task = get_task("sudoku")
    for answer in (result, search):
        assert answer["status"] == "solved" and answer["valid"] is True
        assert task.verify(task.parse(body["puzzle"]), task.parse(answer["solution"]))
    assert search["attempts"] == 4
