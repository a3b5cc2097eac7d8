"""ARC task: parsing, canvas placement and cropping, symmetries, canonical forms, augmentation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from call_counting import count_calls

from trm_core.tasks import get_task
from trm_core.tasks.arc.grids import (
    DIHEDRAL_INVERSE,
    ArcSymmetry,
    ArcTask,
    decode,
    dihedral,
    encode,
    locate,
)
from trm_core.tasks.base import PuzzleError

TASK = ArcTask()


def random_grid(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return rng.integers(0, 10, size=(h, w))


def test_registered_with_the_interface_numbers() -> None:
    task = get_task("arc")
    assert isinstance(task, ArcTask)
    assert (task.seq_len, task.vocab_size, task.grid_shape) == (900, 12, (30, 30))
    assert task.can_verify is False


# ----------------------------------------------------------------------------------- parsing
def test_parse_places_the_grid_at_the_origin_with_end_of_grid_markers() -> None:
    canvas = TASK.parse([[1, 2, 3], [4, 5, 0]]).reshape(30, 30)
    assert canvas.dtype == np.int8
    assert canvas[:2, :3].tolist() == [[3, 4, 5], [6, 7, 2]]
    assert canvas[2, :3].tolist() == [1, 1, 1] and canvas[:2, 3].tolist() == [1, 1]
    assert canvas[2, 3] == 0  # the corner stays PAD
    assert int(np.count_nonzero(canvas)) == 6 + 5


@pytest.mark.parametrize(
    ("raw", "message", "loc"),
    [
        ([[1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [1, 2, 3, 4]], "row 3 has 4 cells, rows 1-2 have 5",
         ("grid", 2)),
        ([[1, 2], [3]], "row 2 has 1 cells, row 1 has 2", ("grid", 1)),
        ([[1, 2], [3, 10]], "cell (row 2, column 2) is 10", ("grid", 1, 1)),
        ([[1, -1]], "cell (row 1, column 2) is -1", ("grid", 0, 1)),
        ([[1, True]], "cell (row 1, column 2) is True", ("grid", 0, 1)),
        ([[1, "2"]], "cell (row 1, column 2) is '2'", ("grid", 0, 1)),
        ([[1.0]], "cell (row 1, column 1) is 1.0", ("grid", 0, 0)),
        ([], "the grid is empty", ("grid",)),
        ([[]], "row 1 has 0 cells", ("grid", 0)),
        ([[0] * 3] * 31, "31 rows; at most 30", ("grid",)),
        ([[0] * 31], "row 1 has 31 cells", ("grid", 0)),
        ("12|34", "expected a list of rows", ("grid",)),
        ([1, 2], "row 1 is 1", ("grid", 0)),
        (None, "got NoneType", ("grid",)),
    ],
)
def test_parse_errors_name_the_problem(raw: Any, message: str, loc: tuple[Any, ...]) -> None:
    with pytest.raises(PuzzleError) as err:
        TASK.parse(raw)
    assert message in str(err.value)
    assert err.value.loc == loc


def test_parse_accepts_extremes_and_numpy() -> None:
    assert TASK.decode(TASK.parse([[7]])) == [[7]]
    full = np.arange(900).reshape(30, 30) % 10
    assert TASK.decode(TASK.parse(full)) == full.tolist()


# -------------------------------------------------------------------------- encode / decode
def test_encode_decode_round_trip_for_random_sizes() -> None:
    rng = np.random.default_rng(0)
    sizes = [(1, 1), (30, 30), (1, 30), (30, 1), (29, 29)] + [
        tuple(rng.integers(1, 31, size=2)) for _ in range(50)]
    for h, w in sizes:
        grid = random_grid(rng, int(h), int(w))
        canvas = encode(grid)
        assert decode(canvas) == grid.tolist()
        assert TASK.from_tokens(TASK.to_tokens(canvas)).tolist() == canvas.tolist()
        row, col = int(rng.integers(0, 31 - h)), int(rng.integers(0, 31 - w))
        r, c, found = locate(encode(grid, row, col))
        assert (r, c, found.tolist()) == (row, col, grid.tolist())


def test_full_canvas_has_no_end_of_grid_markers() -> None:
    canvas = encode(np.full((30, 30), 4))
    assert not np.any(canvas == 1) and not np.any(canvas == 0)
    edge = encode(np.zeros((30, 5), dtype=int)).reshape(30, 30)
    assert edge[:, 5].tolist() == [1] * 30 and not np.any(edge[:, 6:])


def test_decode_crops_the_largest_top_left_rectangle() -> None:
    canvas = np.zeros((30, 30), dtype=np.int64)
    canvas[:2, :5] = 3
    canvas[2:6, :2] = 4  # 6x2 = 12 beats 2x5 = 10
    assert decode(canvas) == [[1, 1]] * 2 + [[2, 2]] * 4
    assert decode(np.zeros(900)) == []
    assert decode(encode([[1]]).reshape(30, 30)[::-1].reshape(-1)) == []


def test_verify_checks_form_only() -> None:
    puzzle = TASK.parse([[1, 2], [3, 4]])
    assert TASK.verify(puzzle, TASK.parse([[9]]))  # wrong, but well formed
    assert not TASK.verify(puzzle, np.zeros(900, dtype=np.int8))
    assert not TASK.verify(puzzle, np.ones(900, dtype=np.int8))


def test_format_and_render_are_rows_of_digits() -> None:
    cells = TASK.parse([[1, 2], [3, 0]])
    assert TASK.format(cells) == "12|30"
    assert TASK.render(cells) == "1 2\n3 0"
    assert TASK.to_grid(cells)[0][:3] == [3, 4, 1]


# -------------------------------------------------------------------------------- symmetries
def test_dihedral_ids_and_inverses() -> None:
    g = np.arange(6).reshape(2, 3)
    assert dihedral(g, 1).tolist() == np.rot90(g).tolist()
    assert dihedral(g, 4).tolist() == np.fliplr(g).tolist()
    assert dihedral(g, 5).tolist() == np.flipud(g).tolist()
    assert dihedral(g, 6).tolist() == g.T.tolist()
    assert dihedral(g, 7).tolist() == np.rot90(g, 2).T.tolist()  # the anti-transpose
    images = {dihedral(g, d).tobytes() + bytes(dihedral(g, d).shape) for d in range(8)}
    assert len(images) == 8
    for d in range(8):
        assert dihedral(dihedral(g, d), DIHEDRAL_INVERSE[d]).tolist() == g.tolist()


def test_symmetry_inverts_on_grids_and_canvases_and_keeps_black() -> None:
    rng = np.random.default_rng(1)
    for d in range(8):
        sym = ArcSymmetry(d, [0, *(rng.permutation(9) + 1)])
        grid = random_grid(rng, 3, 7)
        assert sym.colour_map[0] == 0
        assert sym.invert(sym.apply(grid)).tolist() == grid.tolist()
        assert np.array_equal(sym.apply(grid) == 0, dihedral(grid == 0, d))
        canvases = np.stack([encode(grid), encode(random_grid(rng, 2, 2)), np.zeros(900)])
        moved = sym.apply(canvases.astype(np.int8))
        assert moved.shape == canvases.shape and moved.dtype == np.int8
        assert decode(moved[0]) == sym.apply(grid).tolist()
        assert np.array_equal(sym.invert(moved), canvases)
    with pytest.raises(ValueError):
        ArcSymmetry(0, [1, 0, 2, 3, 4, 5, 6, 7, 8, 9])
    with pytest.raises(ValueError):
        ArcSymmetry(8, list(range(10)))


def test_random_symmetries_cover_the_group() -> None:
    rng = np.random.default_rng(2)
    syms = [TASK.random_symmetry(rng) for _ in range(400)]
    assert {s.dihedral_id for s in syms} == set(range(8))
    assert all(s.colour_map[0] == 0 for s in syms)


def test_canonical_form_is_invariant_and_maps_onto_the_representative() -> None:
    rng = np.random.default_rng(3)
    grid = random_grid(rng, 4, 6)
    key, sym = TASK.canonical_form(encode(grid))
    representative = sym.apply(grid)
    for _ in range(20):
        other = TASK.random_symmetry(rng).apply(grid)
        other_key, other_sym = TASK.canonical_form(encode(other))
        assert other_key == key
        assert other_sym.apply(other).tolist() == representative.tolist()
    different = grid.copy()
    different[0, 0] = (different[0, 0] + 1) % 10
    assert TASK.canonical_form(encode(different))[0] != key


# ------------------------------------------------------------------------------ augmentation
def _batch(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    inputs, labels = np.zeros((size, 900), np.int64), np.zeros((size, 900), np.int64)
    for i in range(size):
        h, w = rng.integers(1, 31, size=2)
        oh, ow = rng.integers(1, 31, size=2)
        row = int(rng.integers(0, 31 - max(h, oh)))
        col = int(rng.integers(0, 31 - max(w, ow)))
        inputs[i] = encode(random_grid(rng, h, w), row, col)
        labels[i] = encode(random_grid(rng, oh, ow), row, col)
    return inputs, labels


def _explaining_symmetry(before: list[np.ndarray], after: list[np.ndarray]) -> bool:
    """True when one dihedral id and one colour map (0 fixed) take every grid of `before`
    to the matching grid of `after`: inverting it then gives the original pair back."""
    for d in range(8):
        undone = [dihedral(a, DIHEDRAL_INVERSE[d]) for a in after]
        if any(u.shape != b.shape for u, b in zip(undone, before, strict=True)):
            continue
        colour_map = np.full(10, -1)
        consistent = True
        for u, b in zip(undone, before, strict=True):
            for old, new in zip(b.reshape(-1).tolist(), u.reshape(-1).tolist(), strict=True):
                consistent &= colour_map[old] in (-1, new)
                colour_map[old] = new
        used = colour_map[colour_map >= 0]
        if consistent and colour_map[0] in (-1, 0) and len(set(used.tolist())) == len(used):
            return True
    return False


def test_augment_keeps_pairs_consistent() -> None:
    rng = np.random.default_rng(4)
    inputs, labels = _batch(rng, 64)
    new_inputs, new_labels = TASK.augment_tokens(inputs, labels, rng)
    moved = 0
    for i in range(len(inputs)):
        r_in, c_in, got_in = locate(new_inputs[i])
        r_out, c_out, got_out = locate(new_labels[i])
        assert (r_in, c_in) == (r_out, c_out)  # one offset per pair
        assert np.array_equal(new_inputs[i], encode(got_in, r_in, c_in))
        assert np.array_equal(new_labels[i], encode(got_out, r_out, c_out))
        before = [locate(inputs[i])[2], locate(labels[i])[2]]
        assert _explaining_symmetry(before, [got_in, got_out])
        moved += not np.array_equal(new_inputs[i], inputs[i])
    assert moved > 50
    assert new_inputs.dtype == inputs.dtype and new_labels.shape == labels.shape


def test_augment_work_per_row_is_bounded() -> None:
    # Grids differ in size, so rows are augmented one by one: about 130 calls (about 1 ms) a
    # row. Counted rather than timed, so the bound holds on any machine under any load.
    rng = np.random.default_rng(5)
    inputs, labels = _batch(rng, 768)
    assert count_calls(lambda: TASK.augment_tokens(inputs, labels, rng)) < 300 * 768
