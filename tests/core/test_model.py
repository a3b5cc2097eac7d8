"""The network against the official implementation's outputs, and its parameter counts."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trm_core.config import ModelConfig, swiglu_inner_size
from trm_core.model import TRM, count_parameters
from trm_core.official import load_official

VECTORS = Path(__file__).parent.parent / "data" / "official-vectors"
CASES = ["mlp_t_no_puzzle", "mlp_t_puzzle16", "att_rope_puzzle4", "att_learned_no_puzzle"]


def load_case(name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = json.loads((VECTORS / f"{name}.json").read_text())
    return meta, load_file(str(VECTORS / f"{name}.safetensors"))


@pytest.mark.parametrize("name", CASES)
def test_reproduces_official_outputs(name: str) -> None:
    meta, tensors = load_case(name)
    weights = {k: v for k, v in tensors.items() if not k.startswith("test.")}
    model = load_official(weights, ModelConfig.from_official(meta["official_config"])).eval()
    inputs = tensors["test.inputs"].long()
    state = model.initial_state(inputs.shape[0])
    with torch.no_grad():
        x = model.embed(inputs, tensors["test.puzzle_identifiers"].long())
        for step in range(meta["supervision_steps"]):
            out = model.step(state, x)
            state = out.state
            expected = tensors["test.logits"][step]
            scale = expected.abs().max()
            assert (out.logits - expected).abs().max() / scale < 1e-4, f"logits, step {step}"
            torch.testing.assert_close(out.halt_logits, tensors["test.q_halt_logits"][step],
                                       rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(out.continue_logits,
                                       tensors["test.q_continue_logits"][step],
                                       rtol=1e-4, atol=1e-4)


def test_swiglu_rounding_matches_reference() -> None:
    assert swiglu_inner_size(512, 4) == 1536
    assert swiglu_inner_size(97, 4) == 512
    assert swiglu_inner_size(81, 4) == 256


def test_parameter_counts_match_reference() -> None:
    sudoku = ModelConfig(puzzle_emb_len=16, puzzle_emb_dim=512)
    maze = ModelConfig(seq_len=900, vocab_size=6, token_mixer="attention",
                       position_encoding="rope", latent_updates=4, puzzle_emb_len=16,
                       puzzle_emb_dim=512)
    assert count_parameters(TRM(sudoku)) == 5_029_378
    assert count_parameters(TRM(maze)) == 6_823_426
    assert count_parameters(TRM(ModelConfig())) == 4_855_298  # our default: 81 positions


def test_only_last_recursion_has_gradients() -> None:
    config = ModelConfig(hidden_size=16, num_heads=2, recursions=3, latent_updates=2)
    model = TRM(config)
    tokens = torch.randint(1, 11, (2, 81))
    out = model(model.initial_state(2), tokens)
    assert out.logits.requires_grad and not out.state.y.requires_grad
    out.logits.sum().backward()
    assert model.token_embedding.weight.grad is not None


def test_halting_starts_improbable() -> None:
    model = TRM(ModelConfig(hidden_size=16, num_heads=2, recursions=1, latent_updates=1))
    out = model(model.initial_state(3), torch.randint(1, 11, (3, 81)))
    torch.testing.assert_close(out.halt_logits, torch.full((3,), -5.0))


def test_reset_rows_restores_initial_state() -> None:
    model = TRM(ModelConfig(hidden_size=16, num_heads=2, recursions=1, latent_updates=1))
    state = model(model.initial_state(2), torch.randint(1, 11, (2, 81))).state
    reset = model.reset_rows(state, torch.tensor([True, False]))
    fresh = model.initial_state(1)
    torch.testing.assert_close(reset.y[0], fresh.y[0])
    torch.testing.assert_close(reset.y[1], state.y[1])
