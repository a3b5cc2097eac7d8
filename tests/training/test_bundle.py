"""The portable bundle of each shipped Sudoku model answers as the server does: its reference
loop (the bundle's own solve.py, onnxruntime and numpy only) gives the server's grid at every
step, halts at the same step and ends on the same status, against a real service running fp32
over HTTP (tests/bundle_cases.py says why fp32 and what is compared). The tiny model on 48
held-out puzzles with both halting modes; the default model on 24, on every one that is not
rounding-sensitive for it. The service offers the same files, byte for byte."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from bundle_cases import (
    TOLERANCE,
    checked_puzzles,
    final_answer,
    fp32_settings,
    rounding_sensitive_puzzles,
    server_run,
)
from in_thread import RunningServer, serve_in_thread
from shipped_models import SMALL, TINY, TINY_ID

from training.cli import main as trm
from trm_core.tasks import get_task

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")
pytestmark = pytest.mark.slow  # three ONNX exports, about 10 s each on 2 cores
SMALL_PER_SET = 8  # the default model's puzzles per set (24 in all)

README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
ALLOWED_IMPORTS = {"argparse", "hashlib", "json", "math", "sys", "time", "dataclasses",
                   "pathlib", "typing", "__future__", "numpy", "onnxruntime"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    assert trm(["export", str(TINY), "--bundle", str(out), "--check"]) == 0
    return out


@pytest.fixture(scope="module")
def solver(folder: Path) -> ModuleType:
    """The bundle's own solve.py, imported from the bundle folder."""
    spec = importlib.util.spec_from_file_location("bundle_solve_copy", folder / "solve.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with serve_in_thread(fp32_settings()) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=120) as http:
        yield http


def test_the_manifest_writes_down_the_model_and_its_rules(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    card = json.loads(TINY.with_suffix(".json").read_text())
    assert manifest["format"] == "trm-bundle/1"
    assert manifest["model"]["id"] == TINY_ID
    assert card["model"].items() <= manifest["model"]["config"].items()
    task = manifest["task"]
    assert (task["name"], task["seq_len"], task["grid_shape"]) == ("sudoku", 81, [9, 9])
    assert len(task["verify"]["units"]) == 27 and task["verify"]["values"] == list(range(1, 10))
    assert manifest["tokens"]["token_of_cell"] == list(range(1, 11))
    assert manifest["tokens"]["cell_of_token"] == [0, 0, *range(1, 10)]
    assert manifest["halting"]["auto"] == {"needs_verified": True, "halt_logit_above": 0.0,
                                           "or_unchanged": True}
    assert manifest["graph"]["inputs"]["y"]["shape"] == ["batch", 81, 64]
    assert len(manifest["initial_carry"]["z"]) == 64
    for name, described in manifest["files"].items():
        assert (folder / name).stat().st_size == described["bytes"]


def test_the_reference_loop_needs_only_numpy_and_onnxruntime(folder: Path) -> None:
    tree = ast.parse((folder / "solve.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    # Run as a user would, with torch and this package made unimportable.
    blocked = ("import runpy, sys; sys.modules.update(torch=None, trm_core=None, training=None);"
               f" sys.argv = ['solve.py', {README_PUZZLE!r}, '--json'];"
               " runpy.run_path('solve.py', run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", blocked], cwd=folder, capture_output=True,
                          text=True, timeout=60, check=True)
    result = json.loads(done.stdout)
    assert result["status"] == "solved" and result["steps_used"] == 2


@pytest.mark.parametrize("halting", ["auto", "never"])
def test_the_reference_loop_answers_as_the_server_at_every_step(
        folder: Path, solver: ModuleType, client: httpx.Client, halting: str) -> None:
    bundle = solver.Bundle(folder)
    for puzzle in checked_puzzles():
        served = server_run(client, puzzle, halting)
        local = bundle.solve(bundle.parse(puzzle), halting=halting)
        assert_same_run(served, bundle.to_json(local), puzzle)


def test_the_default_models_bundle_answers_as_the_server_where_rounding_cannot_decide(
        tmp_path: Path) -> None:
    assert trm(["export", str(SMALL), "--bundle", str(tmp_path / "small")]) == 0
    from training.bundle_solve import Bundle

    bundle = Bundle(tmp_path / "small")
    puzzles = checked_puzzles(SMALL_PER_SET)
    sensitive = rounding_sensitive_puzzles(SMALL, SMALL_PER_SET, "auto")
    assert len(sensitive) <= len(puzzles) // 4, sorted(sensitive)  # the check is not vacuous
    with serve_in_thread(fp32_settings(SMALL)) as server, \
            httpx.Client(base_url=server.base_url, timeout=120) as client:
        for index, puzzle in enumerate(puzzles):
            if index not in sensitive:
                local = bundle.solve(bundle.parse(puzzle), halting="auto")
                assert_same_run(server_run(client, puzzle, "auto"), bundle.to_json(local), puzzle)


def assert_same_run(served: dict[str, Any], local: dict[str, Any], puzzle: str) -> None:
    assert [s["grid"] for s in local["trajectory"]] == \
        [s["grid"] for s in served["trajectory"]], puzzle
    for ours, theirs in zip(local["trajectory"], served["trajectory"], strict=True):
        assert (ours["step"], ours["changed"], ours["valid"]) == \
            (theirs["step"], theirs["changed"], theirs["valid"]), puzzle
        assert ours["q_halt"] == pytest.approx(theirs["q_halt"], abs=TOLERANCE), puzzle
        assert ours["confidence"] == pytest.approx(theirs["confidence"], abs=TOLERANCE), puzzle
    for key in ("status", "valid", "steps_used", "halted_early"):
        assert local[key] == served[key], (key, puzzle)
    assert final_answer(local) == final_answer(served)


def test_the_checked_puzzles_cover_early_halts_late_halts_and_failures(
        solver: ModuleType, folder: Path) -> None:
    bundle = solver.Bundle(folder)
    results = [bundle.solve(bundle.parse(p)) for p in checked_puzzles()]
    steps = {len(r.steps) for r in results}
    assert min(steps) <= 2 and max(steps) == 16
    assert {r.status for r in results} == {"solved", "unsolved"}


def test_the_service_offers_the_same_bundle(folder: Path, client: httpx.Client) -> None:
    base = f"/v1/models/{TINY_ID}/bundle"
    manifest = client.get(base)
    assert manifest.status_code == 200
    assert manifest.content == (folder / "manifest.json").read_bytes()
    for name in ("step.onnx", "solve.py"):
        served = client.get(f"{base}/{name}")
        assert served.content == (folder / name).read_bytes(), name
        again = client.get(f"{base}/{name}", headers={"If-None-Match": served.headers["etag"]})
        assert again.status_code == 304 and not again.content
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"{base}.zip").content))
    assert sorted(archive.namelist()) == sorted(f"trm-sudoku-tiny-v1/{name}" for name in
                                                ("manifest.json", "step.onnx", "solve.py"))
    assert client.get(f"{base}.zip").content == client.get(f"{base}.zip").content


def test_unknown_models_files_and_tasks_are_refused(client: httpx.Client) -> None:
    from training.bundle import NotBundleable, task_rules

    missing = client.get("/v1/models/nope@1/bundle")
    assert missing.status_code == 404 and "trm-sudoku-tiny@1" in missing.json()["detail"]
    wrong = client.get(f"/v1/models/{TINY_ID}/bundle/weights.bin")
    assert wrong.status_code == 404 and "step.onnx" in wrong.json()["detail"]
    with pytest.raises(NotBundleable, match="maze"):
        task_rules(get_task("maze"))
