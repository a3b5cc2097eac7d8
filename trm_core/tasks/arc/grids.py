"""ARC-AGI: grids on a 30x30 canvas, dihedral and colour symmetries, parsing and rendering.

Tokens: 0 PAD, 1 end-of-grid, 2..11 colours 0..9. A grid of h x w colours is placed on the
30x30 canvas at a top-left offset, with a row of end-of-grid tokens just under it and a column
just right of it where they fit; the corner cell between them and everything else is PAD.

Cells are the canvas tokens themselves, not the bare grid: the model's input for ARC is a placed
grid, so the canvas is the natural fixed-length (900,) representation and `to_tokens` /
`from_tokens` are identities. `parse` places a user's grid at (0, 0), as test inputs are placed
in training data, and `decode` crops a (0, 0)-placed canvas back to its grid.

`can_verify` is False: the right output of an ARC task is unknown at serving time, so `verify`
only checks that an answer is well formed (a non-empty rectangular grid of colours 0-9 within
30x30 at the top-left corner), never that it is correct.

Symmetries are the 8 dihedral transforms combined with a permutation of colours 1..9 (colour 0,
the black background, stays fixed), as in the official augmentation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from trm_core.tasks.base import PuzzleError, Symmetry, Task, dihedral

if TYPE_CHECKING:
    from pathlib import Path

    from trm_core.tasks.arc.identifiers import IdentifierMap
    from trm_core.tasks.arc.train_data import ArcSplit

SIZE = 30
N_CELLS = SIZE * SIZE
PAD, EOS, COLOUR0 = 0, 1, 2
N_COLOURS = 10
DIHEDRAL_INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)

Grid = np.ndarray  # (h, w) integer colours 0..9


# ------------------------------------------------------------------------------ dihedral maps
# --------------------------------------------------------------------------- canvas placement
def encode(grid: Any, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
    """A grid of colours placed on a (900,) uint8 canvas at (row_offset, col_offset)."""
    g = np.asarray(grid, dtype=np.uint8)
    h, w = g.shape
    if not (0 <= row_offset <= SIZE - h and 0 <= col_offset <= SIZE - w):
        raise ValueError(f"a {h}x{w} grid does not fit at ({row_offset}, {col_offset})")
    canvas = np.zeros((SIZE, SIZE), dtype=np.uint8)
    bottom, right = row_offset + h, col_offset + w
    canvas[row_offset:bottom, col_offset:right] = g + COLOUR0
    if bottom < SIZE:
        canvas[bottom, col_offset:right] = EOS
    if right < SIZE:
        canvas[row_offset:bottom, right] = EOS
    return canvas.reshape(N_CELLS)


def decode(canvas: np.ndarray) -> list[list[int]]:
    """The grid of a (0, 0)-placed canvas: the largest-area top-left rectangle whose cells are
    all colours (ties go to the fewest rows, as the official evaluator crops); an empty list
    when the top-left cell is not a colour."""
    return crop(canvas).tolist()


def crop(canvas: np.ndarray) -> np.ndarray:
    """`decode` as a (h, w) int array; shape (0, 0) when nothing decodes."""
    c = np.asarray(canvas).reshape(SIZE, SIZE).astype(np.int64)
    colour = (c >= COLOUR0) & (c < COLOUR0 + N_COLOURS)
    # Leading colour run of each row, then the running minimum: the widest rectangle of r rows.
    runs = np.where(colour.all(1), SIZE, np.argmin(colour, axis=1))
    widths = np.minimum.accumulate(runs)
    areas = widths * np.arange(1, SIZE + 1)
    if areas.max() == 0:
        return np.zeros((0, 0), dtype=np.int64)
    rows = int(np.argmax(areas)) + 1
    return c[:rows, : int(widths[rows - 1])] - COLOUR0


def locate(canvas: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(row offset, column offset, grid) of a canvas placed anywhere: the bounding box of its
    colour cells. Training canvases are translated, so cropping from (0, 0) would miss them."""
    c = np.asarray(canvas).reshape(SIZE, SIZE).astype(np.int64)
    colour = (c >= COLOUR0) & (c < COLOUR0 + N_COLOURS)
    rows, cols = np.flatnonzero(colour.any(1)), np.flatnonzero(colour.any(0))
    if rows.size == 0:
        return 0, 0, np.zeros((0, 0), dtype=np.int64)
    r0, c0 = int(rows[0]), int(cols[0])
    return r0, c0, c[r0 : rows[-1] + 1, c0 : cols[-1] + 1] - COLOUR0


# ----------------------------------------------------------------------------------- parsing
def parse_grid(raw: Any) -> np.ndarray:
    """A user's grid (list of rows of ints 0-9, 1x1 to 30x30) as an (h, w) int64 array;
    raises PuzzleError naming the exact problem."""
    if isinstance(raw, np.ndarray):
        raw = raw.tolist()
    if not isinstance(raw, list | tuple):
        raise PuzzleError(f"expected a list of rows of colours 0-9, got {type(raw).__name__}",
                          ("grid",))
    if not raw:
        raise PuzzleError("the grid is empty; expected 1 to 30 rows", ("grid",))
    if len(raw) > SIZE:
        raise PuzzleError(f"the grid has {len(raw)} rows; at most {SIZE} fit", ("grid",))
    width = _row_width(raw[0], 1)
    for r, row in enumerate(raw[1:], start=2):
        if _row_width(row, r) != width:
            earlier = "row 1 has" if r == 2 else f"rows 1-{r - 1} have"
            raise PuzzleError(f"row {r} has {len(row)} cells, {earlier} {width}", ("grid", r - 1))
    values = [[_colour(v, r, c) for c, v in enumerate(row)] for r, row in enumerate(raw)]
    return np.array(values, dtype=np.int64)


def _row_width(row: Any, r: int) -> int:
    """The length of 1-based row `r`, checked to be a list of 1 to 30 cells."""
    if not isinstance(row, list | tuple):
        raise PuzzleError(f"row {r} is {row!r}; expected a list of colours 0-9", ("grid", r - 1))
    if not 1 <= len(row) <= SIZE:
        raise PuzzleError(f"row {r} has {len(row)} cells; expected 1 to {SIZE}", ("grid", r - 1))
    return len(row)


def _colour(value: Any, r: int, c: int) -> int:
    """One cell as 0..9; booleans are refused although they are ints."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and 0 <= value <= 9:
        return int(value)
    raise PuzzleError(f"cell (row {r + 1}, column {c + 1}) is {value!r}; expected a colour 0-9",
                      ("grid", r, c), [(r, c)])


# -------------------------------------------------------------------------------- symmetries
def _colour_map(colour_map: Sequence[int] | np.ndarray) -> np.ndarray:
    """A validated permutation of 0..9 that keeps 0."""
    m = np.asarray(colour_map, dtype=np.int64)
    if sorted(m.tolist()) != list(range(N_COLOURS)) or m[0] != 0:
        raise ValueError("colour_map must be a permutation of 0..9 that keeps 0 (black)")
    return m


class ArcSymmetry(Symmetry):
    """Recolour by `colour_map` (colour c becomes colour_map[c], 0 fixed), then apply the
    dihedral transform `dihedral_id`, as the official augmentation does.

    `apply` / `invert` take a grid (a 2-D array or nested list of colours, any size up to
    30x30) or canvases (an array whose last axis is 900, i.e. cells): a canvas is decoded from
    (0, 0), transformed and re-encoded at (0, 0); a canvas that does not decode becomes all
    PAD. Grids are told from canvases by that last axis, since no grid is 900 wide.
    """

    def __init__(self, dihedral_id: int, colour_map: Sequence[int] | np.ndarray) -> None:
        if dihedral_id not in range(8):
            raise ValueError(f"dihedral_id must be 0-7, got {dihedral_id}")
        self.dihedral_id = int(dihedral_id)
        self.colour_map = _colour_map(colour_map)
        self.inverse_colour_map = np.argsort(self.colour_map)

    @classmethod
    def random(cls, rng: np.random.Generator) -> ArcSymmetry:
        """A uniform draw from the 8 * 9! elements."""
        return cls(int(rng.integers(0, 8)), [0, *(rng.permutation(9) + 1)])

    def apply_grid(self, grid: Any) -> np.ndarray:
        return dihedral(self.colour_map[np.asarray(grid, dtype=np.int64)], self.dihedral_id)

    def invert_grid(self, grid: Any) -> np.ndarray:
        g = dihedral(np.asarray(grid, dtype=np.int64), DIHEDRAL_INVERSE[self.dihedral_id])
        return self.inverse_colour_map[g]

    def apply(self, cells: Any) -> np.ndarray:
        if _is_canvas(cells):
            return _map_canvases(np.asarray(cells), self.apply_grid)
        return self.apply_grid(cells)

    def invert(self, cells: Any) -> np.ndarray:
        if _is_canvas(cells):
            return _map_canvases(np.asarray(cells), self.invert_grid)
        return self.invert_grid(cells)

    def __repr__(self) -> str:
        return f"ArcSymmetry({self.dihedral_id}, {self.colour_map.tolist()})"


def _is_canvas(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.ndim >= 1 and x.shape[-1] == N_CELLS


def _map_canvases(canvases: np.ndarray, fn: Any) -> np.ndarray:
    """`fn` on the grid of each (0, 0)-placed canvas in (..., 900), re-encoded at (0, 0)."""
    flat = canvases.reshape(-1, N_CELLS)
    out = np.zeros_like(flat)
    for i, canvas in enumerate(flat):
        grid = crop(canvas)
        if grid.size:
            out[i] = encode(fn(grid))
    return out.reshape(canvases.shape)


def canonical_grid(grid: np.ndarray) -> tuple[bytes, ArcSymmetry]:
    """The smallest key over the 8 dihedral images of `grid`, each with colours 1..9 relabelled
    1, 2, ... in order of first appearance (row-major; 0 stays 0), and the symmetry mapping
    `grid` onto that representative. Two grids get equal keys exactly when one is a dihedral
    image of the other up to a permutation of colours 1..9."""
    best: tuple[bytes, ArcSymmetry] | None = None
    for d in range(8):
        image = dihedral(grid, d)
        order = [int(v) for v in dict.fromkeys(image.reshape(-1).tolist()) if v != 0]
        unused = [v for v in range(1, N_COLOURS) if v not in order]
        colour_map = np.zeros(N_COLOURS, dtype=np.int64)
        colour_map[[*order, *unused]] = np.arange(1, N_COLOURS)
        relabelled = colour_map[image]
        key = bytes(relabelled.shape) + relabelled.astype(np.uint8).tobytes()
        if best is None or key < best[0]:
            best = (key, ArcSymmetry(d, colour_map))
    assert best is not None
    return best


# ------------------------------------------------------------------------------ augmentation
def augment_canvas_pair(
    inp: np.ndarray, label: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One random symmetry and one random translation, shared by an input and its label
    canvas (placed anywhere); rows whose input holds no grid are returned unchanged."""
    r_in, c_in, grid_in = locate(inp)
    r_out, c_out, grid_out = locate(label)
    if grid_in.size == 0:
        return inp, label
    sym = ArcSymmetry.random(rng)
    new_in = sym.apply_grid(grid_in)
    new_out = sym.apply_grid(grid_out) if grid_out.size else None
    height = max(new_in.shape[0], 0 if new_out is None else new_out.shape[0])
    width = max(new_in.shape[1], 0 if new_out is None else new_out.shape[1])
    row, col = int(rng.integers(0, SIZE - height + 1)), int(rng.integers(0, SIZE - width + 1))
    out_label = np.zeros_like(label) if new_out is None else encode(new_out, row, col)
    return encode(new_in, row, col).astype(inp.dtype), out_label.astype(label.dtype)


# -------------------------------------------------------------------------------------- task
class ArcTask(Task):
    """ARC-AGI grids on the 30x30 canvas; cells are canvas tokens (see the module docstring)."""

    name = "arc"
    seq_len = N_CELLS
    vocab_size = 12
    grid_shape = (SIZE, SIZE)
    can_verify = False

    def parse(self, raw: Any) -> np.ndarray:
        return encode(parse_grid(raw)).astype(np.int8)

    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells).astype(np.int64)

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        # Identity on valid tokens; anything outside the vocabulary becomes PAD.
        return np.where((t >= 0) & (t < self.vocab_size), t, PAD).astype(np.int8)

    def decode(self, canvas: np.ndarray) -> list[list[int]]:
        return decode(canvas)

    # The sidecar and training data modules load on first use: they import this one.
    def import_identifiers(self, source: Path, data: Path | None, stem: Path,
                           rows: int) -> dict[str, Any]:
        from trm_core.tasks.arc.identifiers import write_identifiers

        return write_identifiers(source, data, stem, rows)

    def sidecars(self, stem: Path) -> list[Path]:
        from trm_core.tasks.arc.identifiers import sidecar_path

        return [sidecar_path(stem)]

    def load_model_extras(self, stem: Path, puzzle_rows: int) -> IdentifierMap | None:
        """The checkpoint's row -> task version table (`<stem>.identifiers.json`); None when
        absent. ValueError when it names more identifiers than the embedding has rows."""
        from trm_core.tasks.arc.identifiers import load_identifiers, sidecar_path

        path = sidecar_path(stem)
        if not path.exists():
            return None
        identifiers = load_identifiers(path)
        if len(identifiers) > puzzle_rows:
            raise ValueError(f"{path} names {len(identifiers)} identifiers; the checkpoint's "
                             f"puzzle embedding has {puzzle_rows} rows")
        return identifiers

    def describe_model_extras(self, extras: IdentifierMap | None) -> dict[str, Any]:
        if extras is None:
            return {}
        return {"arc": {"known_tasks": len(extras.task_digests), "identifiers": len(extras)}}

    def open_training_data(self, path: str, split: Literal["train", "eval"]) -> ArcSplit:
        """A `trm data-arc` build folder: its train split, or its test split to evaluate on."""
        from trm_core.tasks.arc.train_data import open_split

        return open_split(path, "train" if split == "train" else "test")

    def encode(self, grid: Any, row_offset: int = 0, col_offset: int = 0) -> np.ndarray:
        return encode(grid, row_offset, col_offset).astype(np.int8)

    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        """Well-formedness only (see the module docstring): `answer` decodes from (0, 0) to a
        non-empty grid of colours. Whether it is the right output cannot be known here."""
        a = np.asarray(answer)
        return a.size == N_CELLS and crop(a).size > 0

    def format(self, cells: np.ndarray) -> str:
        return "|".join("".join(str(v) for v in row) for row in decode(cells))

    def render(self, cells: np.ndarray) -> str:
        return "\n".join(" ".join(str(v) for v in row) for row in decode(cells))

    def random_symmetry(self, rng: np.random.Generator) -> ArcSymmetry:
        return ArcSymmetry.random(rng)

    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, ArcSymmetry]:
        return canonical_grid(crop(cells))

    def augment_tokens(
        self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        # Grids differ in size, so a per-row loop; about 1 ms per row is well under a step.
        new_inputs, new_labels = np.empty_like(inputs), np.empty_like(labels)
        for i in range(inputs.shape[0]):
            new_inputs[i], new_labels[i] = augment_canvas_pair(inputs[i], labels[i], rng)
        return new_inputs, new_labels
