"""`trm calibrate` on a copy of the shipped checkpoint: the table goes into the card, and the
service then reports calibrated `confidence` on verified answers (and lists the table)."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from in_thread import serve_in_thread

from app.settings import Settings
from training import calibrate
from training.cli import main
from trm_core.calibration import Calibration
from trm_core.checkpoint import read_card

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny"
README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."


def test_calibrate_writes_the_card_and_the_service_reports_it(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stem = tmp_path / "sudoku" / "tiny"
    stem.parent.mkdir()
    for suffix in (".json", ".safetensors"):
        shutil.copy(SHIPPED.with_suffix(suffix), stem.with_suffix(suffix))
    data = ROOT / "training" / "data" / "sudoku-easy-test.csv"
    assert main(["calibrate", str(stem), "--data", str(data), "--limit", "40",
                 "--budget-steps", "0", "--min-answers", "5"]) == 0
    assert "raw confidence" in capsys.readouterr().out
    entry = read_card(stem)["calibration"]
    assert entry["answers"] == 40 and entry["settings"]["halting"] == "auto"
    assert sum(row["answers"] for row in entry["table"]) == 40
    calibration = Calibration.from_card(entry)
    with serve_in_thread(Settings(checkpoint_dir=tmp_path, device="cpu",
                                  max_batch_size=2)) as running, \
            httpx.Client(base_url=running.base_url, timeout=30) as http:
        result = http.post("/v1/solve/sudoku", json={"puzzle": README_PUZZLE}).json()
        model = http.get("/v1/models").json()["data"][0]
    assert result["status"] == "solved"
    assert result["confidence"] == round(calibration(result["raw_confidence"]), 4)
    assert model["calibration"]["table"] == entry["table"]


def test_calibration_answers_as_the_service_does_by_default() -> None:
    fields = Settings.model_fields  # the defaults, whatever the test environment sets
    search = calibrate.DEFAULT_SEARCH
    assert fields["search_budget_steps"].default == search.budget_steps
    assert fields["search_attempts"].default == search.attempts
    assert fields["search_round_steps"].default == search.round_steps
