"""Mazes (Maze-Hard): parsing, encoding, rules, the dihedral symmetries and rendering.

A maze is a 30x30 grid of the characters `#` wall, ` ` open, `S` start, `G` goal and `o` path.
Cells are a flat (900,) int8 array in row-major order holding the codes 1..5 of those characters
in that order, which are also the model's tokens (0 is PAD and never a cell: a maze has no
blanks). The puzzle is the maze without a path; its answer is the same maze with one shortest
path from S to G drawn as `o`. Walls, S and G are the puzzle's givens: an answer keeps them
(`MazeTask.keep_givens`), so the model decides the open cells only.

Path length throughout is counted in steps (moves between neighbouring cells) from S to G, so a
path of L steps draws L - 1 `o` cells. Moves are up, down, left and right. Evaluation buckets
split the lengths at PATH_BUCKET_EDGES (see `path_bucket`).

The symmetry group is the 8 dihedral transforms of the square, numbered as the ARC builds number
them (numpy conventions, rot90 counter-clockwise): 0 identity, 1 rot90, 2 rot180, 3 rot270,
4 left-right flip, 5 up-down flip, 6 transpose, 7 anti-transpose.

The maze generator lives in `trm_core.tasks.maze_generate`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from trm_core.tasks.base import PuzzleError, Symmetry, Task, dihedral
from trm_core.tasks.generation import DatasetTools

SIZE = 30
N_CELLS = SIZE * SIZE
CHARS = "# SGo"
WALL, OPEN, START, GOAL, PATH = 1, 2, 3, 4, 5
_CODE_OF = {ch: code for code, ch in enumerate(CHARS, start=1)}
_BAD_TYPE = "expected 30 lines of 30 characters, a 900-character string or a 30x30 list, got {}"
_USE = "use '#' wall, ' ' open, 'S' start, 'G' goal ('o' only for a drawn path)"

# Inverse dihedral ids: rotations by 90 and 270 undo each other, the rest are involutions.
INVERSE = (0, 3, 2, 1, 4, 5, 6, 7)


def _neighbour_table() -> list[tuple[int, ...]]:
    """_NEIGHBOURS[pos]: the flat positions up, down, left and right of pos inside the grid."""
    table = []
    for pos in range(N_CELLS):
        r, c = divmod(pos, SIZE)
        near = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
        table.append(tuple(SIZE * i + j for i, j in near if 0 <= i < SIZE and 0 <= j < SIZE))
    return table


NEIGHBOURS = _neighbour_table()


# _PERMS[k][i]: the source position that output position i takes under transform k, so applying
# a transform to any (..., 900) array is one gather.
_PERMS = np.stack(
    [dihedral(np.arange(N_CELLS).reshape(SIZE, SIZE), k).reshape(-1) for k in range(8)]
).astype(np.intp)


# --------------------------------------------------------------------------------------- parsing
def parse_maze(raw: Any, allow_path: bool = False) -> np.ndarray:
    """A maze as cells (900,) int8; raises PuzzleError naming the exact problem.

    Accepts 30 lines of 30 characters (trailing newline and '\\r\\n' tolerated), one
    900-character string, or a 30x30 list of characters, codes 1..5 or 30-character strings.
    Needs exactly one S and one G connected by open cells. `o` cells are refused unless
    `allow_path`, and then they must be exactly one shortest path (a solved maze).
    """
    if isinstance(raw, str):
        cells, loc = _parse_string(raw), ("puzzle",)
    elif isinstance(raw, list | tuple) or (isinstance(raw, np.ndarray) and raw.ndim > 0):
        cells, loc = _parse_list(raw), ("grid",)
    else:
        raise PuzzleError(_BAD_TYPE.format(type(raw).__name__))
    _check_endpoints(cells, loc)
    if np.any(cells == PATH) and not (allow_path and is_solution(strip_path(cells), cells)):
        raise _path_error(cells, allow_path, loc)
    return cells


def _path_error(cells: np.ndarray, allow_path: bool, loc: tuple[str | int, ...]) -> PuzzleError:
    """The error for `o` cells in a maze to solve, or for a drawn path that is not a shortest."""
    where = [divmod(int(p), SIZE) for p in np.flatnonzero(cells == PATH)]
    if allow_path:
        message = f"the {len(where)} 'o' cells are not one shortest path from S to G"
    else:
        r, c = where[0]
        message = (f"path cells 'o' are already in the maze ({len(where)}, first at row {r + 1}, "
                   f"column {c + 1}); send the maze without its path")
    return PuzzleError(message, loc, where[:10])


def _parse_string(raw: str) -> np.ndarray:
    """Cells of 30 lines or one 900-character line; spaces are open cells, so nothing is
    stripped except one trailing newline."""
    text = raw.replace("\r\n", "\n")
    text = text[:-1] if text.endswith("\n") else text
    if "\n" in text:
        rows = text.split("\n")
        if len(rows) != SIZE:
            raise PuzzleError(f"expected 30 rows, got {len(rows)}", ("puzzle",))
        for r, row in enumerate(rows, start=1):
            if len(row) != SIZE:
                raise PuzzleError(f"row {r} has {len(row)} characters, expected 30", ("puzzle",))
        text = "".join(rows)
    elif len(text) != N_CELLS:
        raise PuzzleError(f"expected 900 cells, got {len(text)}", ("puzzle",))
    return np.array([_char_code(ch, pos) for pos, ch in enumerate(text)], dtype=np.int8)


def _char_code(ch: str, pos: int) -> int:
    """The code of one maze character at flat position `pos`."""
    code = _CODE_OF.get(ch)
    if code is None:
        r, c = divmod(pos, SIZE)
        raise PuzzleError(
            f"bad character {ch!r} at row {r + 1}, column {c + 1}; {_USE}", ("puzzle",), [(r, c)]
        )
    return code


def _parse_list(raw: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Cells of a 30x30 list (rows may be strings) or a flat list of 900 cells."""
    items = raw.tolist() if isinstance(raw, np.ndarray) else list(raw)
    if not any(isinstance(item, list | tuple | str) for item in items):
        if len(items) != N_CELLS:
            raise PuzzleError(f"expected 900 cells, got {len(items)}", ("grid",))
        rows = [items[i : i + SIZE] for i in range(0, N_CELLS, SIZE)]
    else:
        if len(items) != SIZE:
            raise PuzzleError(f"expected 30 rows, got {len(items)}", ("grid",))
        for r, row in enumerate(items, start=1):
            if not isinstance(row, list | tuple | str):
                raise PuzzleError(f"row {r} is {row!r}; expected a list of 30 cells", ("grid",))
            if len(row) != SIZE:
                raise PuzzleError(f"row {r} has {len(row)} cells, expected 30", ("grid",))
        rows = items
    values = [_cell_value(value, r, c) for r, row in enumerate(rows) for c, value in enumerate(row)]
    return np.array(values, dtype=np.int8)


def _cell_value(value: Any, r: int, c: int) -> int:
    """One list cell, a maze character or its code 1..5. Booleans are refused."""
    if isinstance(value, str) and value in _CODE_OF:
        return _CODE_OF[value]
    if isinstance(value, int | np.integer) and not isinstance(value, bool) and 1 <= value <= 5:
        return int(value)
    raise PuzzleError(
        f"cell (row {r + 1}, column {c + 1}) is {value!r}; {_USE}, or codes 1-5",
        ("grid",),
        [(r, c)],
    )


def _check_endpoints(cells: np.ndarray, loc: tuple[str | int, ...]) -> None:
    """Exactly one S and one G, joined by a route through non-wall cells."""
    for code, label in ((START, "S"), (GOAL, "G")):
        found = np.flatnonzero(cells == code)
        if len(found) != 1:
            where = [divmod(int(p), SIZE) for p in found[:10]]
            raise PuzzleError(f"expected exactly one {label}, found {len(found)}", loc, where)
    if shortest_distance(cells) is None:
        start, goal = _endpoint(cells, START), _endpoint(cells, GOAL)
        raise PuzzleError(
            "S and G are not connected: no route through open cells joins them",
            loc,
            [divmod(start, SIZE), divmod(goal, SIZE)],
        )


# ------------------------------------------------------------------------------------ search
def _endpoint(cells: np.ndarray, code: int) -> int:
    return int(np.flatnonzero(cells == code)[0])


def bfs(cells: np.ndarray, source: int) -> tuple[list[int], list[int]]:
    """Breadth-first search over non-wall cells from `source`: (distance, shortest-path count)
    per position, distance -1 where unreachable; counts saturate at 2, enough to tell unique."""
    walls = (np.asarray(cells).reshape(-1) == WALL).tolist()
    dist, count = [-1] * N_CELLS, [0] * N_CELLS
    dist[source], count[source] = 0, 1
    queue = deque([source])
    while queue:
        pos = queue.popleft()
        step, ways = dist[pos] + 1, count[pos]
        for near in NEIGHBOURS[pos]:
            if walls[near]:
                continue
            if dist[near] < 0:
                dist[near], count[near] = step, ways
                queue.append(near)
            elif dist[near] == step:
                count[near] = min(2, count[near] + ways)
    return dist, count


def shortest_distance(cells: np.ndarray) -> int | None:
    """Steps on a shortest route from S to G, None when they are not connected."""
    dist, _ = bfs(cells, _endpoint(cells, START))
    steps = dist[_endpoint(cells, GOAL)]
    return steps if steps >= 0 else None


def solution_path(cells: np.ndarray) -> list[int]:
    """Flat positions of one shortest path, S first and G last; empty when none exists. Ties
    go to the first neighbour in up, down, left, right order, so the result is deterministic."""
    flat = strip_path(cells)
    start, goal = _endpoint(flat, START), _endpoint(flat, GOAL)
    dist, _ = bfs(flat, start)
    if dist[goal] < 0:
        return []
    path = [goal]
    while path[-1] != start:
        here = path[-1]
        path.append(next(p for p in NEIGHBOURS[here] if dist[p] == dist[here] - 1))
    return path[::-1]


def solve(cells: np.ndarray) -> np.ndarray:
    """The maze with one shortest path drawn as `o` (see `solution_path`)."""
    answer = strip_path(cells)
    path = solution_path(answer)
    answer[path[1:-1]] = PATH
    return answer


def strip_path(cells: np.ndarray) -> np.ndarray:
    """A copy of the cells with every `o` turned back into an open cell."""
    flat = np.array(cells, dtype=np.int8).reshape(-1)
    flat[flat == PATH] = OPEN
    return flat


def path_cells(answer: np.ndarray) -> list[tuple[int, int]]:
    """The drawn path as (row, column) pairs from S towards G, 0-based. It follows `o` cells
    from S and stops at G, or where the path breaks or forks."""
    flat = np.asarray(answer).reshape(-1)
    on_path = (flat == PATH) | (flat == GOAL)
    if not np.any(flat == START):
        return []
    here = _endpoint(flat, START)
    route, seen = [here], {here}
    while flat[here] != GOAL:
        steps = [p for p in NEIGHBOURS[here] if on_path[p] and p not in seen]
        if len(steps) != 1:
            break
        here = steps[0]
        route.append(here)
        seen.add(here)
    return [divmod(p, SIZE) for p in route]


# ------------------------------------------------------------------------------------- rules
def is_solution(puzzle: np.ndarray, answer: np.ndarray) -> bool:
    """True iff `answer` is `puzzle` with exactly one shortest S-G path drawn as `o`: walls, S
    and G unchanged, `o` only on open cells, and the `o` cells plus S and G forming one simple
    path whose length in steps is the breadth-first distance. A shortest path has no shortcut
    between its cells, so each `o` then has exactly two path neighbours and S and G one."""
    p, a = np.asarray(puzzle).reshape(-1), np.asarray(answer).reshape(-1)
    if p.shape != (N_CELLS,) or a.shape != (N_CELLS,):
        return False
    base = strip_path(p)
    fixed = base != OPEN
    if np.any(a[fixed] != base[fixed]) or not np.all(np.isin(a[~fixed], (OPEN, PATH))):
        return False
    if np.count_nonzero(base == START) != 1 or np.count_nonzero(base == GOAL) != 1:
        return False
    steps = shortest_distance(base)
    members = np.flatnonzero((a == PATH) | (a == START) | (a == GOAL)).tolist()
    if steps is None or len(members) != steps + 1:
        return False
    on_path = set(members)
    for pos in members:
        degree = sum(near in on_path for near in NEIGHBOURS[pos])
        if degree != (1 if a[pos] != PATH else 2):
            return False
    # Degrees alone allow a separate loop of `o` cells; the path from S must reach them all.
    return len(path_cells(a)) == len(members)


# ----------------------------------------------------------------------------------- answers
# Upper bounds (inclusive, in steps) of the evaluation buckets: everything Maze-Hard calls easy
# (up to 110 steps), then roughly quartiles of the committed hard test set (111-267, median 116).
PATH_BUCKET_EDGES = (110, 114, 120, 140)


def drawn_path(answer: np.ndarray) -> tuple[list[tuple[int, int]], bool]:
    """The answer's path and whether it is complete. Complete: one S, one G, and every `o`
    cell on a single chain from S to G; the path is then that chain, S and G included, in
    order. Otherwise it is the `o` cells alone in row-major order."""
    flat = np.asarray(answer).reshape(-1)
    drawn = np.flatnonzero(flat == PATH)
    if np.count_nonzero(flat == START) == 1 and np.count_nonzero(flat == GOAL) == 1:
        route = path_cells(flat)
        if len(route) == len(drawn) + 2:  # only a chain that reached G can be this long
            return route, True
    return [divmod(int(p), SIZE) for p in drawn], False


def path_report(puzzle: np.ndarray, answer: np.ndarray) -> dict[str, Any]:
    """What a solve result says about a maze answer (JSON-ready): `path` as [row, column]
    pairs (see `drawn_path`), `path_complete`, `path_length` in steps (None unless complete),
    `shortest_length` of the puzzle in steps, and whether the answer `verifies`."""
    path, complete = drawn_path(answer)
    return {"path": [[int(r), int(c)] for r, c in path], "path_complete": complete,
            "path_length": len(path) - 1 if complete else None,
            "shortest_length": shortest_distance(strip_path(puzzle)),
            "verifies": is_solution(puzzle, answer)}


def path_bucket(solution: np.ndarray) -> str:
    """The evaluation bucket of a solved maze by its path length: "1-110", "111-114",
    "115-120", "121-140" or "141+" (names sort in length order as strings)."""
    steps = int(np.count_nonzero(np.asarray(solution) == PATH)) + 1
    low = 1
    for high in PATH_BUCKET_EDGES:
        if steps <= high:
            return f"{low}-{high}"
        low = high + 1
    return f"{low}+"


# -------------------------------------------------------------------------------------- text
def format_cells(cells: np.ndarray) -> str:
    """The 900-character line; a code with no character (0, PAD) shows as '?'."""
    flat = np.asarray(cells).reshape(-1).tolist()
    return "".join(CHARS[v - 1] if 1 <= v <= 5 else "?" for v in flat)


def render_cells(cells: np.ndarray) -> str:
    """30 lines of 30 characters."""
    line = format_cells(cells)
    return "\n".join(line[r * SIZE : (r + 1) * SIZE] for r in range(SIZE))


# -------------------------------------------------------------------------------- symmetries
class MazeSymmetry(Symmetry):
    """Dihedral transform `sym_id` (0..7, numbered as in the module docstring) of the grid."""

    def __init__(self, sym_id: int) -> None:
        if not 0 <= sym_id < 8:
            raise ValueError(f"dihedral id must be 0..7, got {sym_id}")
        self.sym_id = int(sym_id)

    @property
    def inverse(self) -> MazeSymmetry:
        return MazeSymmetry(INVERSE[self.sym_id])

    def apply(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells)[..., _PERMS[self.sym_id]]

    def invert(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells)[..., _PERMS[INVERSE[self.sym_id]]]

    def __repr__(self) -> str:
        return f"MazeSymmetry({self.sym_id})"


def canonical_form(cells: np.ndarray) -> tuple[bytes, MazeSymmetry]:
    """The lexicographically smallest of the 8 images' int8 bytes and the transform giving it."""
    images = np.asarray(cells, dtype=np.int8).reshape(-1)[_PERMS]
    keys = [image.tobytes() for image in images]
    best = min(range(8), key=keys.__getitem__)
    return keys[best], MazeSymmetry(best)


def augment_token_batch(
    inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One uniform random dihedral transform per row of (B, 900) token arrays, the same for
    input and label; tokens are not relabelled, so PAD stays PAD."""
    positions = _PERMS[rng.integers(0, 8, size=inputs.shape[0])]
    return (
        np.take_along_axis(inputs, positions, axis=1),
        np.take_along_axis(labels, positions, axis=1),
    )


# -------------------------------------------------------------------------------------- task
class MazeTask(Task):
    """30x30 mazes with a unique shortest path (Maze-Hard)."""

    name = "maze"
    seq_len = N_CELLS
    vocab_size = 6
    grid_shape = (SIZE, SIZE)
    puzzle_format = ("a 30x30 maze as 30 lines of 30 characters (or one 900-character line): "
                     "'#' wall, ' ' open, 'S' start, 'G' goal; no path drawn")
    answer_note = ("The answer draws one shortest path from S to G with 'o'; the result's "
                   "`path` lists it as [row, column] pairs, with `path_length` and the puzzle's "
                   "`shortest_length`.")

    # Generation and examples load on first use (the generator module imports this one).
    def dataset_tools(self) -> DatasetTools:
        from trm_core.tasks.maze_generate import TOOLS

        return TOOLS

    def examples(self) -> list[dict[str, Any]]:
        from trm_core.tasks.maze_generate import examples

        return examples()

    generates_examples = True

    def generate_example(self, difficulty: str, seed: int | None) -> dict[str, Any]:
        from trm_core.tasks.maze_generate import generate_example

        return generate_example(difficulty, seed)

    def parse(self, raw: Any) -> np.ndarray:
        return parse_maze(raw)

    def parse_solution(self, raw: Any) -> np.ndarray:
        return parse_maze(raw, allow_path=True)

    def scored_cells(self, puzzles: np.ndarray) -> np.ndarray:
        # Walls, S and G are copied from the puzzle; the open cells are where the path is decided.
        return np.asarray(puzzles) == OPEN

    def bucket_of(self, solution: np.ndarray) -> str:
        return path_bucket(solution)

    def extra_result(self, puzzle: np.ndarray, answer: np.ndarray) -> dict[str, Any]:
        return path_report(puzzle, answer)

    def extra_step(self, answer: np.ndarray) -> dict[str, Any]:
        path, complete = drawn_path(answer)
        return {"path_cells": int(np.count_nonzero(np.asarray(answer) == PATH)),
                "path_length": len(path) - 1 if complete else None}

    def to_tokens(self, cells: np.ndarray) -> np.ndarray:
        return np.asarray(cells).astype(np.int64)

    def from_tokens(self, tokens: np.ndarray) -> np.ndarray:
        t = np.asarray(tokens)
        return np.where((t >= 1) & (t <= 5), t, 0).astype(np.int8)

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        # Walls, S and G are the user's; the model decides the open cells only.
        return np.where(np.asarray(puzzle) != OPEN, puzzle, answer).astype(np.asarray(answer).dtype)

    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        return is_solution(puzzle, answer)

    def format(self, cells: np.ndarray) -> str:
        return format_cells(cells)

    def render(self, cells: np.ndarray) -> str:
        return render_cells(cells)

    def random_symmetry(self, rng: np.random.Generator) -> MazeSymmetry:
        return MazeSymmetry(int(rng.integers(0, 8)))

    def canonical_form(self, cells: np.ndarray) -> tuple[bytes, MazeSymmetry]:
        return canonical_form(cells)

    def augment_tokens(
        self, inputs: np.ndarray, labels: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        return augment_token_batch(inputs, labels, rng)
