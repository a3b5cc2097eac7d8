"""Exact Sudoku solving, difficulty grading and puzzle generation, plus the dataset CSV format.

The solver keeps one 9-bit candidate mask per cell (bit d-1 set when digit d is still possible),
propagates naked singles (a cell with one candidate removes it from its 20 peers) and hidden
singles (a digit with one place left in a unit goes there), and when stuck guesses on the cell
with the fewest candidates, depth first.

Guesses: every time the search tentatively places a candidate at a branch point it counts one
guess, whether that branch succeeds or fails. A puzzle solved by propagation alone needs 0.

Difficulty is `count_guesses`: the guesses the search makes until it reaches the first solution,
with candidates tried in ascending digit order and ties between equally constrained cells broken
by the lowest position, so a puzzle's grade is deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from trm_core.tasks import sudoku_native
from trm_core.tasks.generation import DatasetTools, generate_seeded, read_rows, write_rows
from trm_core.tasks.sudoku import N_CELLS, UNITS, format_cells

logger = logging.getLogger(__name__)

ALL_DIGITS = 0x1FF
_BIT_OF_DIGIT = [0] + [1 << (d - 1) for d in range(1, 10)]
_DIGIT_OF_BIT = {1 << (d - 1): d for d in range(1, 10)}
# _OPTIONS[mask]: the single-bit candidates of a mask, ascending; _COUNT[mask]: how many.
_OPTIONS = [tuple(1 << d for d in range(9) if mask >> d & 1) for mask in range(1 << 9)]
_COUNT = [len(options) for options in _OPTIONS]
_UNIT_CELLS = [positions for _, _, positions in UNITS]
# _UNITS_OF[pos]: indices into UNITS of the row, column and box holding pos.
_UNITS_OF = [
    tuple(i for i, unit in enumerate(_UNIT_CELLS) if pos in unit) for pos in range(N_CELLS)
]
_PEERS = [
    tuple(sorted({p for unit in _UNIT_CELLS if pos in unit for p in unit} - {pos}))
    for pos in range(N_CELLS)
]


# ---------------------------------------------------------------------------------- solver
def _propagate(masks: list[int], queue: list[int]) -> bool:
    """Apply naked and hidden singles to `masks` in place until nothing changes.

    `queue` holds cells fixed to one candidate whose digit is not yet removed from their peers.
    Returns False on a contradiction (a cell with no candidate, a digit with no place in a unit,
    or two digits that can each only go in the same cell).
    """
    while True:
        while queue:
            cell = queue.pop()
            bit = masks[cell]
            for peer in _PEERS[cell]:
                mask = masks[peer]
                if mask & bit:
                    mask ^= bit
                    if not mask:
                        return False
                    masks[peer] = mask
                    if not mask & (mask - 1):
                        queue.append(peer)
        for unit in _UNIT_CELLS:
            once = twice = fixed = 0
            for cell in unit:
                mask = masks[cell]
                twice |= once & mask
                once |= mask
                if not mask & (mask - 1):
                    fixed |= mask
            if once != ALL_DIGITS:
                return False
            # Digits with exactly one place that is not yet fixed to them.
            hidden = once & ~twice & ~fixed
            if not hidden:
                continue
            for cell in unit:
                mask = masks[cell]
                only_here = mask & hidden
                if only_here and mask != only_here:
                    if only_here & (only_here - 1):
                        return False
                    masks[cell] = only_here
                    queue.append(cell)
        if not queue:
            return True


def _most_constrained(masks: list[int]) -> int:
    """The first unsolved cell with the fewest candidates, or -1 when every cell is solved."""
    best, best_count = -1, 10
    for cell, mask in enumerate(masks):
        count = _COUNT[mask]
        if 1 < count < best_count:
            best, best_count = cell, count
            if count == 2:
                break
    return best


class SearchBudgetExceeded(RuntimeError):
    """The solver made more guesses than it was allowed."""


class _Search:
    """Depth-first search that stops once `limit` solutions are found."""

    def __init__(
        self, limit: int, rng: np.random.Generator | None = None, max_guesses: int | None = None
    ) -> None:
        self.limit = limit
        self.rng = rng  # None: ascending candidate order; else a fresh shuffle at each branch
        self.max_guesses = max_guesses
        self.solutions: list[list[int]] = []
        self.guesses = 0

    def run(self, masks: list[int], queue: list[int]) -> None:
        if not _propagate(masks, queue):
            return
        cell = _most_constrained(masks)
        if cell < 0:
            self.solutions.append(masks)
            return
        options: Sequence[int] = _OPTIONS[masks[cell]]
        if self.rng is not None:
            options = [options[i] for i in self.rng.permutation(len(options))]
        for bit in options:
            self.guesses += 1
            if self.max_guesses is not None and self.guesses > self.max_guesses:
                raise SearchBudgetExceeded(f"gave up after {self.max_guesses} guesses")
            child = masks.copy()
            child[cell] = bit
            self.run(child, [cell])
            if len(self.solutions) >= self.limit:
                return


def _values_of(cells: np.ndarray | Sequence[int]) -> list[int]:
    values = [int(v) for v in np.asarray(cells).reshape(-1).tolist()]
    if len(values) != N_CELLS or not all(0 <= v <= 9 for v in values):
        raise ValueError("expected 81 cells with values 0-9")
    return values


def _initial_state(values: list[int]) -> tuple[list[int], list[int]] | None:
    """Candidate masks with every given's digit already removed from its peers, and the blank
    cells left with one candidate (still to propagate); None when givens clash or leave a cell
    without candidates. Unit-wide masks make this O(81), much cheaper than peer-by-peer."""
    used = [0] * 27  # rows, then columns, then boxes
    for pos, value in enumerate(values):
        if value:
            bit = _BIT_OF_DIGIT[value]
            units = _UNITS_OF[pos]
            if (used[units[0]] | used[units[1]] | used[units[2]]) & bit:
                return None
            for unit in units:
                used[unit] |= bit
    masks, queue = [], []
    for pos, value in enumerate(values):
        if value:
            masks.append(_BIT_OF_DIGIT[value])
            continue
        row, col, box = _UNITS_OF[pos]
        mask = ALL_DIGITS & ~(used[row] | used[col] | used[box])
        if not mask:
            return None
        masks.append(mask)
        if not mask & (mask - 1):
            queue.append(pos)
    return masks, queue


def _cells_of(masks: list[int]) -> np.ndarray:
    return np.array([_DIGIT_OF_BIT[m] for m in masks], dtype=np.int8)


def solve(
    cells: np.ndarray | Sequence[int],
    limit: int = 2,
    rng: np.random.Generator | None = None,
    max_guesses: int | None = None,
) -> tuple[list[np.ndarray], int]:
    """Up to `limit` solutions (each (81,) int8) of a puzzle and the guesses the search made.

    With `limit=2` two solutions mean the puzzle is not unique, one that it is, none that it has
    no solution (conflicting givens included). `rng` shuffles the candidate order at every
    branch, which is how random full grids are made; without it the order is ascending.

    Proper puzzles take milliseconds, but a few sparse puzzles with many solutions send a
    depth-first search into a huge dead subtree first; callers facing untrusted input should set
    `max_guesses` (e.g. 10_000), past which SearchBudgetExceeded is raised.
    """
    search = _Search(limit, rng, max_guesses)
    state = _initial_state(_values_of(cells))
    if state is not None:
        search.run(*state)
    return [_cells_of(m) for m in search.solutions], search.guesses


def count_guesses(cells: np.ndarray | Sequence[int]) -> int:
    """The puzzle's difficulty: guesses until the first solution in the fixed order (module
    docstring); raises ValueError when the puzzle has no solution."""
    solutions, guesses = solve(cells, limit=1)
    if not solutions:
        raise ValueError("the puzzle has no solution")
    return guesses


def random_solution(rng: np.random.Generator) -> np.ndarray:
    """A random complete grid (81,) int8: the empty grid solved with shuffled candidates."""
    solutions, _ = solve(np.zeros(N_CELLS, dtype=np.int8), limit=1, rng=rng)
    return solutions[0]


# Digging gives up on a cell whose uniqueness check needs more guesses than this (and keeps the
# given, which is always safe); random grids essentially never get near it.
_DIG_MAX_GUESSES = 5_000


def _has_other_solution(puzzle: list[int], pos: int, digit: int) -> bool:
    """Whether `puzzle` (unique with `digit` at `pos` before it was blanked) may have a solution
    with another digit there. Forbidding `digit` makes the search fail fast instead of finding
    the known solution first and then proving there is no second one. Compiled where a C
    compiler is found (`sudoku_native`)."""
    if sudoku_native.available():
        try:
            count, _ = sudoku_native.count_solutions(np.array(puzzle, dtype=np.int8), 1,
                                                     50 * _DIG_MAX_GUESSES, (pos, digit))
        except sudoku_native.BudgetExceeded:
            return True
        return count > 0
    state = _initial_state(puzzle)
    if state is None:
        return False
    masks, queue = state
    masks[pos] &= ~_BIT_OF_DIGIT[digit]
    if not masks[pos]:
        return False
    if not masks[pos] & (masks[pos] - 1):
        queue.append(pos)
    search = _Search(limit=1, max_guesses=_DIG_MAX_GUESSES)
    try:
        search.run(masks, queue)
    except SearchBudgetExceeded:
        logger.debug("uniqueness check at %d gave up; keeping the given", pos)
        return True
    return bool(search.solutions)


def dig(solution: np.ndarray, rng: np.random.Generator, target_givens: int) -> np.ndarray:
    """Blank cells of a full grid (or of a unique puzzle) in random order while the puzzle stays
    unique, stopping at `target_givens` givens or when no cell can go (a minimal puzzle).
    Returns cells (81,) int8."""
    puzzle = [int(v) for v in np.asarray(solution).reshape(-1).tolist()]
    givens = sum(1 for v in puzzle if v)
    for pos in rng.permutation(N_CELLS).tolist():
        if givens <= target_givens:
            break
        if not puzzle[pos]:
            continue
        digit, puzzle[pos] = puzzle[pos], 0
        if _has_other_solution(puzzle, pos, digit):
            puzzle[pos] = digit
        else:
            givens -= 1
    return np.array(puzzle, dtype=np.int8)


# ----------------------------------------------------------------------------- difficulty
# A puzzle is "hard" from this many guesses on; about a fifth of random minimal puzzles are.
HARD_MIN_GUESSES = 5
EASY_MIN_GIVENS = 40
SPARSE_MAX_GIVENS = 22


@dataclass(frozen=True)
class DifficultySpec:
    """What `generate_puzzle` aims for: a givens range, a guesses range, and whether to dig all
    the way to a minimal puzzle (else to a givens count drawn uniformly from the range)."""

    min_givens: int
    max_givens: int
    min_guesses: int = 0
    max_guesses: int | None = None
    minimal: bool = False
    walk_moves: int = 0  # after digging to minimal, clue swaps tried on the way down


DIFFICULTIES: dict[str, DifficultySpec] = {
    "easy": DifficultySpec(EASY_MIN_GIVENS, 50, max_guesses=0),
    # What a newspaper calls medium: 28-35 givens, little or no guessing for an exact solver.
    "medium": DifficultySpec(28, 35, max_guesses=HARD_MIN_GUESSES - 1),
    "hard": DifficultySpec(17, 32, min_guesses=HARD_MIN_GUESSES, minimal=True),
    # Proper minimal puzzles with few givens, guessing or not. Random minimal puzzles mostly
    # land at 22-26 givens, so this digs several grids per puzzle (about 4 puzzles/s a core).
    "sparse": DifficultySpec(17, SPARSE_MAX_GIVENS, minimal=True),
    # Below where digging lands: each minimal puzzle walks down by clue swaps
    # (trm_core/tasks/sudoku_sparse.py), mostly to 20-21 givens.
    "few": DifficultySpec(17, SPARSE_MAX_GIVENS, minimal=True, walk_moves=3000),
}


def bucket_of(givens: int, guesses: int) -> str:
    """The difficulty bucket of a puzzle: "sparse" up to SPARSE_MAX_GIVENS givens, "hard" from
    HARD_MIN_GUESSES guesses, "easy" with at least EASY_MIN_GIVENS givens and no guess,
    "medium" otherwise."""
    if givens <= SPARSE_MAX_GIVENS:
        return "sparse"
    if guesses >= HARD_MIN_GUESSES:
        return "hard"
    if givens >= EASY_MIN_GIVENS and guesses == 0:
        return "easy"
    return "medium"


# ------------------------------------------------------------------------------ generation
def generate_puzzle(
    rng: np.random.Generator,
    min_givens: int = 17,
    max_givens: int = N_CELLS,
    min_guesses: int = 0,
    max_guesses: int | None = None,
    minimal: bool = False,
    max_attempts: int = 1000,
    walk_moves: int = 0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """A unique puzzle meeting the givens and guesses ranges: (puzzle, solution, guesses).

    Each attempt digs a fresh random grid, either to a givens count drawn uniformly from
    [min_givens, max_givens] or, with `minimal`, as far as uniqueness allows, and then walks
    down by up to `walk_moves` clue swaps; attempts that land outside the ranges are
    discarded. Raises RuntimeError after `max_attempts` failures.
    """
    from trm_core.tasks.sudoku_sparse import sparser  # it builds on this module's solver

    for _ in range(max_attempts):
        solution = random_solution(rng)
        target = min_givens if minimal else int(rng.integers(min_givens, max_givens + 1))
        puzzle = dig(solution, rng, target)
        if walk_moves:
            puzzle, solution = sparser(puzzle, solution, rng, min_givens, walk_moves)
        givens = int(np.count_nonzero(puzzle))
        if not min_givens <= givens <= max_givens:
            continue
        guesses = count_guesses(puzzle)
        if guesses >= min_guesses and (max_guesses is None or guesses <= max_guesses):
            return puzzle, solution, guesses
    raise RuntimeError(f"no puzzle met the requirements in {max_attempts} attempts")


def generate_of_difficulty(
    rng: np.random.Generator, difficulty: str, max_attempts: int = 1000
) -> tuple[np.ndarray, np.ndarray, int]:
    """`generate_puzzle` with the ranges of a named difficulty (a key of DIFFICULTIES)."""
    spec = DIFFICULTIES[difficulty]
    return generate_puzzle(rng, spec.min_givens, spec.max_givens, spec.min_guesses,
                           spec.max_guesses, spec.minimal, max_attempts, spec.walk_moves)


def _generate_one(job: tuple[int, int, str]) -> tuple[str, str, int]:
    """Puzzle `index` of a run: seeded from (seed, index) alone, so any worker makes the same."""
    seed, index, difficulty = job
    puzzle, solution, guesses = generate_of_difficulty(np.random.default_rng([seed, index]),
                                                       difficulty)
    return format_cells(puzzle), format_cells(solution), guesses


def generate(
    n: int, difficulty: str, seed: int, workers: int | None = None
) -> list[tuple[str, str, int]]:
    """`n` puzzles of a named difficulty as (puzzle, solution, guesses), in a process pool of
    `workers` (default: all cores). The result depends only on (n, difficulty, seed); puzzle i
    is drawn from np.random.default_rng([seed, i]), so `seed` must be non-negative."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}"
        )
    return generate_seeded(_generate_one, n, difficulty, seed, workers, noun="puzzles")


# ------------------------------------------------------------------------------------- CSV

CSV_FIELDS = ("puzzle", "solution", "guesses", "bucket")


class SudokuRecord(NamedTuple):
    """One dataset row: 81-character puzzle and solution, guesses and difficulty bucket."""

    puzzle: str
    solution: str
    guesses: int
    bucket: str


def write_csv(path: str | Path, rows: Iterable[Sequence[str | int]]) -> int:
    """Write rows (puzzle, solution, guesses[, bucket]) under the CSV_FIELDS header, filling in
    a missing bucket with `bucket_of`; returns how many rows were written."""

    def complete(row: Sequence[str | int]) -> tuple[str, str, int, str]:
        puzzle, solution, guesses = str(row[0]), str(row[1]), int(row[2])
        bucket = str(row[3]) if len(row) > 3 else bucket_of(_givens(puzzle), guesses)
        return puzzle, solution, guesses, bucket

    return write_rows(path, CSV_FIELDS, map(complete, rows))


def read_csv(path: str | Path) -> list[SudokuRecord]:
    """Rows of a file written by `write_csv`; raises ValueError when a column is missing."""
    return [SudokuRecord(row["puzzle"], row["solution"], int(row["guesses"]), row["bucket"])
            for row in read_rows(path, CSV_FIELDS)]


def _givens(puzzle: str) -> int:
    return sum(ch in "123456789" for ch in puzzle)


TOOLS = DatasetTools(generate, write_csv, read_csv,
                     "digit relabelling, transpose, band/stack and row/column swaps")
