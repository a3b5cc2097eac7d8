"""Sudoku: parsing, encoding, rules, symmetries, canonical forms and rendering.

Cells are a flat (81,) int8 array in row-major order, 0 for a blank and 1..9 for digits. Tokens are
cell value + 1, so 1 is a blank, 2..10 are the digits and 0 (PAD) never occurs in a Sudoku.

The symmetry group used for augmentation and canonical forms is the usual one: relabel the digits,
optionally transpose, permute the three bands and the rows inside each band, permute the three
stacks and the columns inside each stack. Its order is 9! * 2 * 6**8.

The exact solver and the puzzle generator live in `trm_core.tasks.sudoku_generate`, the
canonical-form search in `trm_core.tasks.sudoku_canonical`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from trm_core.tasks.base import PuzzleError, Symmetry, Task
from trm_core.tasks.generation import DatasetTools

SIZE = 9
N_CELLS = SIZE * SIZE

_SEPARATORS = frozenset("|-+")
_CELL_CHARS = frozenset("0123456789.")
_BAD_TYPE = "expected a string of 81 characters or a 9x9 list of digits, got {}"


def _unit_table() -> tuple[list[tuple[str, int, tuple[int, ...]]], np.ndarray]:
    """The 27 units as (kind, 1-based number, flat positions), rows then columns then boxes."""
    units: list[tuple[str, int, tuple[int, ...]]] = []
    for r in range(SIZE):
        units.append(("row", r + 1, tuple(9 * r + c for c in range(SIZE))))
    for c in range(SIZE):
        units.append(("column", c + 1, tuple(9 * r + c for r in range(SIZE))))
    for b in range(SIZE):
        top, left = 3 * (b // 3), 3 * (b % 3)
        box = tuple(9 * (top + i) + left + j for i in range(3) for j in range(3))
        units.append(("box", b + 1, box))
    return units, np.array([positions for _, _, positions in units], dtype=np.intp)


UNITS, UNIT_INDEX = _unit_table()


def _band_preserving_orders() -> np.ndarray:
    """All 6**4 = 1296 orders of nine lines that keep each band of three together, (1296, 9):
    entry [i, 3k + j] is the source line that output line 3k + j of order i is taken from."""
    perms = list(itertools.permutations(range(3)))
    orders = [
        [3 * outer[k] + inner[k][j] for k in range(3) for j in range(3)]
        for outer in perms
        for inner in itertools.product(perms, repeat=3)
    ]
    return np.array(orders, dtype=np.intp)


LINE_ORDERS = _band_preserving_orders()
_LINE_ORDER_SET = frozenset(tuple(order) for order in LINE_ORDERS.tolist())


def cell_name(pos: int) -> str:
    """The 1-based r{row}c{col} name of flat position `pos`."""
    return f"r{pos // 9 + 1}c{pos % 9 + 1}"


# --------------------------------------------------------------------------------------- parsing
def parse_puzzle(raw: Any) -> np.ndarray:
    """A user's Sudoku as cells (81,) int8; raises PuzzleError naming the exact problem.

    Accepts an 81-cell string ('.' or '0' blank; whitespace and '|', '-', '+' ignored), a 9x9
    nested list or a flat list of 81 ints (0 or None blank). Givens that break a rule are rejected;
    puzzles with no givens or several solutions are not.
    """
    if isinstance(raw, str):
        cells, loc = _parse_string(raw), ("puzzle",)
    elif isinstance(raw, list | tuple) or (isinstance(raw, np.ndarray) and raw.ndim > 0):
        cells, loc = _parse_list(raw), ("grid",)
    else:
        raise PuzzleError(_BAD_TYPE.format(type(raw).__name__))
    for message, bad in _duplicates(cells):
        raise PuzzleError(message, loc, bad)
    return cells


def _parse_string(raw: str) -> np.ndarray:
    """Cells of an 81-character string; `position` in errors counts cells from 0, separators
    excluded, while rows and columns are 1-based as a person reads them."""
    chars = [ch for ch in raw if not (ch.isspace() or ch in _SEPARATORS)]
    for pos, ch in enumerate(chars):
        if ch not in _CELL_CHARS:
            inside = pos < N_CELLS
            where = f" (row {pos // 9 + 1}, column {pos % 9 + 1})" if inside else ""
            raise PuzzleError(
                f"bad character {ch!r} at position {pos}{where}; "
                "use digits 1-9 and '.' or '0' for blanks",
                ("puzzle",),
                [divmod(pos, 9)] if inside else [],
            )
    if len(chars) != N_CELLS:
        raise PuzzleError(f"expected 81 cells, got {len(chars)}", ("puzzle",))
    return np.array([0 if ch == "." else int(ch) for ch in chars], dtype=np.int8)


def _parse_list(raw: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Cells of a 9x9 nested list or a flat list of 81 cells."""
    items = raw.tolist() if isinstance(raw, np.ndarray) else list(raw)
    if not any(isinstance(item, list | tuple) for item in items):
        if len(items) != N_CELLS:
            raise PuzzleError(f"expected 81 cells, got {len(items)}", ("grid",))
        rows = [items[i : i + SIZE] for i in range(0, N_CELLS, SIZE)]
    else:
        if len(items) != SIZE:
            raise PuzzleError(f"expected 9 rows, got {len(items)}", ("grid",))
        for r, row in enumerate(items, start=1):
            if not isinstance(row, list | tuple):
                raise PuzzleError(f"row {r} is {row!r}; expected a list of 9 cells", ("grid",))
            if len(row) != SIZE:
                raise PuzzleError(f"row {r} has {len(row)} cells, expected 9", ("grid",))
        rows = items
    values = [_cell_value(value, r, c) for r, row in enumerate(rows) for c, value in enumerate(row)]
    return np.array(values, dtype=np.int8)


def _cell_value(value: Any, r: int, c: int) -> int:
    """One list cell as 0..9; None is a blank. Booleans are refused although they are ints."""
    if value is None:
        return 0
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value <= 9:
        return int(value)
    raise PuzzleError(
        f"cell (row {r + 1}, column {c + 1}) is {value!r}; expected 0-9", ("grid",), [(r, c)]
    )


def _duplicates(cells: np.ndarray) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """Every pair of equal filled cells sharing a unit: (message, [first, second] as (row, col))."""
    values = np.asarray(cells).reshape(-1).tolist()
    for kind, number, positions in UNITS:
        seen: dict[int, int] = {}
        for pos in positions:
            digit = values[pos]
            if digit == 0:
                continue
            if digit in seen:
                first = seen[digit]
                yield (
                    f"digit {digit} appears twice in {kind} {number}: "
                    f"{cell_name(first)} and {cell_name(pos)}",
                    [divmod(first, 9), divmod(pos, 9)],
                )
            else:
                seen[digit] = pos


# ------------------------------------------------------------------------------------ rules
def is_solution(puzzle: np.ndarray, answer: np.ndarray) -> bool:
    """True iff `answer` keeps every given of `puzzle` and each unit holds exactly 1..9."""
    p, a = np.asarray(puzzle).reshape(-1), np.asarray(answer).reshape(-1)
    if p.shape != (N_CELLS,) or a.shape != (N_CELLS,):
        return False
    if np.any((p != 0) & (p != a)):
        return False
    # Sorting each unit and comparing to 1..9 also rejects blanks and out-of-range values.
    return bool((np.sort(a[UNIT_INDEX], axis=1) == np.arange(1, 10)).all())


def conflicting_cells(puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """(81,) bool: cells of `answer` that are blank or out of range, change a given of
    `puzzle`, or repeat a digit of one of their units."""
    p, a = np.asarray(puzzle).reshape(-1), np.asarray(answer).reshape(-1).astype(np.int64)
    bad = (a < 1) | (a > 9) | ((p != 0) & (p != a))
    digits = np.where(bad, 0, a)[UNIT_INDEX]  # (27, 9) digit of each unit member, 0 = none
    counts = np.zeros((len(UNIT_INDEX), 10), dtype=np.int64)
    np.add.at(counts, (np.arange(len(UNIT_INDEX))[:, None], digits), 1)
    repeated = np.take_along_axis(counts, digits, axis=1) > 1  # (27, 9)
    repeated &= digits != 0
    clash = np.zeros(N_CELLS, dtype=bool)
    np.logical_or.at(clash, UNIT_INDEX[repeated], True)
    return bad | clash


def violations(answer: np.ndarray, puzzle: np.ndarray | None = None) -> list[str]:
    """Human-readable reasons why `answer` is not a solution (of `puzzle`, when given); empty
    when it is one."""
    a = np.asarray(answer).reshape(-1)
    problems: list[str] = []
    blanks, invalid = int(np.count_nonzero(a == 0)), int(np.count_nonzero((a < 0) | (a > 9)))
    if blanks:
        problems.append(f"{blanks} cell{'s are' if blanks > 1 else ' is'} blank")
    if invalid:
        problems.append(f"{invalid} cell{'s are' if invalid > 1 else ' is'} not a digit 0-9")
    if puzzle is not None:
        p = np.asarray(puzzle).reshape(-1)
        for pos in np.flatnonzero((p != 0) & (p != a)).tolist():
            problems.append(f"{cell_name(pos)} changes the given {p[pos]} to {a[pos]}")
    problems.extend(message for message, _ in _duplicates(a))
    return problems


# ------------------------------------------------------------------------------------ text
def format_cells(cells: np.ndarray) -> str:
    """The 81-character line, '.' for blanks."""
    return "".join(str(v) if v else "." for v in np.asarray(cells).reshape(-1).tolist())


def render_cells(cells: np.ndarray) -> str:
    """A 9x9 text grid with box separators, e.g. `5 3 . | . 7 . | . . .`."""
    line = format_cells(cells)
    rows = []
    for r in range(SIZE):
        row = line[9 * r : 9 * r + 9]
        rows.append(" | ".join(" ".join(row[3 * s : 3 * s + 3]) for s in range(3)))
        if r in (2, 5):
            rows.append("------+-------+------")
    return "\n".join(rows)


# ------------------------------------------------------------------------------- symmetries
def _positions(transpose: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Source positions (..., 81) so that out[9r + c] = src[rows[r], cols[c]], or with rows and
    columns swapped when transposing; broadcasts over leading batch dimensions."""
    straight = rows[..., :, None] * SIZE + cols[..., None, :]
    swapped = cols[..., None, :] * SIZE + rows[..., :, None]
    chosen = np.where(np.asarray(transpose)[..., None, None], swapped, straight)
    return chosen.reshape(*chosen.shape[:-2], N_CELLS)


def _is_band_preserving(order: np.ndarray) -> bool:
    """True for a permutation of 0..8 that moves whole bands and lines inside them."""
    return tuple(order.tolist()) in _LINE_ORDER_SET


class SudokuSymmetry(Symmetry):
    """One element of the Sudoku group: out[9r + c] = digit_map[src'[row_order[r], col_order[c]]]
    where src' is the source grid, transposed first when `transpose` is set.

    Precomputed as a position gather (81,) and a digit map (10,) with 0 fixed, so `apply` and
    `invert` cost two numpy gathers on any (..., 81) array.
    """

    def __init__(
        self,
        digit_map: Sequence[int] | np.ndarray,
        transpose: bool,
        row_order: Sequence[int] | np.ndarray,
        col_order: Sequence[int] | np.ndarray,
    ) -> None:
        self.digit_map = np.asarray(digit_map, dtype=np.int8)
        if sorted(self.digit_map.tolist()) != list(range(10)) or self.digit_map[0] != 0:
            raise ValueError("digit_map must be a permutation of 0..9 that keeps blanks (0)")
        self.transpose = bool(transpose)
        self.row_order = np.asarray(row_order, dtype=np.intp)
        self.col_order = np.asarray(col_order, dtype=np.intp)
        if not (_is_band_preserving(self.row_order) and _is_band_preserving(self.col_order)):
            raise ValueError("row and column orders must keep bands and stacks together")
        self.positions = _positions(np.asarray(self.transpose), self.row_order, self.col_order)
        self.inverse_positions = np.argsort(self.positions)
        self.inverse_digit_map = np.argsort(self.digit_map).astype(np.int8)

    @classmethod
    def from_parts(
        cls,
        digits: Sequence[int],
        transpose: bool,
        bands: Sequence[int],
        rows_in_band: Sequence[Sequence[int]],
        stacks: Sequence[int],
        cols_in_stack: Sequence[Sequence[int]],
    ) -> SudokuSymmetry:
        """Build from the group's factors: `digits` is the image of 1..9; output band k is
        source band bands[k], its line j is line rows_in_band[k][j] of that band (likewise for
        stacks and columns)."""
        rows = [3 * bands[k] + rows_in_band[k][j] for k in range(3) for j in range(3)]
        cols = [3 * stacks[k] + cols_in_stack[k][j] for k in range(3) for j in range(3)]
        return cls([0, *digits], transpose, rows, cols)

    @classmethod
    def random(cls, rng: np.random.Generator) -> SudokuSymmetry:
        """A uniform draw: each factor is drawn uniformly and the factorisation is unique."""
        rows, cols = LINE_ORDERS[rng.integers(0, len(LINE_ORDERS), size=2)]
        return cls([0, *(rng.permutation(9) + 1)], bool(rng.integers(0, 2)), rows, cols)

    def apply(self, cells: np.ndarray) -> np.ndarray:
        x = np.asarray(cells)
        return self.digit_map[x[..., self.positions]].astype(x.dtype, copy=False)

    def invert(self, cells: np.ndarray) -> np.ndarray:
        x = np.asarray(cells)
        return self.inverse_digit_map[x[..., self.inverse_positions]].astype(x.dtype, copy=False)

    def __repr__(self) -> str:
        return (
            f"SudokuSymmetry(digit_map={self.digit_map.tolist()}, transpose={self.transpose}, "
            f"row_order={self.row_order.tolist()}, col_order={self.col_order.tolist()})"
        )


def augment_token_batch(
    inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One uniform random symmetry per row of (B, 81) int64 token arrays, applied identically to
    inputs and labels; PAD (0) and blank (1) tokens map to themselves."""
    batch = inputs.shape[0]
    rows = LINE_ORDERS[rng.integers(0, len(LINE_ORDERS), size=batch)]
    cols = LINE_ORDERS[rng.integers(0, len(LINE_ORDERS), size=batch)]
    positions = _positions(rng.integers(0, 2, size=batch).astype(bool), rows, cols)
    token_map = np.empty((batch, 11), dtype=np.int64)
    token_map[:, 0], token_map[:, 1] = 0, 1
    # argsort of uniform noise is a uniform permutation per row, all rows in one call.
    token_map[:, 2:] = np.argsort(rng.random((batch, 9)), axis=1) + 2

    def transform(tokens: np.ndarray) -> np.ndarray:
        moved = np.take_along_axis(tokens, positions, axis=1)
        return np.take_along_axis(token_map, moved, axis=1)

    return transform(inputs), transform(labels)


# ------------------------------------------------------------------------------------- task
class SudokuTask(Task):
    """Classic 9x9 Sudoku."""

    name = "sudoku"
    seq_len = N_CELLS
    vocab_size = 11
    grid_shape = (SIZE, SIZE)
    puzzle_format = ("81 characters row by row, '.' for a blank, e.g. ..3.2.6..9..3.5..1..18.64"
                     "....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3..")

    # Generation and examples load on first use: the solver and generator are not needed to
    # parse or verify, and the generator module imports this one.
    def dataset_tools(self) -> DatasetTools:
        from trm_core.tasks.sudoku_generate import TOOLS

        return TOOLS

    def examples(self) -> list[dict[str, Any]]:
        from trm_core.tasks.sudoku_examples import EXAMPLES

        return EXAMPLES

    generates_examples = True

    def generate_example(self, difficulty: str, seed: int | None) -> dict[str, Any]:
        from trm_core.tasks.sudoku_examples import generate_example

        return generate_example(difficulty, seed)

    def parse(self, raw: Any) -> np.ndarray:
        return parse_puzzle(raw)

    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells).astype(np.int64) + 1

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return np.where((t >= 2) & (t <= 10), t - 1, 0).astype(np.int8)

    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return is_solution(puzzle, answer)

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        return np.where(puzzle != 0, puzzle, answer).astype(answer.dtype)

    def portable_rules(self) -> dict[str, Any]:
        return {"blank": 0, "blank_char": ".", "keep_givens": "non-blank",
                "verify": {"kind": "units", "units": UNIT_INDEX.tolist(),
                           "unit_names": [f"{kind} {number}" for kind, number, _ in UNITS],
                           "values": list(range(1, SIZE + 1))}}

    def conflicts(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        return conflicting_cells(puzzle, answer)

    def format(self, cells: np.ndarray) -> str:
        return format_cells(cells)

    def render(self, cells: np.ndarray) -> str:
        return render_cells(cells)

    def random_symmetry(self, rng: np.random.Generator) -> SudokuSymmetry:
        return SudokuSymmetry.random(rng)

    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, SudokuSymmetry]:
        # Imported here: the search module builds on this one's symmetry class.
        from trm_core.tasks.sudoku_canonical import canonical_form

        return canonical_form(cells)

    def augment_tokens(
        self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return augment_token_batch(inputs, labels, rng)
