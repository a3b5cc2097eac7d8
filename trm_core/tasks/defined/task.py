"""A task defined by a spec and data, through the same `Task` interface the code tasks use.

Cells: a flat (seq_len,) int8 array, seq_len the larger of the input's and output's cells; each
side lies from position 0 in its layout (`spec.Layout`), code 0 meaning "nothing here" (past a
shorter sequence, past the smaller side, every position but 0 of a label). Tokens are cells + 1,
so every position is trained, "nothing here" included: the model learns where a sequence ends.

What a user writes: a grid as rows (a list of lists or of lines, or text of lines: symbols side
by side when every symbol is one character, else separated by spaces), or as one line of rows x
columns symbols; a sequence as a list, or a line; a label as the label. Integers in the
alphabet match JSON numbers and their decimal text.

A data-defined task has no rules check unless its spec declares one (`[check]`, check.py).
Without one, `verify` is False and `can_verify` is False: answers say unverified, auto halting
trusts the halting head and search is off. With one, answers verify as a Sudoku's do.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from trm_core.tasks.base import PuzzleError, Symmetry, Task, dihedral
from trm_core.tasks.defined.check import UnitCheck
from trm_core.tasks.defined.spec import Layout, Symbol, TaskSpec
from trm_core.tasks.defined.text import listing, split_value, written


@functools.cache
def _grid_source(layout: Layout, seq_len: int, dihedral_id: int) -> np.ndarray:
    """source[i]: the position cell i of a grid transformed by `dihedral_id` reads from,
    (seq_len,); positions past the grid stay. Made once per layout and transform."""
    source = np.arange(seq_len)
    index = np.arange(layout.cells).reshape(layout.rows, layout.columns)
    source[:layout.cells] = dihedral(index, dihedral_id).reshape(-1)
    source.flags.writeable = False
    return source


def _source(layout: Layout, seq_len: int, dihedral_id: int, length: int | None) -> np.ndarray:
    """source[i]: the position transformed cell i reads from, (seq_len,); positions outside
    the layout stay. A reversed sequence (`length` set) reverses its first `length` cells."""
    if layout.kind == "grid":
        return _grid_source(layout, seq_len, dihedral_id)
    source = np.arange(seq_len)
    if layout.kind == "sequence" and length:
        source[:length] = source[:length][::-1]
    return source


class DataSymmetry(Symmetry):
    """A dihedral transform of the grids, a reversal of the sequences and a relabelling of the
    symbols, in one. `apply` works on the input's layout; `invert` undoes the transform on the
    output's (what the engine does with an answer); `apply_output` is the forward transform on
    the output's (what augmentation does with a label)."""

    def __init__(self, spec: TaskSpec, dihedral_id: int = 0, reverse: bool = False,
                 relabel: np.ndarray | None = None) -> None:
        self.spec, self.dihedral_id, self.reverse = spec, dihedral_id, reverse
        codes = len(spec.symbols) + 1
        self.relabel = np.arange(codes) if relabel is None else relabel  # code -> code
        self.unlabel = np.argsort(self.relabel)

    def _length(self, cells: np.ndarray) -> int | None:
        if not self.reverse:
            return None
        filled = np.flatnonzero(cells == 0)
        return int(filled[0]) if len(filled) else len(cells)

    def _move(self, cells: np.ndarray, layout: Layout, inverse: bool) -> np.ndarray:
        cells = np.asarray(cells)
        flat = cells.reshape(-1, cells.shape[-1])
        moved = np.empty_like(flat)
        for row, line in enumerate(flat):
            source = _source(layout, len(line), self.dihedral_id, self._length(line))
            if inverse:
                moved[row, source] = line
            else:
                moved[row] = line[source]
        return moved.reshape(cells.shape)

    def _forward(self, cells: np.ndarray, layout: Layout) -> np.ndarray:
        moved = self._move(cells, layout, inverse=False)
        return self.relabel[moved].astype(np.asarray(cells).dtype)

    def apply(self, cells: np.ndarray) -> np.ndarray:
        return self._forward(cells, self.spec.input)

    def apply_output(self, cells: np.ndarray) -> np.ndarray:
        return self._forward(cells, self.spec.output)

    def invert(self, cells: np.ndarray) -> np.ndarray:
        moved = self._move(np.asarray(self.unlabel[np.asarray(cells)], np.int8),
                           self.spec.output, inverse=True)
        return moved.astype(np.asarray(cells).dtype)


class DataTask(Task):
    """The task a `TaskSpec` declares."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec
        self.can_verify = spec.check is not None
        self._check = None if spec.check is None else UnitCheck(
            spec.check, spec.output.rows, spec.output.columns,
            [spec.code_of(v) for v in spec.check.values])
        self._kept = np.array([spec.code_of(s) for s in spec.keep], dtype=np.int64)
        self.name = spec.name
        self.seq_len = spec.seq_len
        self.vocab_size = len(spec.symbols) + 2  # PAD 0 (unused), "nothing here" 1, symbols
        side = spec.input if spec.input.kind == "grid" else spec.output
        self.grid_shape = ((side.rows, side.columns) if side.cells == self.seq_len
                           else (1, self.seq_len))
        self.puzzle_format = (f"{spec.input.describe()} over the symbols "
                              f"{listing(spec.alphabet)}" + written(spec, spec.input))
        self.answer_note = (f"The answer is {spec.output.describe()}"
                            + (f" from {listing(spec.labels)}" if spec.labels else "")
                            + "; `output` holds it in the task's symbols. "
                            + ("Answers are checked: every " + " and ".join(spec.check.units)
                               + f" holds each of {listing(spec.check.values)} once."
                               if spec.check else
                               "The task has no rule check, so every answer is unverified."))
        permute = "permute" in spec.symmetries
        self._free = np.array([spec.code_of(s) for s in spec.alphabet if s not in spec.fixed]
                              if permute else [], dtype=np.int64)
        turns = "dihedral" in spec.symmetries
        square = all(side.rows == side.columns for side in (spec.input, spec.output)
                     if side.kind == "grid")
        self._dihedrals = (tuple(range(8)) if square else (0, 2, 4, 5)) if turns else (0,)
        self._reversals = (False, True) if "reverse" in spec.symmetries else (False,)
        self._text = {str(s): s for s in spec.symbols}

    # ------------------------------------------------------------------ cells and text
    def parse(self, raw: Any) -> np.ndarray:
        return self._read(raw, self.spec.input, "puzzle")

    def parse_solution(self, raw: Any) -> np.ndarray:
        return self._read(raw, self.spec.output, "solution")

    def _read(self, raw: Any, layout: Layout, loc: str) -> np.ndarray:
        symbols = self.spec.labels if layout.kind == "label" else self.spec.alphabet
        offset = len(self.spec.alphabet) if layout.kind == "label" else 0
        values = split_value(raw, layout, self.spec.compact, loc)
        cells = np.zeros(self.seq_len, dtype=np.int8)
        for position, value in enumerate(values):
            symbol = self._symbol(value, symbols)
            if symbol is None:
                where = (f"row {position // layout.columns + 1}, column "
                         f"{position % layout.columns + 1}" if layout.kind == "grid"
                         else f"position {position + 1}")
                raise PuzzleError(f"unknown symbol {value!r} at {where}; the "
                                  f"{'labels' if layout.kind == 'label' else 'alphabet'} "
                                  f"{'are' if layout.kind == 'label' else 'is'} "
                                  f"{listing(symbols)}", (loc,),
                                  [divmod(position, layout.columns)])
            cells[position] = offset + symbols.index(symbol) + 1
        return cells

    def _symbol(self, value: Any, symbols: tuple[Symbol, ...]) -> Symbol | None:
        if isinstance(value, bool):
            return None
        if value in symbols:
            return value  # type: ignore[no-any-return]
        symbol = self._text.get(str(value))
        return symbol if symbol in symbols else None

    def values(self, cells: np.ndarray, layout: Layout) -> list[Symbol]:
        """The symbols of one side's cells in order, stopping at the first "nothing here"."""
        cells = np.asarray(cells)[:layout.cells]
        ended = np.flatnonzero(cells == 0)
        if layout.kind == "sequence" and len(ended):
            cells = cells[:ended[0]]
        return ["?" if c == 0 else self.spec.symbols[int(c) - 1] for c in cells.tolist()]

    def output(self, cells: np.ndarray) -> Any:
        """An answer in the task's own symbols: rows (grid), a list (sequence), the label."""
        layout = self.spec.output
        values = self.values(cells, layout)
        if layout.kind == "label":
            return values[0]
        if layout.kind == "grid":
            return [values[r * layout.columns:(r + 1) * layout.columns]
                    for r in range(layout.rows)]
        return values

    def format(self, cells: np.ndarray) -> str:
        return self._line(self.values(cells, self.spec.output))

    def format_puzzle(self, cells: np.ndarray) -> str:
        return self._line(self.values(cells, self.spec.input))

    def _line(self, values: Sequence[Symbol]) -> str:
        return ("" if self.spec.compact else " ").join(map(str, values))

    def render(self, cells: np.ndarray) -> str:
        layout = self.spec.output
        values = [str(v) for v in self.values(cells, layout)]
        if layout.kind != "grid":
            return self._line(values)
        width = max(len(v) for v in values)
        return "\n".join(" ".join(v.rjust(width) for v in
                                  values[r * layout.columns:(r + 1) * layout.columns])
                         for r in range(layout.rows))

    def to_grid(self, cells: np.ndarray) -> list[list[int]]:
        """The answer's cell codes as rows (symbol i of `spec.symbols` is i + 1)."""
        layout = self.spec.output
        codes = np.asarray(cells)[:layout.cells].astype(int)
        return codes.reshape(layout.rows, layout.columns).tolist()

    def from_grid(self, grid: list[list[int]]) -> np.ndarray:
        cells = np.zeros(self.seq_len, dtype=np.int8)
        flat = np.asarray(grid, dtype=np.int8).reshape(-1)
        cells[:len(flat)] = flat
        return cells

    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells).astype(np.int64) + 1

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return np.where((t >= 1) & (t < self.vocab_size), t - 1, 0).astype(np.int8)

    # ------------------------------------------------------------------------ rules
    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        if self._check is None:
            return False
        kept = np.isin(puzzle, self._kept)
        return bool(np.array_equal(np.asarray(answer)[kept], np.asarray(puzzle)[kept])
                    and self._check.holds(answer))

    def conflicts(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray | None:
        if self._check is None:
            return None
        kept = np.isin(puzzle, self._kept)
        return self._check.clashes(answer) | (kept & (np.asarray(answer) != puzzle))

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        if not self.spec.keep:
            return answer
        kept = np.isin(puzzle, self._kept)
        return np.where(kept, puzzle, answer).astype(np.asarray(answer).dtype)

    def scored_cells(self, puzzles: np.ndarray) -> np.ndarray:
        """The output's positions, less the cells a kept symbol fixes."""
        puzzles = np.asarray(puzzles)
        scored = np.zeros(puzzles.shape, dtype=bool)
        scored[..., :self.spec.output.cells] = True
        if self.spec.keep:
            scored &= ~np.isin(puzzles, self._kept)
        return scored

    def extra_result(self, puzzle: np.ndarray, answer: np.ndarray) -> dict[str, Any]:
        return {"output": self.output(answer)}

    def examples(self) -> list[dict[str, Any]]:
        return [dict(e) for e in self.spec.examples]

    def card_fields(self) -> dict[str, Any]:
        return {"task_spec": self.spec.to_dict()}

    def describe_model_extras(self, extras: Any) -> dict[str, Any]:
        """`/v1/models` shows the spec: the viewer draws the task's board from it."""
        spec = self.spec.to_dict()
        spec.pop("examples", None)
        return {"task_spec": spec}

    # --------------------------------------------------------------------- symmetries
    def random_symmetry(self, rng: np.random.Generator) -> DataSymmetry:
        relabel = None
        if len(self._free):
            relabel = np.arange(len(self.spec.symbols) + 1)
            relabel[self._free] = rng.permutation(self._free)
        return DataSymmetry(self.spec, int(rng.choice(self._dihedrals)),
                            bool(rng.choice(self._reversals)), relabel)

    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, DataSymmetry]:
        """The least transformed input over the declared symmetries, the free symbols
        relabelled in order of first appearance."""
        best: tuple[bytes, DataSymmetry] | None = None
        for turn in self._dihedrals:
            for reverse in self._reversals:
                moved = DataSymmetry(self.spec, turn, reverse).apply(cells)
                relabel = self._first_appearance(moved)
                symmetry = DataSymmetry(self.spec, turn, reverse, relabel)
                key = relabel[moved].astype(np.int8).tobytes()
                if best is None or key < best[0]:
                    best = (key, symmetry)
        assert best is not None
        return best

    def _first_appearance(self, cells: np.ndarray) -> np.ndarray:
        relabel = np.arange(len(self.spec.symbols) + 1)
        if not len(self._free):
            return relabel
        present = [int(c) for c in dict.fromkeys(np.asarray(cells).tolist()) if c in self._free]
        order = present + [int(c) for c in self._free if c not in present]
        relabel[order] = np.sort(self._free)
        return relabel

    def augment_tokens(self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
        """One random symmetry per row, the same for input and label."""
        if len(self._dihedrals) == 1 and len(self._reversals) == 1 and not len(self._free):
            return inputs, labels
        inputs, labels = inputs.copy(), labels.copy()
        for row in range(len(inputs)):
            symmetry = self.random_symmetry(rng)
            inputs[row] = self.to_tokens(symmetry.apply(self.from_tokens(inputs[row])))
            labels[row] = self.to_tokens(symmetry.apply_output(self.from_tokens(labels[row])))
        return inputs, labels
