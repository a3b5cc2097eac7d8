"""The clue-swap walk below minimal puzzles: every puzzle it holds is proper and minimal, with
the solution it reports, and the walk never climbs."""

from __future__ import annotations

import numpy as np

from trm_core.tasks import get_task
from trm_core.tasks.sudoku_generate import dig, generate_of_difficulty, random_solution
from trm_core.tasks.sudoku_sparse import cross_move, is_unique, sparser, swap_move


def minimal_start(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    solution = random_solution(rng)
    return dig(solution, rng, 0), solution


def assert_proper_minimal(puzzle: np.ndarray, solution: np.ndarray) -> None:
    assert is_unique(puzzle)
    givens = np.flatnonzero(puzzle)
    assert (puzzle[givens] == solution[givens]).all()
    for cell in givens[:6]:  # removing any given loses uniqueness (a sample, for speed)
        fewer = puzzle.copy()
        fewer[cell] = 0
        assert not is_unique(fewer)


def test_a_swap_keeps_the_solution_or_refuses() -> None:
    puzzle, solution = minimal_start(1)
    rng = np.random.default_rng(2)
    tried = [swap_move(puzzle, solution, rng, 1, 1) for _ in range(200)]
    kept = [moved for moved in tried if moved is not None]
    assert kept, "no swap kept the puzzle unique"  # most do not: about 1 in 20
    for moved in kept:
        assert_proper_minimal(moved, solution)


def test_a_move_across_grids_carries_its_new_solution() -> None:
    puzzle, _ = minimal_start(8)
    rng = np.random.default_rng(7)
    kept = [moved for moved in (cross_move(puzzle, rng) for _ in range(400)) if moved]
    assert kept, "no move across grids kept the puzzle unique"  # about 1 in 40 does
    for moved, solution in kept:
        assert_proper_minimal(moved, solution)


def test_the_walk_never_climbs_and_ends_proper() -> None:
    puzzle, solution = minimal_start(3)
    walked, walked_solution = sparser(puzzle, solution, np.random.default_rng(4), 17, 150)
    assert np.count_nonzero(walked) <= np.count_nonzero(puzzle)
    assert_proper_minimal(walked, walked_solution)
    assert get_task("sudoku").verify(walked, walked_solution)


def test_the_few_difficulty_lands_in_its_range() -> None:
    puzzle, solution, guesses = generate_of_difficulty(np.random.default_rng(5), "few")
    assert 17 <= np.count_nonzero(puzzle) <= 22 and guesses >= 0
    assert_proper_minimal(puzzle, solution)
