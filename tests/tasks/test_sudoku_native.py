"""The compiled Sudoku counter answers as the Python search does: solution counts, the
solution itself, a digit banned at a cell, conflicting givens, and the guess budget."""

from __future__ import annotations

import numpy as np
import pytest

from trm_core.tasks import sudoku_native
from trm_core.tasks.sudoku_generate import dig, random_solution, solve

pytestmark = pytest.mark.skipif(not sudoku_native.available(), reason="no C compiler")


def test_counts_and_solutions_match_the_python_search() -> None:
    rng = np.random.default_rng(0)
    for _ in range(40):
        solution = random_solution(rng)
        puzzle = dig(solution, rng, 17)
        looser = puzzle.copy()
        looser[rng.choice(np.flatnonzero(looser))] = 0  # minimal: one more blank, two solutions
        for cells in (puzzle, looser):
            count, first = sudoku_native.count_solutions(cells, limit=2)
            expected, _ = solve(cells, limit=2)
            assert count == len(expected)
            if count == 1:
                assert first is not None and np.array_equal(first, expected[0])
        assert sudoku_native.count_solutions(puzzle, limit=1)[0] == 1


def test_a_banned_digit_and_clashing_givens() -> None:
    rng = np.random.default_rng(1)
    solution = random_solution(rng)
    puzzle = dig(solution, rng, 17)
    blank = int(np.flatnonzero(puzzle == 0)[0])
    # the puzzle is unique: forbidding its one digit at a blank leaves no solution
    assert sudoku_native.count_solutions(puzzle, 1, ban=(blank, int(solution[blank])))[0] == 0
    clash = puzzle.copy()
    clash[:2] = 5  # two 5s in row 1
    assert sudoku_native.count_solutions(clash, 2) == (0, None)


def test_the_guess_budget_stops_the_search() -> None:
    empty = np.zeros(81, dtype=np.int8)
    with pytest.raises(sudoku_native.BudgetExceeded):
        sudoku_native.count_solutions(empty, limit=10**6, max_guesses=100)
    assert sudoku_native.count_solutions(empty, limit=2)[0] == 2
