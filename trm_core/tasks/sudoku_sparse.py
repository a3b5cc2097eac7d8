"""Proper Sudokus with fewer givens than random minimal puzzles reach: a clue-swap local search.

Digging a random full grid until no given can go (`sudoku_generate.dig`) gives a minimal puzzle
of 22-26 givens; 17-20 almost never come that way. The search goes lower from such a puzzle:
blank one given and reveal another cell of the same solution, or two and two, or blank one
given and write into a blank cell any digit its row, column and box allow (the puzzle's
solution may change: the walk crosses from grid to grid); when the puzzle is still unique, dig
it to minimal again. A move that keeps the puzzle unique is kept even when digging removes
nothing more, so the search walks across plateaus of equal count; every puzzle it holds is
proper (one solution) and minimal.

Measured (`python -m trm_core.tasks.sudoku_sparse`): blanking two and revealing one, the
direct step down, almost never stays unique and stalls where digging stopped (23-25); swaps
within one solution reach 21-22 and stop there, since most full grids have no smaller puzzle;
with the grid-changing move a third of the time, 20-21 in 3,000 moves (about 10 s a puzzle on
one core). Puzzles of 17-19 givens need far longer walks. With the compiled counter
(`sudoku_native`) a move costs about 1 ms instead of about 3 ms; one walk (seed 1) reached
19 givens after 7,704 moves (4.4 s) and then 71,685 moves (75 s) found no 18.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import numpy as np

from trm_core.tasks import sudoku_native
from trm_core.tasks.sudoku_generate import (
    _PEERS,
    SearchBudgetExceeded,
    dig,
    solve,
)

UNIQUENESS_MAX_GUESSES = 20_000  # a check past this is treated as "not unique"
# The compiled counter guesses where the Python search propagates, so it may make more guesses
# on the same puzzle; each costs far less.
NATIVE_BUDGET_SHARE = 50


# A swap whose check needs more is skipped: a few near-unique swaps would cost a minute each.
SWAP_MAX_GUESSES = 400

CROSS_SHARE = 0.3  # share of moves that may change the solution


def _count(puzzle: np.ndarray, max_guesses: int) -> tuple[int, np.ndarray | None] | None:
    """(solutions found, up to 2; the first) or None when the search runs past `max_guesses`
    of the Python search's guesses; compiled where a C compiler is found (`sudoku_native`),
    else the Python search."""
    if sudoku_native.available():
        try:
            return sudoku_native.count_solutions(puzzle, 2, NATIVE_BUDGET_SHARE * max_guesses)
        except sudoku_native.BudgetExceeded:
            return None
    try:
        solutions, _ = solve(puzzle, limit=2, max_guesses=max_guesses)
    except SearchBudgetExceeded:
        return None
    return len(solutions), (solutions[0] if solutions else None)


def only_solution(puzzle: np.ndarray,
                  max_guesses: int = UNIQUENESS_MAX_GUESSES) -> np.ndarray | None:
    """The puzzle's solution when it has exactly one (None when the check runs past
    `max_guesses`, see `_count`)."""
    counted = _count(puzzle, max_guesses)
    return counted[1] if counted is not None and counted[0] == 1 else None


def is_unique(puzzle: np.ndarray, max_guesses: int = UNIQUENESS_MAX_GUESSES) -> bool:
    """Whether the puzzle has exactly one solution (False when the check runs past budget)."""
    return only_solution(puzzle, max_guesses) is not None


def cross_move(puzzle: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """One given blanked and one blank cell given a digit its peers allow, dug to minimal:
    (puzzle, its new solution), or None when that is not unique."""
    moved = puzzle.copy()
    moved[rng.choice(np.flatnonzero(puzzle))] = 0
    cell = int(rng.choice(np.flatnonzero(moved == 0)))
    allowed = sorted(set(range(1, 10)) - {int(moved[peer]) for peer in _PEERS[cell]})
    if not allowed:
        return None
    moved[cell] = rng.choice(allowed)
    solution = only_solution(moved)
    if solution is None:
        return None
    return dig(moved, rng, 0), solution


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


def _walk(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator, floor: int,
          max_moves: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The walk from a minimal `puzzle` towards `floor` givens, at most `max_moves` moves
    tried: every (puzzle, solution) it holds, the start first. A move is kept when it does not
    add givens."""
    current = (puzzle, solution)
    yield current
    for _ in range(max_moves):
        givens = np.count_nonzero(current[0])
        if givens <= floor:
            return
        moved = next_move(*current, rng)
        if moved is not None and np.count_nonzero(moved[0]) <= givens:
            current = moved
            yield current


def sparser(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
            target_givens: int, max_moves: int) -> tuple[np.ndarray, np.ndarray]:
    """The walk from a minimal `puzzle` towards `target_givens` givens, at most `max_moves`
    moves tried; returns the sparsest puzzle it held (the last one of its count) and its
    solution."""
    return collections.deque(_walk(puzzle, solution, rng, target_givens, max_moves),
                             maxlen=1)[0]


def walk_down(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
              floor: int, max_moves: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The walk of `sparser` from a minimal `puzzle` down to `floor` givens, keeping the first
    puzzle it holds at each count on the way (count -> (puzzle, solution)): one walk gives a
    puzzle of each count it passes."""
    held: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for step in _walk(puzzle, solution, rng, floor, max_moves):
        held.setdefault(int(np.count_nonzero(step[0])), step)
    return held


def is_minimal(puzzle: np.ndarray, max_guesses: int = UNIQUENESS_MAX_GUESSES) -> bool:
    """Whether the (unique) puzzle is shown to lose uniqueness when any one given is blanked: a
    second solution found for each within `max_guesses`; one that takes longer counts as not
    shown, so the answer is False."""
    for cell in np.flatnonzero(puzzle):
        fewer = puzzle.copy()
        fewer[cell] = 0
        counted = _count(fewer, max_guesses)
        if counted is None or counted[0] < 2:
            return False
    return True


def one_given_more(puzzle: np.ndarray, solution: np.ndarray, rng: np.random.Generator,
                   max_moves: int, min_moves: int = 8) -> np.ndarray | None:
    """A minimal puzzle with one given more than the minimal `puzzle`, on the same solution:
    one solution cell revealed, then one-for-one swaps that keep the puzzle unique (at least
    `min_moves` of them, so it moves away from `puzzle`) until it is shown minimal; None when
    `max_moves` swaps tried find none. Checks that run long count as failed, so a walk never
    stalls on one."""
    current = puzzle.copy()
    shown = rng.choice(np.flatnonzero(puzzle == 0))
    current[shown] = solution[shown]
    kept = 0
    for _ in range(max_moves):
        givens, blanks = np.flatnonzero(current), np.flatnonzero(current == 0)
        moved = current.copy()
        moved[rng.choice(givens)] = 0
        shown = rng.choice(blanks)
        moved[shown] = solution[shown]
        if not is_unique(moved, SWAP_MAX_GUESSES):
            continue
        current, kept = moved, kept + 1
        if kept >= min_moves and is_minimal(current, SWAP_MAX_GUESSES):
            return current
    return None


def next_move(puzzle: np.ndarray, solution: np.ndarray,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """A random move of the walk: across grids, or a swap of one or two within this one."""
    if rng.random() < CROSS_SHARE:
        return cross_move(puzzle, rng)
    size = 1 if rng.random() < 0.5 else 2
    moved = swap_move(puzzle, solution, rng, size, size)
    return None if moved is None else (moved, solution)


def main() -> None:
    """Walks from fresh grids: the givens count every 500 moves, for the measurement above."""
    import time

    from trm_core.tasks.sudoku_generate import random_solution

    rng = np.random.default_rng(0)
    for walk in range(3):
        started = time.perf_counter()
        solution = random_solution(rng)
        current = (dig(solution, rng, 0), solution)
        counts = [int(np.count_nonzero(current[0]))]
        for _ in range(6):
            current = sparser(*current, rng, 17, 500)
            counts.append(int(np.count_nonzero(current[0])))
        print(f"walk {walk}: givens every 500 moves {counts}, "
              f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()


