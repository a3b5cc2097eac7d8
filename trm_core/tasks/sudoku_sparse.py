"""Proper Sudokus with fewer givens than random minimal puzzles reach: a clue-swap local search.

Digging a random full grid until no given can go (`sudoku_generate.dig`) gives a minimal puzzle
of 22-26 givens; 17-20 almost never come that way. The search goes lower from such a puzzle:
blank one given and reveal another cell of the same solution, or two and two, and when the
puzzle is still unique, dig it to minimal again. A move that keeps the puzzle unique is kept
even when digging removes nothing more, so the search walks across plateaus of equal count;
every puzzle it holds is proper (one solution) and minimal. (Blanking two and revealing one
is a direct step down, but it almost never stays unique; measured, it stalls where digging
stopped, while the mixed swaps reach 20-22 givens in 1,500 moves, a few seconds a puzzle.)
"""

from __future__ import annotations

import numpy as np

from trm_core.tasks.sudoku_generate import (
    SearchBudgetExceeded,
    dig,
    solve,
)

UNIQUENESS_MAX_GUESSES = 20_000  # a check past this is treated as "not unique"


def is_unique(puzzle: np.ndarray) -> bool:
    """Whether the puzzle has exactly one solution (False when the check runs past budget)."""
    try:
        solutions, _ = solve(puzzle, limit=2, max_guesses=UNIQUENESS_MAX_GUESSES)
    except SearchBudgetExceeded:
        return False
    return len(solutions) == 1


def swap_move(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
              blank: int = 1, reveal: int = 1) -> np.ndarray | None:
    """`blank` givens blanked and `reveal` other solution cells revealed, dug to minimal; None
    when the swap leaves more than one solution."""
    givens, blanks = np.flatnonzero(puzzle), np.flatnonzero(puzzle == 0)
    moved = puzzle.copy()
    moved[rng.choice(givens, blank, replace=False)] = 0
    shown = rng.choice(blanks, reveal, replace=False)
    moved[shown] = solution[shown]
    if not is_unique(moved):
        return None
    return dig(moved, rng, 0)


def sparser(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
            target_givens: int, max_moves: int) -> np.ndarray:
    """The walk from a minimal `puzzle` towards `target_givens` givens, at most `max_moves`
    swaps tried; returns the sparsest puzzle it held (the last one of its count)."""
    current = puzzle
    for _ in range(max_moves):
        if np.count_nonzero(current) <= target_givens:
            break
        size = 1 if rng.random() < 0.5 else 2
        moved = swap_move(current, solution, rng, size, size)
        if moved is not None and np.count_nonzero(moved) <= np.count_nonzero(current):
            current = moved
    return current


