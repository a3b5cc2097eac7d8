"""Tiny maze checkpoints for the service tests: a seeded untrained model, and a hand-set
stand-in that turns every open cell into a path cell, so the path fields and the viewer's path
rendering have something to show. Neither solves anything; tests check shapes and sequences."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import torch

from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.tasks.maze import GOAL, OPEN, PATH, START, WALL

REPO = Path(__file__).resolve().parents[2]
MAZE_STEPS = 3
MAZE_ID = "trm-maze-tiny@1"
PAINTER_ID = "trm-maze-tiny-painter@1"  # sorts after MAZE_ID, so MAZE_ID is the default


def maze_config() -> ModelConfig:
    return ModelConfig(seq_len=900, vocab_size=6, hidden_size=32, num_heads=2, expansion=2.0,
                       token_mixer="attention", position_encoding="rope", recursions=1,
                       latent_updates=1, max_supervision_steps=MAZE_STEPS, swiglu_multiple=32)


def save_maze_checkpoint(root: Path, painter: bool = False) -> None:
    """`root/maze/tiny` (seeded, untrained) or, with `painter`, `root/maze/painter`."""
    torch.manual_seed(0)
    model = TRM(maze_config())
    if painter:
        _paint_open_cells(model)
    name = (PAINTER_ID if painter else MAZE_ID).split("@")[0]
    save_checkpoint(root / "maze" / ("painter" if painter else "tiny"), model,
                    {"name": name, "task": "maze"})


def save_sudoku_checkpoint(root: Path) -> None:
    """`root/sudoku/tiny`, as the service tests' conftest makes it."""
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2,
                            max_supervision_steps=4))
    save_checkpoint(root / "sudoku" / "tiny", model, {"name": "trm-sudoku-tiny",
                                                      "task": "sudoku"})


def _paint_open_cells(model: TRM) -> None:
    """With every block's output projections at zero a block is a normalisation, so the answer
    state follows the (large, one-hot) token embedding and the head maps each token to an
    answer token: walls, S and G to themselves, open to path. The halting head never halts."""
    assert model.config.hidden_size > GOAL  # one embedding axis per token
    with torch.no_grad():
        for block in model.reasoner.blocks:
            block.token_mixer.out.weight.zero_()
            block.channel_mixer.down.weight.zero_()
        model.token_embedding.weight.zero_()
        model.answer_head.weight.zero_()
        for token, answer in ((WALL, WALL), (OPEN, PATH), (START, START), (GOAL, GOAL)):
            model.token_embedding.weight[token, token] = 10.0
            model.answer_head.weight[answer, token] = 10.0
        model.halt_head.weight.zero_()
        model.halt_head.bias.copy_(torch.tensor([-5.0, 0.0]))


def committed_mazes(count: int, difficulty: str = "easy") -> list[dict[str, str]]:
    """The first `count` rows of a committed maze test set."""
    with (REPO / "training" / "data" / f"maze-{difficulty}-test.csv").open(newline="") as f:
        return list(itertools.islice(csv.DictReader(f), count))
