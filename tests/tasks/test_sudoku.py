"""Sudoku task: parsing, encoding, rules, symmetries, canonical forms, solver and generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from call_counting import count_calls

from trm_core.tasks import get_task
from trm_core.tasks.base import PuzzleError
from trm_core.tasks.sudoku import (
    SudokuSymmetry,
    SudokuTask,
    is_solution,
    violations,
)
from trm_core.tasks.sudoku_canonical import canonical_form
from trm_core.tasks.sudoku_generate import (
    DIFFICULTIES,
    SearchBudgetExceeded,
    SudokuRecord,
    bucket_of,
    count_guesses,
    generate,
    generate_puzzle,
    read_csv,
    solve,
    write_csv,
)

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
# A famously hard puzzle (unique solution) that needs real search.
HARD = "8..........36......7..9.2...5...7.......457.....1...3...1....68..85...1..9....4.."
HARD_SOLUTION = "812753649943682175675491283154237896369845721287169534521974368438526917796318452"
# Sparse, with many solutions, and pathological for a depth-first search in this orientation.
PATHOLOGICAL = ".....6....59.....82....8....45........3........6..3.54...325..6.................."

TASK = SudokuTask()


def cells(text: str) -> np.ndarray:
    return TASK.parse(text)


def symmetric_images(grid: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [TASK.random_symmetry(rng).apply(grid) for _ in range(count)]


# ------------------------------------------------------------------------------------ parse


def test_task_is_registered_with_its_shape() -> None:
    task = get_task("sudoku")
    assert isinstance(task, SudokuTask)
    assert (task.seq_len, task.vocab_size, task.grid_shape) == (81, 11, (9, 9))


def test_parse_string_accepts_dots_zeros_and_separators() -> None:
    grid = cells(PUZZLE)
    assert grid.dtype == np.int8 and grid.shape == (81,)
    assert grid[:5].tolist() == [5, 3, 0, 0, 7]
    assert np.array_equal(cells(PUZZLE.replace(".", "0")), grid)
    # The rendered grid (spaces, '|', '-', '+', newlines) parses back to the same cells.
    assert np.array_equal(cells(TASK.render(grid)), grid)


def test_parse_lists_nested_flat_none_and_numpy() -> None:
    grid = cells(PUZZLE)
    nested = TASK.to_grid(grid)
    assert np.array_equal(TASK.parse(nested), grid)
    assert np.array_equal(TASK.parse(grid.tolist()), grid)
    with_none = [[v or None for v in row] for row in nested]
    assert np.array_equal(TASK.parse(with_none), grid)
    assert np.array_equal(TASK.parse(grid.reshape(9, 9)), grid)


def test_parse_allows_empty_and_ambiguous_puzzles() -> None:
    assert not cells("." * 81).any()
    assert cells("5" + "." * 80)[0] == 5


@pytest.mark.parametrize(
    ("raw", "message", "loc", "bad_cells"),
    [
        (PUZZLE[:80], "expected 81 cells, got 80", ("puzzle",), []),
        (PUZZLE + "1", "expected 81 cells, got 82", ("puzzle",), []),
        (
            PUZZLE[:12] + "x" + PUZZLE[13:],
            "bad character 'x' at position 12 (row 2, column 4); "
            "use digits 1-9 and '.' or '0' for blanks",
            ("puzzle",),
            [(1, 3)],
        ),
        (
            "53..7.5..6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79",
            "digit 5 appears twice in row 1: r1c1 and r1c7",
            ("puzzle",),
            [(0, 0), (0, 6)],
        ),
        (
            "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5.3..8..79",
            "digit 3 appears twice in column 2: r1c2 and r9c2",
            ("puzzle",),
            [(0, 1), (8, 1)],
        ),
        (
            PUZZLE[:70] + "2" + PUZZLE[71:],
            "digit 2 appears twice in box 9: r7c7 and r8c8",
            ("puzzle",),
            [(6, 6), (7, 7)],
        ),
        (
            {"puzzle": PUZZLE},
            "expected a string of 81 characters or a 9x9 list of digits, got dict",
            ("puzzle",),
            [],
        ),
    ],
)
def test_parse_errors_name_the_problem(
    raw: object, message: str, loc: tuple[str, ...], bad_cells: list[tuple[int, int]]
) -> None:
    with pytest.raises(PuzzleError) as caught:
        TASK.parse(raw)
    assert caught.value.message == message
    assert str(caught.value) == message
    assert caught.value.loc == loc
    assert caught.value.cells == bad_cells


def test_parse_list_errors_name_the_problem() -> None:
    nested = TASK.to_grid(cells(PUZZLE))
    short_row = [row[:] for row in nested]
    short_row[2] = short_row[2][:8]
    big_cell = [row[:] for row in nested]
    big_cell[1][4] = 12
    clash = [row[:] for row in nested]
    clash[3][4] = 9  # column 5 already has a 9 in r2c5
    cases = [
        (nested[:8], "expected 9 rows, got 8"),
        (short_row, "row 3 has 8 cells, expected 9"),
        (big_cell, "cell (row 2, column 5) is 12; expected 0-9"),
        (sum(nested, [])[:80], "expected 81 cells, got 80"),
        (clash, "digit 9 appears twice in column 5: r2c5 and r4c5"),
    ]
    for raw, message in cases:
        with pytest.raises(PuzzleError) as caught:
            TASK.parse(raw)
        assert caught.value.message == message
        assert caught.value.loc == ("grid",)
    with pytest.raises(PuzzleError) as caught:
        TASK.parse(big_cell)
    assert caught.value.cells == [(1, 4)]


def test_parse_refuses_booleans_and_strings_in_lists() -> None:
    nested: list[list[object]] = [list(row) for row in TASK.to_grid(cells(PUZZLE))]
    nested[0][0] = True
    with pytest.raises(PuzzleError, match=r"cell \(row 1, column 1\) is True; expected 0-9"):
        TASK.parse(nested)
    nested[0][0] = "5"
    with pytest.raises(PuzzleError, match="is '5'"):
        TASK.parse(nested)


# ----------------------------------------------------------------------- tokens and text


def test_tokens_round_trip_and_unknown_tokens_become_blank() -> None:
    grid = cells(PUZZLE)
    tokens = TASK.to_tokens(grid)
    assert tokens.dtype == np.int64
    assert tokens[0] == 6 and tokens[2] == 1  # digit 5 -> 6, blank -> 1
    assert np.array_equal(TASK.from_tokens(tokens), grid)
    batch = np.stack([tokens, tokens])[None]  # (1, 2, 81)
    assert TASK.from_tokens(batch).shape == (1, 2, 81)
    assert TASK.from_tokens(np.array([0, 1, 2, 10, 11, -3])).tolist() == [0, 0, 1, 9, 0, 0]


def test_format_and_render() -> None:
    grid = cells(PUZZLE)
    assert TASK.format(grid) == PUZZLE
    lines = TASK.render(grid).splitlines()
    assert len(lines) == 11
    assert lines[0] == "5 3 . | . 7 . | . . ."
    assert lines[3] == "------+-------+------"
    assert lines[10] == ". . . | . 8 . | . 7 9"


# ------------------------------------------------------------------------------------ rules


def test_verify_accepts_the_solution_and_rejects_broken_answers() -> None:
    puzzle, answer = cells(PUZZLE), cells(SOLUTION)
    assert TASK.verify(puzzle, answer)
    assert violations(answer, puzzle) == []
    # A valid grid that does not keep the givens.
    relabelled = SudokuSymmetry([0, 2, 1, 3, 4, 5, 6, 7, 8, 9], False, range(9), range(9))
    other = relabelled.apply(answer)
    assert is_solution(np.zeros(81, np.int8), other) and not TASK.verify(puzzle, other)
    swapped = answer.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # row stays a permutation; columns break
    assert not TASK.verify(np.zeros(81, np.int8), swapped)
    blank = answer.copy()
    blank[40] = 0
    assert not TASK.verify(puzzle, blank)
    assert violations(blank) == ["1 cell is blank"]
    assert not TASK.verify(puzzle, answer[:80])


@pytest.mark.parametrize("unit", ["row", "column", "box"])
def test_verify_rejects_a_duplicate_in_each_kind_of_unit(unit: str) -> None:
    answer = cells(SOLUTION).reshape(9, 9)
    broken = answer.copy()
    if unit == "row":  # swapping two cells of a column keeps columns valid, breaks two rows
        broken[[0, 3], 0] = broken[[3, 0], 0]
    elif unit == "column":
        broken[0, [0, 3]] = broken[0, [3, 0]]
    else:  # rotating whole rows keeps rows and columns valid, breaks boxes
        broken = np.roll(answer, 1, axis=0)
    assert not TASK.verify(np.zeros(81, np.int8), broken.reshape(-1))
    assert any(f"in {unit}" in problem for problem in violations(broken.reshape(-1)))


# ------------------------------------------------------------------------------- symmetries


def test_symmetry_inverts_exactly_and_preserves_validity() -> None:
    rng = np.random.default_rng(0)
    puzzle, answer = cells(PUZZLE), cells(SOLUTION)
    batch = np.stack([puzzle, answer])
    for _ in range(200):
        sym = TASK.random_symmetry(rng)
        image = sym.apply(batch)
        assert image.dtype == batch.dtype
        assert np.array_equal(sym.invert(image), batch)
        assert np.array_equal(sym.apply(puzzle), image[0])
        assert TASK.verify(image[0], image[1])
        assert np.count_nonzero(image[0]) == np.count_nonzero(puzzle)


def test_symmetry_from_parts_and_validation() -> None:
    identity = SudokuSymmetry.from_parts(
        range(1, 10), False, [0, 1, 2], [[0, 1, 2]] * 3, [0, 1, 2], [[0, 1, 2]] * 3
    )
    assert np.array_equal(identity.apply(cells(PUZZLE)), cells(PUZZLE))
    transpose = SudokuSymmetry.from_parts(
        range(1, 10), True, [0, 1, 2], [[0, 1, 2]] * 3, [0, 1, 2], [[0, 1, 2]] * 3
    )
    grid = cells(PUZZLE).reshape(9, 9)
    assert np.array_equal(transpose.apply(grid.reshape(-1)).reshape(9, 9), grid.T)
    with pytest.raises(ValueError, match="bands"):
        SudokuSymmetry(range(10), False, [0, 1, 3, 2, 4, 5, 6, 7, 8], range(9))
    with pytest.raises(ValueError, match="blanks"):
        SudokuSymmetry([1, 0, 2, 3, 4, 5, 6, 7, 8, 9], False, range(9), range(9))


def test_augment_keeps_pad_blank_and_input_label_consistency() -> None:
    rng = np.random.default_rng(1)
    inputs = np.tile(TASK.to_tokens(cells(PUZZLE)), (64, 1))
    inputs[:, 80] = 0  # a PAD token must stay PAD wherever it moves
    labels = np.tile(TASK.to_tokens(cells(SOLUTION)), (64, 1))
    aug_in, aug_lab = TASK.augment_tokens(inputs, labels, rng)
    assert aug_in.shape == inputs.shape and aug_in.dtype == np.int64
    assert ((aug_in == 0).sum(axis=1) == 1).all()
    assert ((aug_in == 1).sum(axis=1) == (inputs == 1).sum(axis=1)).all()
    assert len({row.tobytes() for row in aug_in}) > 60  # rows draw different symmetries
    for row_in, row_lab in zip(aug_in, aug_lab, strict=True):
        puzzle = TASK.from_tokens(row_in)
        assert TASK.verify(puzzle, TASK.from_tokens(row_lab))
        assert canonical_form(puzzle)[0] == canonical_form(cells(PUZZLE[:80] + "."))[0]


def test_augment_is_vectorised_over_the_batch() -> None:
    # A training batch (768 rows) costs the same Python calls as one row: numpy does the
    # per-row work (about 1 ms for the batch on a laptop core), whatever the machine.
    rng = np.random.default_rng(2)

    def calls_for(rows: int) -> int:
        inputs = np.tile(TASK.to_tokens(cells(PUZZLE)), (rows, 1))
        labels = np.tile(TASK.to_tokens(cells(SOLUTION)), (rows, 1))
        return count_calls(lambda: TASK.augment_tokens(inputs, labels, rng))

    assert calls_for(768) == calls_for(1)


# --------------------------------------------------------------------------- canonical form


@pytest.mark.parametrize("text", [PUZZLE, SOLUTION, HARD, "." * 81, "." * 40 + "7" + "." * 40])
def test_canonical_form_is_invariant_and_reached_by_its_symmetry(text: str) -> None:
    grid = cells(text)
    key, sym = TASK.canonical_form(grid)
    assert len(key) == 81
    assert sym.apply(grid).tobytes() == key
    assert np.array_equal(sym.invert(np.frombuffer(key, dtype=np.int8)), grid)
    for image in symmetric_images(grid, 25, seed=len(text) + int(grid.sum())):
        image_key, image_sym = TASK.canonical_form(image)
        assert image_key == key
        assert image_sym.apply(image).tobytes() == key


def _givens_profile(grid: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """A symmetry invariant: the sorted givens counts of rows and of columns, as an unordered
    pair (transposing swaps them)."""
    filled = grid.reshape(9, 9) != 0
    rows, cols = tuple(sorted(filled.sum(axis=1))), tuple(sorted(filled.sum(axis=0)))
    return tuple(sorted([rows, cols]))


def test_canonical_form_separates_inequivalent_puzzles() -> None:
    rng = np.random.default_rng(3)
    puzzles = [cells(PUZZLE), cells(HARD), cells(SOLUTION), cells(HARD_SOLUTION)]
    for _ in range(30):  # the example puzzle with two givens removed
        variant = cells(PUZZLE)
        variant[rng.choice(np.flatnonzero(variant), size=2, replace=False)] = 0
        puzzles.append(variant)
    forms = [canonical_form(p) for p in puzzles]
    for i, (key_a, sym_a) in enumerate(forms):
        for j, (key_b, sym_b) in enumerate(forms[:i]):
            if _givens_profile(puzzles[i]) != _givens_profile(puzzles[j]):
                assert key_a != key_b  # provably inequivalent
            if key_a == key_b:
                # Equal keys must come with a symmetry between the puzzles: no false collisions.
                assert np.array_equal(sym_a.invert(sym_b.apply(puzzles[j])), puzzles[i])
    assert len({key for key, _ in forms}) > 25


def test_canonical_form_rejects_repeated_digits() -> None:
    grid = cells(PUZZLE)
    grid[2] = 5
    with pytest.raises(ValueError, match="repeated"):
        canonical_form(grid)


# ----------------------------------------------------------------------------------- solver


def test_solver_finds_the_unique_solution() -> None:
    solutions, guesses = solve(cells(PUZZLE))
    assert [s.tolist() for s in solutions] == [cells(SOLUTION).tolist()]
    assert guesses == 0 and count_guesses(cells(PUZZLE)) == 0


def test_solver_handles_a_hard_puzzle_quickly() -> None:
    solutions, guesses = solve(cells(HARD), limit=2)
    assert len(solutions) == 1 and np.array_equal(solutions[0], cells(HARD_SOLUTION))
    assert 0 < count_guesses(cells(HARD)) <= guesses
    # 320 guesses (about 30 ms); counted rather than timed, the bound only catches exponential
    # regressions, on any machine
    assert guesses < 2_000


def test_solver_reports_several_or_no_solutions() -> None:
    solutions, _ = solve(cells("." * 81), limit=2)
    assert len(solutions) == 2 and all(is_solution(np.zeros(81), s) for s in solutions)
    conflicting = cells(PUZZLE)
    conflicting[2] = 2  # breaks no rule, but the unique solution has a 4 there
    assert solve(conflicting)[0] == []
    with pytest.raises(ValueError, match="no solution"):
        count_guesses(conflicting)


def test_solver_budget_stops_pathological_searches() -> None:
    with pytest.raises(SearchBudgetExceeded):
        solve(cells(PATHOLOGICAL), limit=1, max_guesses=2_000)


# -------------------------------------------------------------------------------- generator


def test_generate_puzzle_is_unique_with_requested_givens() -> None:
    rng = np.random.default_rng(4)
    for _ in range(3):
        puzzle, solution, guesses = generate_puzzle(rng, min_givens=30, max_givens=34)
        assert 30 <= np.count_nonzero(puzzle) <= 34
        solutions, _ = solve(puzzle, limit=2)
        assert len(solutions) == 1 and np.array_equal(solutions[0], solution)
        assert TASK.verify(puzzle, solution)
        assert guesses == count_guesses(puzzle)


def test_generate_hard_puzzles_are_minimal_and_need_guesses() -> None:
    spec = DIFFICULTIES["hard"]
    (puzzle, solution, guesses), *_ = generate(1, "hard", seed=7, workers=1)
    grid = cells(puzzle)
    assert guesses >= spec.min_guesses and bucket_of(int(np.count_nonzero(grid)), guesses) == "hard"
    assert len(solve(grid)[0]) == 1
    for pos in np.flatnonzero(grid)[:5]:  # removing any given breaks uniqueness
        fewer = grid.copy()
        fewer[pos] = 0
        assert len(solve(fewer)[0]) == 2


def test_generate_is_deterministic_across_worker_counts() -> None:
    serial = generate(4, "easy", seed=11, workers=1)
    parallel = generate(4, "easy", seed=11, workers=2)
    assert serial == parallel
    assert serial != generate(4, "easy", seed=12, workers=1)
    for puzzle, solution, guesses in serial:
        givens = sum(ch != "." for ch in puzzle)
        assert 40 <= givens <= 50 and guesses == 0
        assert bucket_of(givens, guesses) == "easy"
        assert TASK.verify(cells(puzzle), cells(solution))
    with pytest.raises(ValueError, match="unknown difficulty"):
        generate(1, "fiendish", seed=0)


def test_buckets() -> None:
    assert bucket_of(45, 0) == "easy"
    assert bucket_of(45, 1) == "medium"
    assert bucket_of(30, 0) == "medium"
    assert bucket_of(24, 50) == "hard"


# -------------------------------------------------------------------------------------- CSV


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sudoku.csv"
    rows = [(PUZZLE, SOLUTION, 0), (HARD, HARD_SOLUTION, 172, "hard")]
    assert write_csv(path, rows) == 2
    assert path.read_text().splitlines()[0] == "puzzle,solution,guesses,bucket"
    assert read_csv(path) == [
        SudokuRecord(PUZZLE, SOLUTION, 0, "medium"),
        SudokuRecord(HARD, HARD_SOLUTION, 172, "hard"),
    ]
    path.write_text("puzzle,solution\n" + PUZZLE + "," + SOLUTION + "\n")
    with pytest.raises(ValueError, match="guesses, bucket"):
        read_csv(path)
