"""The exact canonical form of a Sudoku under its symmetry group, for splitting data sets that no
symmetry can connect and for caching answers across symmetric copies of a puzzle.

Part of the Sudoku task (`trm_core.tasks.sudoku`); kept apart because the search is its own
concern and sizeable.
"""

from __future__ import annotations

import numpy as np

from trm_core.tasks.sudoku import LINE_ORDERS, SIZE, SudokuSymmetry

_POW10 = 10 ** np.arange(SIZE - 1, -1, -1, dtype=np.int64)  # a row of digits as one integer


def canonical_form(cells: np.ndarray) -> tuple[bytes, SudokuSymmetry]:
    """The canonical key of `cells` under the full group and a symmetry mapping onto it.

    The canonical representative is the lexicographically smallest 81-cell sequence over all
    2 * 6**8 geometric transforms, each followed by relabelling digits 1, 2, 3, ... in order of
    first appearance (blanks stay 0 and so sort first). Relabelling removes the digit factor, so
    the key (the representative's 81 bytes) is shared by exactly the equivalent puzzles, and
    `sym.apply(cells)` is the representative.

    `cells` must not repeat a digit within a row or column (every parsed puzzle and every
    solution qualifies); raises ValueError otherwise.
    """
    grid = np.asarray(cells, dtype=np.int8).reshape(SIZE, SIZE)
    grids = np.stack([grid, grid.T])
    ordered = np.sort(grids, axis=2)
    if np.any((ordered[:, :, 1:] == ordered[:, :, :-1]) & (ordered[:, :, 1:] != 0)):
        raise ValueError("canonical_form needs a grid with no digit repeated in a row or column")
    search = _CanonicalSearch(grids)
    representative = search.run()
    return representative.tobytes(), search.best_symmetry()


class _CanonicalSearch:
    """Builds the representative row by row over a beam of partial transforms.

    A partial transform is a transpose flag, a full column order and the source rows chosen for
    the output rows so far; the beam holds those whose relabelled prefix is the smallest. That is
    exact: the smallest full sequence has the smallest prefix. States are parallel arrays.
    """

    # Merge states with identical futures once the beam grows past this many; a pure speed-up
    # that matters for nearly empty grids, where millions of transforms tie.
    DEDUP_ABOVE = 64
    _BEAM_ARRAYS = ("transpose", "col", "rows", "used", "labels", "next_label")

    def __init__(self, grids: np.ndarray) -> None:
        self.grids = grids  # (2, 9, 9): the grid and its transpose
        # Row r of grids[t] in column order o is ordered_rows[(9 t + r) * 1296 + o].
        self.ordered_rows = grids[:, :, LINE_ORDERS].reshape(-1, SIZE)
        # agree[t, m, j, j']: columns j and j' of grids[t] are equal on the rows in bit set m.
        differ = (grids[:, :, :, None] != grids[:, :, None, :]).astype(np.int64)
        column_diff = np.einsum("trjk,r->tjk", differ, 1 << np.arange(SIZE))
        agree = (column_diff[:, None] & np.arange(1 << SIZE)[None, :, None, None]) == 0
        # The first column equal to j (on those rows) stands for j's class.
        self.column_class = agree.argmax(axis=3)  # (2, 512, 9)
        self.mergeable = (self.column_class != np.arange(SIZE)).any(axis=2)  # (2, 512)

    def run(self) -> np.ndarray:
        """Choose output rows one at a time; return the representative (81,) int8."""
        out = np.empty((SIZE, SIZE), dtype=np.int8)
        out[0] = self._start()
        for k in range(1, SIZE):
            if len(self.col) > self.DEDUP_ABOVE:
                self._dedup()
            state, row = np.nonzero(_NEXT_ROWS[self.used])  # (state, source row) pairs
            values = self._row_values(self.transpose[state], row, self.col[state])
            known = np.take(self.labels, state[:, None] * 10 + values)
            fresh = known < 0
            # Unseen digits of a row are distinct, so they take consecutive new labels.
            new = self.next_label[state, None] + _running_count(fresh) - 1
            relabelled = np.where(fresh, new, known)
            codes = relabelled.astype(np.int64) @ _POW10
            keep = np.flatnonzero(codes == codes.min())
            out[k] = relabelled[keep[0]]
            self._advance(state[keep], row[keep], values[keep], relabelled[keep])
        return out.reshape(-1)

    def _start(self) -> np.ndarray:
        """Create the beam after output row 0 and return that row.

        With no digit repeated in a row, relabelling turns the filled cells of the first row into
        1, 2, 3, ... so only the pattern of filled cells matters, and blanks first is smallest.
        """
        weights = (1 << (SIZE - 1 - np.argsort(LINE_ORDERS, axis=1))).T.astype(np.float64)
        patterns = (self.grids != 0).astype(np.float64) @ weights  # (2, 9, 1296): filled bits
        # Column orders that pick equal columns give the same transform, so keep one per class.
        classes = self.column_class[:, -1][:, LINE_ORDERS].astype(np.float64)  # (2, 1296, 9)
        codes = classes @ (9.0 ** np.arange(SIZE))
        for t in range(2):
            repeated = np.ones(len(LINE_ORDERS), dtype=bool)
            repeated[np.unique(codes[t], return_index=True)[1]] = False
            patterns[t][:, repeated] = np.inf
        self.transpose, row, self.col = np.nonzero(patterns == patterns.min())
        n = len(row)
        self.rows = np.empty((n, 0), dtype=np.intp)  # source rows chosen so far
        self.used = np.zeros(n, dtype=np.int64)  # bit r set once source row r is placed
        self.labels = np.full((n, 10), -1, dtype=np.int8)  # source digit -> label, -1 unseen
        self.labels[:, 0] = 0
        self.next_label = np.ones(n, dtype=np.int8)
        values = self._row_values(self.transpose, row, self.col)
        first = _running_count(values != 0) * (values != 0)
        self._advance(np.arange(n), row, values, first)
        return first[0]

    def _row_values(self, transpose: np.ndarray, row: np.ndarray, col: np.ndarray) -> np.ndarray:
        """Digits (P, 9) of source row `row` of grids[transpose], in column order `col`."""
        return self.ordered_rows[(transpose * SIZE + row) * len(LINE_ORDERS) + col]

    def _advance(
        self, state: np.ndarray, row: np.ndarray, values: np.ndarray, relabelled: np.ndarray
    ) -> None:
        """Make the beam the given states extended by `row`, whose digits `values` got the labels
        `relabelled`."""
        self._select(state)
        index = np.arange(len(state))
        self.rows = np.concatenate([self.rows, row[:, None]], axis=1)
        self.used |= 1 << row
        # Writing every cell back is harmless: seen digits and blanks rewrite their own labels.
        self.labels[index[:, None], values] = relabelled
        self.next_label = np.maximum(self.next_label, relabelled.max(axis=1) + 1)

    def _select(self, state: np.ndarray) -> None:
        """Make the beam the given states (indices, repeats allowed), as copies."""
        for name in self._BEAM_ARRAYS:
            setattr(self, name, getattr(self, name)[state])

    def _dedup(self) -> None:
        """Keep one state per future. Two states continue identically when they share the
        transpose flag, the used rows and the digit labels, and their column orders pick columns
        that are equal on every unused row."""
        unused = (1 << SIZE) - 1 - self.used
        if not self.mergeable[self.transpose, unused].any():
            return  # every column order gives a different future
        seen = (self.labels[:, 1:].astype(np.int64) + 1) << (4 * np.arange(SIZE))
        _, group = np.unique(
            self.transpose + (self.used << 1) + (seen.sum(axis=1) << 10), return_inverse=True
        )
        classes = self.column_class[self.transpose, unused]  # (S, 9)
        picked = np.take_along_axis(classes, LINE_ORDERS[self.col], axis=1)
        _, first = np.unique(group * 9**SIZE + picked @ (9 ** np.arange(SIZE)), return_index=True)
        first.sort()  # keep the beam's order so the chosen symmetry is reproducible
        self._select(first)

    def best_symmetry(self) -> SudokuSymmetry:
        """The symmetry of the first surviving state; digits absent from the puzzle take the
        remaining labels in increasing order so the digit map is a full permutation."""
        labels = self.labels[0].astype(np.int64)
        unseen = np.flatnonzero(labels < 0)
        labels[unseen] = np.arange(int(self.next_label[0]), int(self.next_label[0]) + len(unseen))
        return SudokuSymmetry(
            labels, bool(self.transpose[0]), self.rows[0], LINE_ORDERS[self.col[0]]
        )


def _next_rows_table() -> np.ndarray:
    """(512, 9) bool: given the bit set of source rows already placed, the rows that may come
    next. A new band starts after every third row; otherwise the current band continues."""
    placed = (np.arange(1 << SIZE)[:, None] >> np.arange(SIZE)) & 1 == 1
    band_touched = np.repeat(placed.reshape(-1, 3, 3).any(axis=2), 3, axis=1)
    starts_band = (placed.sum(axis=1) % 3 == 0)[:, None]
    return ~placed & np.where(starts_band, ~band_touched, band_touched)


_NEXT_ROWS = _next_rows_table()


def _running_count(mask: np.ndarray) -> np.ndarray:
    """Cumulative count of True along the rows of a (P, 9) mask, as int8; a column loop beats
    np.cumsum, whose per-row inner loop is slow for rows this short."""
    count = mask.astype(np.int8)
    for j in range(1, count.shape[1]):
        count[:, j] += count[:, j - 1]
    return count
