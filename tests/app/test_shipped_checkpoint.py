"""The service on its embedded default (the checkpoints shipped in the repo, CPU, no Redis)
solves the README's curl example over real HTTP with a verified answer, also when started from
another directory; with no checkpoints at all it says so loudly."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from in_thread import serve_in_thread

from app.metrics import Metrics
from app.registry import ModelRegistry
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_python_m_app_from_another_directory_serves_the_shipped_model(tmp_path: Path) -> None:
    """`cd /tmp && python -m app`: no checkpoints/ there, no TRM_CHECKPOINT_DIR, and the service
    still finds the shipped model beside the package."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRM_")}
    env["TRM_MAX_BATCH_SIZE"] = "2"
    process = subprocess.Popen([sys.executable, "-m", "app", "--port", str(port)], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/readyz").status_code == 200:
                        break
                time.sleep(0.2)
            assert http.get("/readyz").status_code == 200
            result = http.post("/v1/solve/sudoku", json=readme_curl_body()).json()
            served = [m["id"] for m in http.get("/v1/models").json()["data"]]
        assert result["status"] == "solved" and result["model"] in served
        assert "trm-sudoku-tiny@1" in served
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert "no models" not in output


def test_no_models_is_a_loud_warning_naming_where_it_looked(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = ModelRegistry(Settings(checkpoint_dir=tmp_path / "empty", device="cpu"),
                             Metrics())
    with caplog.at_level(logging.WARNING):
        registry.load()
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and str((tmp_path / "empty").resolve()) in warning[0].getMessage()
    assert "TRM_CHECKPOINT_DIR" in registry.load_errors[0]


def test_unset_checkpoint_dir_falls_back_to_the_shipped_checkpoints(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TRM_CHECKPOINT_DIR", raising=False)
    assert Settings().checkpoint_root().resolve() == ROOT / "checkpoints"
    (tmp_path / "checkpoints").mkdir()  # an empty local folder does not hide them
    assert Settings().checkpoint_root().resolve() == ROOT / "checkpoints"
