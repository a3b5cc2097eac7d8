"""The network against the official implementation's outputs, and its parameter counts.

The equivalence check runs in float64 against vectors the official code computed in float64
(`tests/data/official-vectors-f64/README.md`): the MLP-t recursion amplifies each kernel's fp32
rounding about 30x a supervision step, so fp32 results after a few steps differ between CPUs,
while float64 ones agree to far below the bounds. The fp32 vectors are checked at step 0 only,
where fp32 agrees across CPUs.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trm_core.config import ModelConfig, swiglu_inner_size
from trm_core.model import TRM, StepOutput, count_parameters
from trm_core.official import load_official

DATA = Path(__file__).parent.parent / "data"
CASES = ["mlp_t_no_puzzle", "mlp_t_puzzle16", "att_rope_puzzle4", "att_learned_no_puzzle"]


def load_case(folder: str, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    meta = json.loads((DATA / folder / f"{name}.json").read_text())
    return meta, load_file(str(DATA / folder / f"{name}.safetensors"))


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build modules in `dtype` (parameters, buffers and the RoPE tables alike)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def official_steps(meta: dict, tensors: dict[str, torch.Tensor], dtype: torch.dtype,
                   steps: int) -> list[StepOutput]:
    """Our model holding the case's official weights, built in `dtype`, run for `steps`
    supervision steps from the initial carry in eval mode."""
    weights = {k: v for k, v in tensors.items() if not k.startswith("test.")}
    with default_dtype(dtype):
        model = load_official(weights, ModelConfig.from_official(meta["official_config"])).eval()
    inputs = tensors["test.inputs"].long()
    state, outputs = model.initial_state(inputs.shape[0]), []
    with torch.no_grad():
        x = model.embed(inputs, tensors["test.puzzle_identifiers"].long())  # (B, L, D)
        for _ in range(steps):
            outputs.append(model.step(state, x))
            state = outputs[-1].state
    return outputs


def relative_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest absolute difference over the largest expected magnitude."""
    return float((got.double() - expected.double()).abs().max() / expected.abs().max())


def absolute_error(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got.double() - expected.double()).abs().max())


@pytest.mark.parametrize("name", CASES)
def test_reproduces_official_outputs_in_float64(name: str) -> None:
    # 1e-6 holds on any CPU (the float64 vectors' README measured at most 1.2e-7) and still
    # catches a 0.1% change of one scale, which moves the logits by about 1e-2.
    meta, tensors = load_case("official-vectors-f64", name)
    outputs = official_steps(meta, tensors, torch.float64, meta["supervision_steps"])
    for step, out in enumerate(outputs):
        assert out.logits.dtype == torch.float64
        assert relative_error(out.logits, tensors["test.logits"][step]) < 1e-6, f"step {step}"
        for head in ("halt", "continue"):
            got = getattr(out, f"{head}_logits")
            expected = tensors[f"test.q_{head}_logits"][step]
            assert absolute_error(got, expected) < 1e-6, f"{head} logits, step {step}"


@pytest.mark.parametrize("name", CASES)
def test_reproduces_official_fp32_outputs_at_the_first_step(name: str) -> None:
    # Only step 0: later steps in fp32 differ between CPUs by more than any useful bound.
    meta, tensors = load_case("official-vectors", name)
    out = official_steps(meta, tensors, torch.float32, 1)[0]
    assert relative_error(out.logits, tensors["test.logits"][0]) < 1e-4
    for head in ("halt", "continue"):
        torch.testing.assert_close(getattr(out, f"{head}_logits"),
                                   tensors[f"test.q_{head}_logits"][0], rtol=1e-4, atol=1e-4)


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
