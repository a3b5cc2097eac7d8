"""The task interface: everything the model, trainer, engine and service need to know about a
grid puzzle, and nothing about how they work.

A task works in two spaces:
- cells: the puzzle's natural values as a flat int8 array of length `seq_len` (Sudoku: 0 = blank,
  1..9 = digits), what users send and receive;
- tokens: the model's vocabulary as a flat int64 array of length `seq_len` (Sudoku: value + 1).

Adding a task is adding one module or package that subclasses `Task` and one line,
`register(<Task>())` in `trm_core/tasks/__init__.py` (or at runtime). The hooks below carry
everything generic code asks of a task; defaults cover what a simple puzzle needs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:  # trm_core.data imports this module
    from pathlib import Path

    from trm_core.data import TrainingData
    from trm_core.tasks.generation import DatasetTools


@dataclass
class PuzzleError(ValueError):
    """A puzzle a user sent is malformed; `message` names the problem, `loc` where it is."""

    message: str
    loc: tuple[str | int, ...] = ("puzzle",)
    cells: list[tuple[int, int]] = field(default_factory=list)

    def __str__(self) -> str:
        return self.message


def dihedral(grid: np.ndarray, dihedral_id: int) -> np.ndarray:
    """Dihedral transform `dihedral_id` of a 2-D array, as every grid task numbers them (the
    ARC builds' numbering): 0 identity, 1 rot90, 2 rot180, 3 rot270 (numpy rot90,
    counter-clockwise), 4 left-right flip, 5 up-down flip, 6 transpose, 7 anti-transpose."""
    if dihedral_id == 0:
        return grid
    if 1 <= dihedral_id <= 3:
        return np.rot90(grid, k=dihedral_id)
    if dihedral_id == 4:
        return np.fliplr(grid)
    if dihedral_id == 5:
        return np.flipud(grid)
    if dihedral_id == 6:
        return grid.T
    if dihedral_id == 7:
        return np.fliplr(np.rot90(grid))
    raise ValueError(f"dihedral id must be 0-7, got {dihedral_id}")


class Symmetry(ABC):
    """An invertible transform of a task's cells; `apply` then `invert` is the identity."""

    @abstractmethod
    def apply(self, cells: np.ndarray) -> np.ndarray:
        """Transform cells, shape (..., seq_len) in the cell space."""

    @abstractmethod
    def invert(self, cells: np.ndarray) -> np.ndarray:
        """Undo `apply`, shape (..., seq_len) in the cell space."""


class Task(ABC):
    """A grid puzzle family: parsing, encoding, rules, symmetries, rendering."""

    name: str
    seq_len: int
    vocab_size: int
    grid_shape: tuple[int, int]
    # True when `verify` decides correctness from the puzzle alone (Sudoku, mazes); a task whose
    # right answer is unknown at serving time (ARC) sets False and auto halting trusts the head.
    can_verify: bool = True
    # What a solve tool's `puzzle` argument holds, for agents (app/agents.py, the MCP server);
    # empty: "the <name> puzzle as a compact string".
    puzzle_format: str = ""
    # What a tool's answer holds beyond the common fields, appended to the tool's description.
    answer_note: str = ""
    # True when `generate_example` makes fresh puzzles on request.
    generates_examples: bool = False

    @abstractmethod
    def parse(self, raw: Any) -> np.ndarray:
        """A user's puzzle (string or nested list) as cells (seq_len,) int8; raises PuzzleError."""

    @abstractmethod
    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        """Cells (..., seq_len) to model tokens (..., seq_len) int64."""

    @abstractmethod
    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        """Predicted tokens (..., seq_len) back to cells; tokens with no cell meaning become 0."""

    @abstractmethod
    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        """True when `answer` (cells) is a correct, complete solution of `puzzle` (cells)."""

    @abstractmethod
    def format(self, cells: np.ndarray) -> str:
        """Cells as the task's compact one-line string (Sudoku: 81 characters, '.' for blank)."""

    @abstractmethod
    def render(self, cells: np.ndarray) -> str:
        """Cells as multi-line text a person or an LLM can read."""

    def format_puzzle(self, cells: np.ndarray) -> str:
        """A puzzle's cells as the compact string `parse` reads; `format` unless the task's
        puzzles and answers are laid out differently (a data-defined task's grid -> label)."""
        return self.format(cells)

    def to_grid(self, cells: np.ndarray) -> list[list[int]]:
        """Cells as a row-major nested list."""
        return np.asarray(cells).reshape(self.grid_shape).tolist()

    def from_grid(self, grid: list[list[int]]) -> np.ndarray:
        """The inverse of `to_grid`, without `parse`'s rule checks: for answers the model gave
        (which may break the rules), never for a user's puzzle."""
        return np.asarray(grid, dtype=np.int8).reshape(self.seq_len)

    def parse_solution(self, raw: Any) -> np.ndarray:
        """A dataset's solution as cells; `parse` unless the task's puzzles and answers differ
        in what they may hold (a maze answer draws its path, a maze to solve may not)."""
        return self.parse(raw)

    def scored_cells(self, puzzles: np.ndarray) -> np.ndarray:
        """Which cells (..., seq_len) bool cell accuracy scores: the ones the answer decides.
        Blanks (0) unless the task says otherwise (mazes: every open cell)."""
        return np.asarray(puzzles) == 0

    def bucket_of(self, solution: np.ndarray) -> str:
        """The evaluation bucket of a solution when the data names none; "all" unless the
        task can tell difficulty from the answer (mazes: path length)."""
        return "all"

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        """The model's answer with the puzzle's givens restored: an answer never changes what
        the user gave (Sudoku: its digits). Identity for tasks whose answers may."""
        return answer

    def portable_rules(self) -> dict[str, Any] | None:
        """`keep_givens`, `verify` and `format` written down as data, for runners outside Python
        (a portable bundle's manifest, training/bundle.py); None when they cannot be, and a
        bundle refuses the task. Keys: "blank" (the cell value of a blank) and "blank_char"
        (how `format` writes it; other cells as their decimal digit), "keep_givens"
        ("non-blank": a non-blank puzzle cell keeps its value in every answer, or "none"),
        "verify" ({"kind": "units", "units": [[position, ...], ...], "unit_names": [...],
        "values": [...]}: the answer keeps the givens and every unit holds each value exactly
        once; a puzzle whose givens repeat a value in a unit is refused)."""
        return None

    def conflicts(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray | None:
        """Cells (seq_len,) bool of `answer` that break a rule of `puzzle` (blank, changed
        given, clash); None when the task cannot tell cell by cell. Search keeps only the
        model's cells outside this mask, and results list them."""
        return None

    def extra_result(self, puzzle: np.ndarray, answer: np.ndarray) -> dict[str, Any]:
        """Task-specific fields of a solve result, JSON-ready (mazes: the drawn path)."""
        return {}

    def extra_step(self, answer: np.ndarray) -> dict[str, Any]:
        """Task-specific fields of a step event; cheap, as it runs every step."""
        return {}

    def open_training_data(self, path: str, split: Literal["train", "eval"]) -> TrainingData:
        """The training (or evaluation) data a run config names by `path`: a puzzle CSV
        (`trm_core.data.load_puzzle_csv`) unless the task has data of its own kind."""
        from trm_core.data import load_puzzle_csv  # here: trm_core.data imports this module

        return load_puzzle_csv(path, self)

    # ------------------------------------------------------------- data, examples, checkpoints
    def dataset_tools(self) -> DatasetTools | None:
        """The generator and CSV tools `trm data` builds split files with; None when the
        task has no generator (ARC: `trm data-arc` builds from the published tasks)."""
        return None

    def examples(self) -> list[dict[str, Any]]:
        """Puzzles to try (the viewer, `GET /v1/examples/{task}`), each at least
        {"name", "puzzle", "solution"}; [] when the task offers none."""
        return []

    def generate_example(self, difficulty: str, seed: int | None) -> dict[str, Any]:
        """One fresh puzzle of `difficulty` ("easy", "medium" or "hard") with its solution,
        {"difficulty", "puzzle", "solution", "seed", ...}, within a bounded search (it runs
        in a pool process); RuntimeError when none was found in time."""
        raise RuntimeError(f"task {self.name!r} cannot generate examples")

    def card_fields(self) -> dict[str, Any]:
        """What a checkpoint card of this task carries beyond the trainer's fields, so the
        checkpoint alone brings the task back (a data-defined task: its spec)."""
        return {}

    def import_identifiers(self, source: Path, data: Path | None, stem: Path,
                           rows: int) -> dict[str, Any]:
        """Write an imported official checkpoint's puzzle-identifier table (the
        identifiers.json of its dataset build, read with the task's own `data`) as the sidecar
        of `stem`; returns what was written. ValueError for tasks without identifiers."""
        raise ValueError(f"task {self.name!r} has no puzzle identifiers to import")

    def sidecars(self, stem: Path) -> list[Path]:
        """Files beside checkpoint `stem` that belong to it (ARC: the identifier table),
        whether or not they exist; shipping a checkpoint copies those that do."""
        return []

    def load_model_extras(self, stem: Path, puzzle_rows: int) -> Any:
        """What the service keeps with a loaded model of this task beyond its weights (ARC:
        the identifier table, checked against the `puzzle_rows` embedding rows); None when
        nothing. ValueError when a sidecar contradicts the checkpoint."""
        return None

    def describe_model_extras(self, extras: Any) -> dict[str, Any]:
        """Fields `/v1/models` adds for a model whose `load_model_extras` gave `extras`."""
        return {}

    @abstractmethod
    def random_symmetry(self, rng: np.random.Generator) -> Symmetry:
        """A uniformly drawn element of the task's symmetry group."""

    @abstractmethod
    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, Symmetry]:
        """A key equal for exactly the puzzles equivalent under symmetry, and the symmetry that
        maps `cells` onto the canonical representative."""

    @abstractmethod
    def augment_tokens(
        self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training augmentation of a token batch (B, seq_len): one random symmetry per row,
        applied identically to input and label."""
