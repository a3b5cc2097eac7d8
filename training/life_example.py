"""The worked example of a data-defined task: one step of Conway's Game of Life on a 10x10
torus, its spec and a generator of random boards with their next step
(`trm task example life`)."""

from __future__ import annotations

from typing import Any

import numpy as np

SPEC = """# One step of Conway's Game of Life on a 10x10 torus: a live cell ('#') with two or
# three live neighbours lives on, a dead one ('.') with exactly three comes alive, every other
# cell is dead next; the edges meet, so every cell has eight neighbours.
name = "life"
description = "One step of Conway's Game of Life on a 10x10 torus ('#' alive, '.' dead)"
data = "data.jsonl"
alphabet = [".", "#"]
keep = []
# The rule is the same under rotation and reflection of the board.
symmetries = ["dihedral"]
fixed = []

[input]
kind = "grid"
shape = [10, 10]
wrap = true

[output]
kind = "grid"
shape = [10, 10]
"""


def step(board: np.ndarray) -> np.ndarray:
    """The next generation of a torus board (bool, rows x columns)."""
    neighbours = sum(np.roll(np.roll(board, dr, 0), dc, 1)
                     for dr in (-1, 0, 1) for dc in (-1, 0, 1) if (dr, dc) != (0, 0))
    return (neighbours == 3) | (board & (neighbours == 2))


def rows(count: int, seed: int, size: int = 10) -> list[dict[str, Any]]:
    """Random boards (live share drawn from 0.15 to 0.5 per board) and their next step."""
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        board = rng.random((size, size)) < rng.uniform(0.15, 0.5)
        made.append({"input": ["".join(".#"[int(c)] for c in r) for r in board],
                     "output": ["".join(".#"[int(c)] for c in r) for r in step(board)]})
    return made
