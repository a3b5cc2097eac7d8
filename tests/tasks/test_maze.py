"""Mazes: parsing and its errors, tokens, the path rules, the dihedral symmetries, the
generator's guarantees and the committed test sets."""

from pathlib import Path

import numpy as np
import pytest

from trm_core.data import load_puzzle_csv
from trm_core.tasks import PuzzleError, get_task
from trm_core.tasks.maze import (
    GOAL,
    INVERSE,
    OPEN,
    PATH,
    START,
    WALL,
    MazeSymmetry,
    bfs,
    format_cells,
    parse_maze,
    path_cells,
    render_cells,
    shortest_distance,
    solution_path,
    solve,
)
from trm_core.tasks.maze_generate import generate, junctions, read_csv, write_csv

TASK = get_task("maze")
DATA = Path(__file__).resolve().parents[2] / "training" / "data"


def open_room() -> np.ndarray:
    """A 30x30 maze: wall border, open inside, S top left and G bottom right of the room."""
    grid = np.full((30, 30), OPEN, dtype=np.int8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = WALL
    grid[1, 1], grid[28, 28] = START, GOAL
    return grid.reshape(-1)


@pytest.fixture(scope="module")
def hard() -> list[tuple[str, str, int, str]]:
    return generate(6, "hard", seed=7, workers=1)


@pytest.fixture(scope="module")
def maze(hard: list[tuple[str, str, int, str]]) -> tuple[np.ndarray, np.ndarray]:
    return TASK.parse(hard[0][0]), TASK.parse(hard[0][1])


# --------------------------------------------------------------------------------- parsing
def test_parse_forms_agree(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, _ = maze
    text = render_cells(cells)
    for raw in (text, text + "\n", text.replace("\n", "\r\n") + "\r\n", format_cells(cells),
                text.split("\n"), [list(row) for row in text.split("\n")],
                cells.reshape(30, 30).tolist(), cells):
        assert np.array_equal(TASK.parse(raw), cells)
    assert TASK.parse(cells).dtype == np.int8


def test_parse_size_and_character_errors() -> None:
    rows = render_cells(open_room()).split("\n")
    bad_row = "#x" + rows[2][2:]
    cases = {
        "expected 30 rows, got 29": "\n".join(rows[:29]),
        "row 4 has 31 characters, expected 30": "\n".join(rows[:3] + [rows[3] + "#"] + rows[4:]),
        "expected 900 cells, got 899": "".join(rows)[:899],
        "bad character 'x' at row 3, column 2": "\n".join([*rows[:2], bad_row, *rows[3:]]),
    }
    for message, text in cases.items():
        with pytest.raises(PuzzleError, match=message):
            parse_maze(text)


def test_parse_endpoint_errors() -> None:
    cells = open_room()
    two_starts = cells.copy()
    two_starts[35] = START
    with pytest.raises(PuzzleError, match="exactly one S, found 2") as err:
        parse_maze(two_starts)
    assert len(err.value.cells) == 2
    no_goal = cells.copy()
    no_goal[cells == GOAL] = OPEN
    with pytest.raises(PuzzleError, match="exactly one G, found 0"):
        parse_maze(no_goal)
    walled = cells.reshape(30, 30).copy()
    walled[:, 15] = WALL
    with pytest.raises(PuzzleError, match="not connected"):
        parse_maze(walled)


def test_parse_path_cells(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze
    with pytest.raises(PuzzleError, match="path cells 'o' are already in the maze"):
        parse_maze(answer)
    assert np.array_equal(TASK.parse(format_cells(answer)), answer)  # a solved maze parses
    broken = answer.copy()
    broken[np.flatnonzero(answer == PATH)[3]] = OPEN
    with pytest.raises(PuzzleError, match="not one shortest path"):
        TASK.parse(broken)


def test_parse_list_errors() -> None:
    with pytest.raises(PuzzleError, match="is 7"):
        parse_maze([[7] * 30] * 30)
    with pytest.raises(PuzzleError, match="expected 30 rows"):
        parse_maze([[1] * 30] * 3)
    with pytest.raises(PuzzleError, match="got int"):
        parse_maze(5)


# ---------------------------------------------------------------------------------- tokens
def test_tokens_are_cells(maze: tuple[np.ndarray, np.ndarray]) -> None:
    _, answer = maze
    tokens = TASK.to_tokens(answer)
    assert tokens.dtype == np.int64 and tokens.min() >= 1 and tokens.max() <= 5
    assert np.array_equal(TASK.from_tokens(tokens), answer)
    assert TASK.from_tokens(np.array([0, 6, 3])).tolist() == [0, 0, 3]
    assert (TASK.name, TASK.seq_len, TASK.vocab_size, TASK.grid_shape) == ("maze", 900, 6, (30, 30))
    assert format_cells(np.zeros(900, dtype=np.int8)) == "?" * 900


# ---------------------------------------------------------------------------------- verify
def test_verify_label_and_failures(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze
    assert TASK.verify(cells, answer) and TASK.verify(cells, solve(cells))
    path = np.flatnonzero(answer == PATH)
    broken = answer.copy()
    broken[path[len(path) // 2]] = OPEN
    stray = answer.copy()
    stray[np.flatnonzero(answer == OPEN)[0]] = PATH
    wall = answer.copy()
    wall[np.flatnonzero(answer == WALL)[0]] = OPEN
    on_wall = answer.copy()
    on_wall[np.flatnonzero(answer == WALL)[0]] = PATH
    for bad in (broken, stray, wall, on_wall, cells, np.zeros(900, dtype=np.int8)):
        assert not TASK.verify(cells, bad)


def test_verify_rejects_a_longer_path() -> None:
    room = open_room()
    # S at (1, 1), G at (1, 5): the straight path has 3 cells, the detour through row 2 has 5.
    room[room == GOAL] = OPEN
    room[35] = GOAL
    straight, detour = room.copy(), room.copy()
    straight[[32, 33, 34]] = PATH
    detour[[61, 62, 63, 64, 65]] = PATH
    assert TASK.verify(room, straight)
    assert not TASK.verify(room, detour)
    assert path_cells(straight) == [(1, c) for c in range(1, 6)]


def test_verify_rejects_a_separate_loop() -> None:
    room = open_room()
    answer = solve(room)
    loop = [r * 30 + c for r, c in ((10, 10), (10, 11), (11, 11), (11, 10))]
    assert all(answer[p] == OPEN for p in loop)
    answer[loop] = PATH
    assert not TASK.verify(room, answer)


def test_bfs_counts_shortest_paths() -> None:
    room = open_room()
    dist, count = bfs(room, int(np.flatnonzero(room == START)[0]))
    assert dist[28 * 30 + 28] == 54 and count[28 * 30 + 28] == 2  # counts saturate at 2
    assert dist[1 * 30 + 5] == 4 and count[1 * 30 + 5] == 1
    assert shortest_distance(room) == 54 and len(solution_path(room)) == 55


# ------------------------------------------------------------------------------ symmetries
def test_symmetries_and_inverses(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze
    grid = cells.reshape(30, 30)
    expected = [grid, np.rot90(grid), np.rot90(grid, 2), np.rot90(grid, 3), np.fliplr(grid),
                np.flipud(grid), grid.T, np.rot90(grid, 2).T]
    for sym_id in range(8):
        sym = MazeSymmetry(sym_id)
        moved = sym.apply(cells)
        assert np.array_equal(moved, expected[sym_id].reshape(-1))
        assert np.array_equal(sym.invert(moved), cells)
        assert np.array_equal(MazeSymmetry(INVERSE[sym_id]).apply(moved), cells)
        assert TASK.verify(moved, sym.apply(answer))


def test_augment_keeps_labels_consistent(hard: list[tuple[str, str, int, str]]) -> None:
    inputs = TASK.to_tokens(np.stack([TASK.parse(r[0]) for r in hard]))
    labels = TASK.to_tokens(np.stack([TASK.parse(r[1]) for r in hard]))
    aug_in, aug_lab = TASK.augment_tokens(inputs, labels, np.random.default_rng(0))
    assert aug_in.shape == inputs.shape and aug_in.dtype == np.int64
    for x, y in zip(aug_in, aug_lab, strict=True):
        assert TASK.verify(TASK.from_tokens(x), TASK.from_tokens(y))
    assert not np.array_equal(aug_in, inputs)


def test_canonical_form(hard: list[tuple[str, str, int, str]]) -> None:
    cells = TASK.parse(hard[0][0])
    key, sym = TASK.canonical_form(cells)
    assert sym.apply(cells).tobytes() == key
    rng = np.random.default_rng(1)
    for _ in range(6):
        assert TASK.canonical_form(TASK.random_symmetry(rng).apply(cells))[0] == key
    keys = {TASK.canonical_form(TASK.parse(r[0]))[0] for r in hard}
    assert len(keys) == len(hard)


# ------------------------------------------------------------------------------- generator
def test_hard_mazes_have_unique_long_paths(hard: list[tuple[str, str, int, str]]) -> None:
    for puzzle, solution, steps, bucket in hard:
        cells = TASK.parse(puzzle)
        dist, count = bfs(cells, int(np.flatnonzero(cells == START)[0]))
        goal = int(np.flatnonzero(cells == GOAL)[0])
        assert steps > 110 and dist[goal] == steps and count[goal] == 1 and bucket == "hard"
        assert TASK.verify(cells, TASK.parse(solution))
        assert np.count_nonzero(TASK.parse(solution) == PATH) == steps - 1
        assert junctions(cells) >= 1


def test_easy_bucket() -> None:
    for _, _, steps, bucket in generate(4, "easy", seed=3, workers=1):
        assert 20 <= steps <= 60 and bucket == "easy"


def test_generation_is_deterministic_across_workers() -> None:
    assert generate(4, "hard", seed=5, workers=1) == generate(4, "hard", seed=5, workers=2)
    with pytest.raises(ValueError, match="unknown difficulty"):
        generate(1, "impossible", seed=0)


def test_csv_round_trip(tmp_path: Path, hard: list[tuple[str, str, int, str]]) -> None:
    path = tmp_path / "m.csv"
    assert write_csv(path, [row[:3] for row in hard]) == len(hard)
    assert [tuple(r) for r in read_csv(path)] == hard
    loaded = load_puzzle_csv(path, TASK)
    assert loaded.puzzles.shape == (len(hard), 900) and set(loaded.buckets) == {"hard"}


# ------------------------------------------------------------------------- committed sets
SETS = [("maze-hard-test.csv", "hard", 1000), ("maze-easy-test.csv", "easy", 200)]


@pytest.mark.parametrize(("name", "bucket", "count"), SETS)
def test_committed_sets(name: str, bucket: str, count: int) -> None:
    records = read_csv(DATA / name)
    assert len(records) == count and {r.bucket for r in records} == {bucket}
    assert (DATA / name).stat().st_size < 2_000_000
    for record in records[:25]:
        assert TASK.verify(TASK.parse(record.puzzle), TASK.parse(record.solution))


def test_committed_sets_unique_under_symmetry() -> None:
    keys = [TASK.canonical_form(TASK.parse(r.puzzle))[0]
            for name, _, _ in SETS for r in read_csv(DATA / name)]
    assert len(set(keys)) == len(keys) == 1200
