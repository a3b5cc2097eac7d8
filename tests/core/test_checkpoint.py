"""Checkpoint format: safetensors + JSON card, half precision, no pickle."""

import json

import pytest
import torch

from trm_core.checkpoint import find_checkpoints, load_checkpoint, save_checkpoint, update_card
from trm_core.config import ModelConfig
from trm_core.model import TRM


def tiny_model() -> TRM:
    torch.manual_seed(0)
    return TRM(ModelConfig(hidden_size=16, num_heads=2, recursions=1, latent_updates=1))


def test_save_and_load_round_trip(tmp_path) -> None:
    model = tiny_model()
    stem = save_checkpoint(tmp_path / "sudoku" / "tiny", model,
                           {"name": "trm-tiny", "task": "sudoku", "step": 7})
    loaded = load_checkpoint(stem)
    assert loaded.id == "trm-tiny@1" and loaded.task == "sudoku"
    assert loaded.card["model"]["hidden_size"] == 16 and loaded.card["step"] == 7
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[key], value)
    assert len(loaded.sha256) == 64
    assert find_checkpoints(tmp_path) == [stem]


def test_half_precision_is_loaded_as_fp32(tmp_path) -> None:
    stem = save_checkpoint(tmp_path / "half", tiny_model(), {"name": "h", "task": "sudoku"},
                           dtype="float16")
    loaded = load_checkpoint(stem)
    assert loaded.card["dtype"] == "float16"
    assert loaded.model.answer_head.weight.dtype == torch.float32


def test_card_needs_name_and_task(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a 'task'"):
        save_checkpoint(tmp_path / "x", tiny_model(), {"name": "x"})


def test_update_card_merges(tmp_path) -> None:
    stem = save_checkpoint(tmp_path / "c", tiny_model(), {"name": "c", "task": "sudoku"})
    update_card(stem, evaluation={"exact": 0.5})
    assert json.loads(stem.with_suffix(".json").read_text())["evaluation"] == {"exact": 0.5}


def test_foreign_json_is_refused(tmp_path) -> None:
    stem = save_checkpoint(tmp_path / "c", tiny_model(), {"name": "c", "task": "sudoku"})
    stem.with_suffix(".json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a trm-checkpoint/1 card"):
        load_checkpoint(stem)
