"""Typed configs: validation names the bad field; TOML runs and overrides."""

from pathlib import Path

import pytest

from trm_core.config import ModelConfig
from trm_core.train_config import load_run, run_from_dict

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"


def test_bad_model_value_is_named() -> None:
    with pytest.raises(ValueError, match="model.recursions must be >= 1, got 0"):
        ModelConfig(recursions=0)
    with pytest.raises(ValueError, match="not divisible by num_heads 3"):
        ModelConfig(hidden_size=64, num_heads=3, token_mixer="attention")


def test_derived_sizes() -> None:
    config = ModelConfig(puzzle_emb_len=16, puzzle_emb_dim=512)
    assert config.total_len == 97
    assert config.passes_per_step == 21


def test_overrides_are_type_checked() -> None:
    run = load_run(None, ["model.hidden_size=64", "train.lr=3e-4", "train.augment=false"])
    assert run.model.hidden_size == 64 and run.train.lr == 3e-4 and run.train.augment is False
    with pytest.raises(ValueError, match="model.hidden_size expects int, got 'big'"):
        load_run(None, ["model.hidden_size=big"])
    with pytest.raises(ValueError, match="unknown train fields: lrr"):
        load_run(None, ["train.lrr=1"])
    with pytest.raises(ValueError, match="train.loss must be one of"):
        load_run(None, ["train.loss=hinge"])


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_run_configs_load(path: Path) -> None:
    run = load_run(path)
    assert run_from_dict(run.to_dict()) == run
