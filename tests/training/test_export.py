"""ONNX export of one supervision step computes what PyTorch computes."""

from pathlib import Path

import pytest
import torch

from training.cli import main
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM

pytest.importorskip("onnxruntime", reason="the [onnx] extra is not installed")
pytest.importorskip("onnxscript", reason="the [onnx] extra is not installed")


@pytest.mark.parametrize("mixer", ["mlp_t", "attention", "conv"])
def test_exported_step_matches_pytorch(tmp_path: Path, mixer: str) -> None:
    from training.export import check_export, export_step

    torch.manual_seed(0)
    config = ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2,
                         token_mixer=mixer,  # type: ignore[arg-type]
                         position_encoding="rope" if mixer == "attention" else "none")
    model = TRM(config)
    path = export_step(model, tmp_path / "step.onnx")
    differences = check_export(model, path, batch=5)
    assert max(differences.values()) < 1e-4, differences


def test_a_step_that_embeds_its_tokens_matches_pytorch(tmp_path: Path) -> None:
    from training.export import check_export, export_step

    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2))
    path = export_step(model, tmp_path / "step.onnx", from_tokens=True)
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    differences = check_export(model, path, batch=5, from_tokens=True)
    assert max(differences.values()) < 1e-4, differences


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    stem = save_checkpoint(tmp_path / "tiny", TRM(ModelConfig(hidden_size=16, num_heads=2,
                                                               recursions=1, latent_updates=1)),
                           {"name": "tiny", "task": "sudoku"})
    assert main(["export", str(stem), "--onnx", str(tmp_path / "s.onnx"), "--check"]) == 0
    assert (tmp_path / "s.onnx").stat().st_size > 0
    assert '"max_abs_diff"' in capsys.readouterr().out
