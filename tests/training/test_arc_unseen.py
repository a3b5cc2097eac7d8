"""`trm eval-arc --source`: tasks the checkpoint never trained on, scored with blank puzzle rows
and with rows fitted at test time, on the same versions; tasks it knows are left out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.cli import main
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.tasks.arc.identifiers import (
    IdentifierMap,
    VersionRef,
    load_identifiers,
    save_identifiers,
    sidecar_path,
)

ARC_DATA = Path(__file__).resolve().parents[1] / "data" / "arc"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained ARC model that knows one training task (by its sidecar)."""
    torch.manual_seed(0)
    model = TRM(ModelConfig(seq_len=900, vocab_size=12, hidden_size=16, num_heads=1,
                            num_layers=1, token_mixer="attention", position_encoding="rope",
                            recursions=1, latent_updates=1, max_supervision_steps=2,
                            puzzle_emb_len=1, puzzle_emb_dim=16, num_puzzle_ids=2,
                            swiglu_multiple=16))
    stem = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "arc", model,
                           {"name": "trm-arc-tiny", "task": "arc"})
    save_identifiers(sidecar_path(stem), IdentifierMap(
        [None, VersionRef("007bbfb7", 0, 0, "0123456789")], {"007bbfb7": "digest"}))
    return stem


def test_blank_and_adapted_rows_side_by_side(checkpoint: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "unseen.json"
    assert main(["eval-arc", str(checkpoint), "--source", str(ARC_DATA), "--subset", "training",
                 "--tasks", "2", "--versions", "2", "--adapt-steps", "2", "--device", "cpu",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "blank rows" in printed and "adapted rows" in printed
    report = json.loads(out.read_text())
    known = set(load_identifiers(sidecar_path(checkpoint)).rows_of())
    for mode in ("blank", "adapted"):
        tasks = report[mode]["tasks"]
        assert [t["task_id"] for t in tasks] == ["00d62c1b", "017c7c7b"]  # 007bbfb7 is known
        assert not known & {t["task_id"] for t in tasks}
        assert all(t["versions"] == 2 and 0 <= t["pass@2"] <= 1 for t in tasks)
        assert set(report[mode]["overall"]) >= {"tasks", "pass@1", "pass@2", "seconds"}
    assert all(t["fit"] is None for t in report["blank"]["tasks"])
    assert all(t["fit"]["steps"] == 2 for t in report["adapted"]["tasks"])


def test_source_and_data_are_exclusive(checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        main(["eval-arc", str(checkpoint), "--source", str(ARC_DATA), "--data", "x"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_build_can_leave_the_evaluation_tasks_out(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """`--subsets training concept --test-subset concept` trains on no ARC-1 evaluation task, so
    all of them stay unseen for `--source ... --subset evaluation`."""
    assert main(["data-arc", "--source", str(ARC_DATA), "--subsets", "training", "concept",
                 "--test-subset", "concept", "--augmentations", "2", "--out",
                 str(tmp_path / "b")]) == 0
    capsys.readouterr()
    rows = load_identifiers(tmp_path / "b" / "identifiers.json").rows_of()
    evaluation = json.loads((ARC_DATA / "arc-agi_evaluation_challenges.json").read_text())
    assert rows and not set(rows) & set(evaluation)
    assert main(["data-arc", "--source", str(ARC_DATA), "--subsets", "training",
                 "--out", str(tmp_path / "c")]) == 2
    assert "--subsets needs --test-subset" in capsys.readouterr().err
