"""A toy task as a package outside trm_core: 3x3 Latin squares (each row and column holds 1, 2
and 3 once), with the value relabellings as its symmetries. It is what adding a task takes: this
package, and one `register(LatinTask())`, done at runtime by the test that uses it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trm_core.tasks.base import PuzzleError, Symmetry, Task
from trm_core.tasks.generation import DatasetTools, read_rows, write_rows

SIZE = 3
N_CELLS = SIZE * SIZE
BASE = np.array([[1, 2, 3], [2, 3, 1], [3, 1, 2]], dtype=np.int8)
BLANKS = {"easy": 3, "medium": 4, "hard": 5}
PERMUTATIONS = [np.array((0, *p), dtype=np.int8) for p in itertools.permutations((1, 2, 3))]


class Relabel(Symmetry):
    """Values relabelled by `perm` (perm[0] = 0: blanks stay blank)."""

    def __init__(self, perm: np.ndarray) -> None:
        self.perm = perm
        self.inverse = np.argsort(perm).astype(np.int8)

    def apply(self, cells: np.ndarray) -> np.ndarray:
        return self.perm[np.asarray(cells)]

    def invert(self, cells: np.ndarray) -> np.ndarray:
        return self.inverse[np.asarray(cells)]


def parse(raw: Any) -> np.ndarray:
    text = str(raw).strip()
    if len(text) != N_CELLS or any(ch not in ".123" for ch in text):
        raise PuzzleError(f"a Latin square is {N_CELLS} characters of '.', 1, 2 or 3")
    return np.array([0 if ch == "." else int(ch) for ch in text], dtype=np.int8)


def format_cells(cells: np.ndarray) -> str:
    return "".join("." if v == 0 else str(int(v)) for v in np.asarray(cells).reshape(-1))


def _lines_hold_each_value(grid: np.ndarray) -> bool:
    return all(sorted(line.tolist()) == [1, 2, 3] for line in (*grid, *grid.T))


def generate(n: int, difficulty: str, seed: int, workers: int | None = None
             ) -> list[tuple[str, str]]:
    """`n` (puzzle, solution) rows: a random square with `BLANKS[difficulty]` cells blanked."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        square = BASE[rng.permutation(SIZE)][:, rng.permutation(SIZE)]
        square = PERMUTATIONS[rng.integers(len(PERMUTATIONS))][square]
        puzzle = square.reshape(-1).copy()
        puzzle[rng.choice(N_CELLS, BLANKS[difficulty], replace=False)] = 0
        rows.append((format_cells(puzzle), format_cells(square)))
    return rows


class Record(NamedTuple):
    puzzle: str
    solution: str


def write_csv(path: str | Path, rows: Iterable[Sequence[Any]]) -> int:
    return write_rows(path, ("puzzle", "solution"), rows)


def read_csv(path: str | Path) -> list[Record]:
    return [Record(r["puzzle"], r["solution"]) for r in read_rows(path, ("puzzle", "solution"))]


class LatinTask(Task):
    """3x3 Latin squares; tokens are cells + 1 (0 is never used, 1 is a blank)."""

    name = "latin"
    seq_len = N_CELLS
    vocab_size = 5
    grid_shape = (SIZE, SIZE)
    puzzle_format = "9 characters row by row, '.' for a blank, e.g. 1...3...2"
    generates_examples = True

    def parse(self, raw: Any) -> np.ndarray:
        return parse(raw)

    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells).astype(np.int64) + 1

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return np.where((t >= 2) & (t <= 4), t - 1, 0).astype(np.int8)

    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        puzzle, answer = np.asarray(puzzle), np.asarray(answer)
        kept = bool(((puzzle == 0) | (puzzle == answer)).all())
        return kept and _lines_hold_each_value(answer.reshape(SIZE, SIZE))

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        return np.where(puzzle != 0, puzzle, answer).astype(answer.dtype)

    def format(self, cells: np.ndarray) -> str:
        return format_cells(cells)

    def render(self, cells: np.ndarray) -> str:
        text = format_cells(cells)
        return "\n".join(text[i:i + SIZE] for i in range(0, N_CELLS, SIZE))

    def random_symmetry(self, rng: np.random.Generator) -> Symmetry:
        return Relabel(PERMUTATIONS[rng.integers(len(PERMUTATIONS))])

    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, Symmetry]:
        images = [(Relabel(p).apply(cells).astype(np.int8).tobytes(), Relabel(p))
                  for p in PERMUTATIONS]
        return min(images, key=lambda image: image[0])

    def augment_tokens(self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
                       ) -> tuple[np.ndarray, np.ndarray]:
        drawn = rng.integers(len(PERMUTATIONS), size=len(inputs))
        perms = np.stack([PERMUTATIONS[i] for i in drawn])
        token_perms = np.concatenate([np.zeros((len(inputs), 1), np.int64), perms + 1], axis=1)
        rows = np.arange(len(inputs))[:, None]
        return token_perms[rows, inputs], token_perms[rows, labels]

    def dataset_tools(self) -> DatasetTools:
        return DatasetTools(generate, write_csv, read_csv, "value relabelling")

    def examples(self) -> list[dict[str, Any]]:
        return [{"name": "one blank row", "puzzle": "123231...", "solution": "123231312"}]

    def generate_example(self, difficulty: str, seed: int | None) -> dict[str, Any]:
        puzzle, solution = generate(1, difficulty, seed or 0)[0]
        return {"difficulty": difficulty, "puzzle": puzzle, "solution": solution, "seed": seed}
