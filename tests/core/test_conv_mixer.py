"""The convolutional token mixer: shapes, parameters, locality, batching independence, puzzle
positions, and config errors that name the field."""

import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.layers import ConvMixer
from trm_core.model import TRM, count_parameters


def maze_config(**overrides: object) -> ModelConfig:
    base: dict[str, object] = {"seq_len": 900, "vocab_size": 6, "hidden_size": 16,
                               "token_mixer": "conv", "recursions": 1, "latent_updates": 1,
                               "swiglu_multiple": 16, "max_supervision_steps": 2}
    return ModelConfig(**{**base, **overrides})  # type: ignore[arg-type]


def test_one_conv_sees_only_its_neighbourhood() -> None:
    torch.manual_seed(0)
    mixer = ConvMixer(maze_config(conv_kernel=3, conv_dilation=2)).double()
    x = torch.randn(1, 900, 16, dtype=torch.float64)
    moved = x.clone()
    moved[0, 15 * 30 + 15] += 1.0  # cell (15, 15)
    changed = (mixer(moved) - mixer(x)).abs().sum(-1).view(30, 30) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert set(rows.tolist()) == {13, 15, 17} and set(cols.tolist()) == {13, 15, 17}


def test_parameters_do_not_grow_with_the_grid() -> None:
    small = count_parameters(TRM(maze_config(seq_len=81, vocab_size=6)))
    large = count_parameters(TRM(maze_config()))
    conv = 16 * 16 * 3 * 3 * 2  # two blocks
    assert small == large and conv < small


def test_rows_of_a_batch_are_independent() -> None:
    torch.manual_seed(0)
    model = TRM(maze_config()).double().eval()
    tokens = torch.randint(1, 6, (3, 900))
    state = model.initial_state(3, dtype=torch.float64)
    together = model(state, tokens).logits
    alone = model(model.initial_state(1, dtype=torch.float64), tokens[1:2]).logits
    torch.testing.assert_close(together[1:2], alone)


def test_puzzle_positions_reach_every_cell_and_back() -> None:
    torch.manual_seed(0)
    config = maze_config(puzzle_emb_len=2, puzzle_emb_dim=32)
    mixer = ConvMixer(config).double()
    x = torch.randn(1, 902, 16, dtype=torch.float64)
    out = mixer(x)
    moved = x.clone()
    moved[0, 0] += 1.0  # a puzzle position
    assert ((mixer(moved) - out)[0, 2:].abs().sum(-1) > 0).all()
    moved = x.clone()
    moved[0, 500] += 1.0  # a grid cell far from most others
    assert ((mixer(moved) - out)[0, :2].abs().sum(-1) > 0).all()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("conv_kernel", 4, "conv_kernel must be odd"),
    ("conv_dilation", 0, "conv_dilation must be >= 1"),
    ("grid_height", 7, "not a grid"),
])
def test_bad_conv_settings_name_the_field(field: str, value: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        maze_config(**{field: value})


def test_rectangular_grids_take_a_height() -> None:
    config = maze_config(seq_len=12 * 20, grid_height=12)
    assert config.grid == (12, 20)
    model = TRM(config)
    out = model(model.initial_state(2), torch.randint(1, 6, (2, 240)))
    assert out.logits.shape == (2, 240, 6)
