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
    drawn_path,
    format_cells,
    parse_maze,
    path_bucket,
    path_cells,
    path_report,
    render_cells,
    shortest_distance,
    solution_path,
    solve,
)
from trm_core.tasks.maze_generate import (
    DIFFICULTIES,
    Difficulty,
    generate,
    generate_maze,
    junctions,
    read_csv,
    write_csv,
)

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
    return TASK.parse(hard[0][0]), TASK.parse_solution(hard[0][1])


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
    with pytest.raises(PuzzleError, match="path cells 'o' are already in the maze"):
        TASK.parse(answer)  # a maze to solve comes without its path
    assert np.array_equal(TASK.parse_solution(format_cells(answer)), answer)
    broken = answer.copy()
    broken[np.flatnonzero(answer == PATH)[3]] = OPEN
    with pytest.raises(PuzzleError, match="not one shortest path"):
        TASK.parse_solution(broken)


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


# --------------------------------------------------------------------------------- answers
def test_path_report_of_a_solution(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze
    report = path_report(cells, answer)
    steps = shortest_distance(cells)
    assert report["path_complete"] and report["verifies"]
    assert report["path_length"] == report["shortest_length"] == steps
    path = report["path"]
    start, goal = ([*divmod(int(np.flatnonzero(cells == code)[0]), 30)] for code in (START, GOAL))
    assert len(path) == steps + 1 and path[0] == start and path[-1] == goal
    moves = zip(path, path[1:], strict=False)
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in moves)
    assert TASK.extra_result(cells, answer) == report
    assert TASK.extra_step(answer) == {"path_cells": steps - 1, "path_length": steps}


def test_path_report_of_broken_and_longer_paths(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze
    drawn = np.flatnonzero(answer == PATH)
    broken = answer.copy()
    broken[drawn[5]] = OPEN
    path, complete = drawn_path(broken)
    assert not complete and path == sorted(divmod(int(p), 30) for p in drawn if p != drawn[5])
    report = path_report(cells, broken)
    assert report["path_length"] is None and not report["verifies"]
    assert report["shortest_length"] == shortest_distance(cells)
    assert TASK.extra_step(broken) == {"path_cells": len(drawn) - 1, "path_length": None}
    assert drawn_path(cells) == ([], False)  # nothing drawn, S and G apart
    no_start = answer.copy()
    no_start[no_start == START] = OPEN
    assert drawn_path(no_start)[1] is False
    room = open_room()  # a complete path that is not the shortest: complete, does not verify
    room[room == GOAL] = OPEN
    room[35] = GOAL
    detour = room.copy()
    detour[[61, 62, 63, 64, 65]] = PATH
    report = path_report(room, detour)
    assert report["path_complete"] and report["path_length"] == 6
    assert report["shortest_length"] == 4 and not report["verifies"]
    assert report["path"][0] == [1, 1] and report["path"][-1] == [1, 5]


def test_path_buckets_and_scored_cells(maze: tuple[np.ndarray, np.ndarray]) -> None:
    cells, answer = maze

    def with_steps(steps: int) -> np.ndarray:
        fake = np.full(900, OPEN, dtype=np.int8)
        fake[: steps - 1] = PATH
        return fake

    names = [path_bucket(with_steps(s)) for s in (20, 110, 111, 114, 115, 120, 121, 140, 141, 267)]
    assert names == ["1-110", "1-110", "111-114", "111-114", "115-120", "115-120", "121-140",
                     "121-140", "141+", "141+"]
    assert names == sorted(names)  # string order is length order
    assert TASK.bucket_of(answer) == path_bucket(answer)
    assert np.array_equal(TASK.scored_cells(cells), cells == OPEN)
    assert np.array_equal(get_task("sudoku").scored_cells(np.array([0, 3, 0])), [True, False, True])


def test_generation_with_a_bound_gives_up() -> None:
    impossible = Difficulty(800, 900, 0.0, 0.0)
    with pytest.raises(RuntimeError, match="no maze .* in 3 tries"):
        generate_maze(np.random.default_rng(0), impossible, max_carves=3)
    maze, answer, steps = generate_maze(np.random.default_rng(0), DIFFICULTIES["easy"], 50)
    assert TASK.verify(maze, answer) and 20 <= steps <= 60


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
    labels = TASK.to_tokens(np.stack([TASK.parse_solution(r[1]) for r in hard]))
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
        assert TASK.verify(cells, TASK.parse_solution(solution))
        assert np.count_nonzero(TASK.parse_solution(solution) == PATH) == steps - 1
        assert junctions(cells) >= 1


def test_easy_bucket() -> None:
    for _, _, steps, bucket in generate(4, "easy", seed=3, workers=1):
        assert 20 <= steps <= 60 and bucket == "easy"


def test_short_bucket_for_a_curriculum() -> None:
    for _, _, steps, bucket in generate(4, "short", seed=3, workers=1):
        assert 5 <= steps <= 19 and bucket == "short"


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
        assert TASK.verify(TASK.parse(record.puzzle), TASK.parse_solution(record.solution))


def test_committed_sets_unique_under_symmetry() -> None:
    keys = [TASK.canonical_form(TASK.parse(r.puzzle))[0]
            for name, _, _ in SETS for r in read_csv(DATA / name)]
    assert len(set(keys)) == len(keys) == 1200
