"""Maze generation with a unique shortest path, difficulty measures, and the dataset CSV format.

A maze is carved on a 15x15 lattice of rooms placed every other cell of the 30x30 grid (the
lattice sits at a random offset of 0 or 1 per axis, so the spare line of wall falls on either
side). A randomized depth-first search carves a perfect maze, whose long corridors give long
paths; then a random fraction of the remaining walls between rooms is knocked out, so the maze
has loops and the shortest path is a real search problem, not the only route.

S is drawn uniformly from the open cells; one breadth-first search from S gives every cell's
distance and number of shortest paths, and G is drawn uniformly from the open cells whose
distance falls in the difficulty's range and whose shortest path is unique, so the label is the
only right answer. When no such cell exists, S and then the maze are drawn again.

Path length is measured in steps from S to G (the `o` count plus one). Maze-Hard's "shortest
path longer than 110" is read as more than 110 steps. Branching is measured as the junctions on
the path: path cells, S and G included, with three or more open neighbours.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from trm_core.tasks.generation import DatasetTools, generate_seeded, read_rows, write_rows
from trm_core.tasks.maze import (
    GOAL,
    N_CELLS,
    NEIGHBOURS,
    OPEN,
    SIZE,
    START,
    WALL,
    bfs,
    format_cells,
    solution_path,
    solve,
)

logger = logging.getLogger(__name__)

ROOMS = SIZE // 2  # rooms per lattice side
S_TRIES = 8  # S draws per carved maze before carving another


@dataclass(frozen=True)
class Difficulty:
    """A bucket: shortest-path length range in steps (inclusive) and the loop-making fraction
    of leftover walls between rooms to knock out."""

    min_steps: int
    max_steps: int
    min_loops: float
    max_loops: float


DIFFICULTIES = {
    # Paths a few passes of a convolutional model span: the first rung of a path-length
    # curriculum (training/configs/maze-conv-cpu.toml); no committed test set.
    "short": Difficulty(5, 19, 0.05, 0.20),
    "easy": Difficulty(20, 60, 0.05, 0.20),
    "medium": Difficulty(61, 110, 0.05, 0.15),
    "hard": Difficulty(111, N_CELLS, 0.03, 0.10),
}


def bucket_of(steps: int) -> str:
    """The bucket a path length falls in; "trivial" below the shortest range."""
    for name, spec in DIFFICULTIES.items():
        if spec.min_steps <= steps <= spec.max_steps:
            return name
    return "trivial"


# --------------------------------------------------------------------------------- carving
def carve(rng: np.random.Generator, loop_fraction: float) -> np.ndarray:
    """A 30x30 grid of walls and open cells (codes, no S or G): a depth-first perfect maze on
    the room lattice, then `loop_fraction` of the remaining room-to-room walls opened."""
    grid = np.full((SIZE, SIZE), WALL, dtype=np.int8)
    row_off, col_off = (int(v) for v in rng.integers(0, 2, size=2))
    visited = np.zeros((ROOMS, ROOMS), dtype=bool)
    start = (int(rng.integers(ROOMS)), int(rng.integers(ROOMS)))
    visited[start] = True
    stack = [start]
    grid[2 * start[0] + row_off, 2 * start[1] + col_off] = OPEN
    # One batch of random numbers for all choices: per-call numpy overhead dominates otherwise.
    draws = iter(rng.random(4 * ROOMS * ROOMS).tolist())
    while stack:
        r, c = stack[-1]
        fresh = [
            (r + dr, c + dc)
            for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))
            if 0 <= r + dr < ROOMS and 0 <= c + dc < ROOMS and not visited[r + dr, c + dc]
        ]
        if not fresh:
            stack.pop()
            continue
        nr, nc = fresh[int(next(draws, 0.0) * len(fresh))]
        visited[nr, nc] = True
        grid[r + nr + row_off, c + nc + col_off] = OPEN  # the wall between the two rooms
        grid[2 * nr + row_off, 2 * nc + col_off] = OPEN
        stack.append((nr, nc))
    _open_loops(grid, rng, loop_fraction, row_off, col_off)
    return grid.reshape(-1)


def _open_loops(
    grid: np.ndarray, rng: np.random.Generator, fraction: float, row_off: int, col_off: int
) -> None:
    """Open each still-closed wall between two neighbouring rooms with probability `fraction`."""
    rooms, inner = range(ROOMS), range(ROOMS - 1)
    between = [(2 * r + 1 + row_off, 2 * c + col_off) for r in inner for c in rooms]
    between += [(2 * r + row_off, 2 * c + 1 + col_off) for r in rooms for c in inner]
    closed = [cell for cell in between if grid[cell] == WALL]
    for keep, cell in zip(rng.random(len(closed)) >= fraction, closed, strict=True):
        if not keep:
            grid[cell] = OPEN


# ------------------------------------------------------------------------------- measuring
def junctions(maze: np.ndarray) -> int:
    """Cells on the (first) shortest path, S and G included, with three or more open
    neighbours: the places a walker must choose."""
    flat = np.asarray(maze).reshape(-1)
    open_cells = flat != WALL
    return sum(
        sum(bool(open_cells[n]) for n in NEIGHBOURS[pos]) >= 3 for pos in solution_path(flat)
    )


# ------------------------------------------------------------------------------ generation
def generate_maze(rng: np.random.Generator, spec: Difficulty, max_carves: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """One maze whose unique shortest path has `spec`'s length: (maze, answer, steps). With
    `max_carves`, raises RuntimeError after carving that many mazes without a fit (a bound on
    time for callers that answer requests; a carve with its S draws takes a few ms)."""
    carves = 0
    while max_carves is None or carves < max_carves:
        carves += 1
        grid = carve(rng, float(rng.uniform(spec.min_loops, spec.max_loops)))
        open_cells = np.flatnonzero(grid == OPEN)
        for _ in range(S_TRIES):
            start = int(rng.choice(open_cells))
            dist, count = bfs(grid, start)
            d, ways = np.array(dist), np.array(count)
            goals = np.flatnonzero((d >= spec.min_steps) & (d <= spec.max_steps) & (ways == 1))
            if len(goals):
                goal = int(rng.choice(goals))
                maze = grid.copy()
                maze[start], maze[goal] = START, GOAL
                return maze, solve(maze), int(d[goal])
    raise RuntimeError(f"no maze with a unique {spec.min_steps}-{spec.max_steps} step path in "
                       f"{max_carves} tries")


def _generate_one(job: tuple[int, int, str]) -> tuple[str, str, int, str]:
    """Maze `index` of a run: seeded from (seed, index) alone, so any worker makes the same."""
    seed, index, difficulty = job
    maze, answer, steps = generate_maze(
        np.random.default_rng([seed, index]), DIFFICULTIES[difficulty]
    )
    return format_cells(maze), format_cells(answer), steps, difficulty


def generate(
    n: int, difficulty: str, seed: int, workers: int | None = None
) -> list[tuple[str, str, int, str]]:
    """`n` mazes of a named difficulty as (maze, solution, steps, bucket), 900-character strings,
    in a process pool of `workers` (default: all cores). The result depends only on
    (n, difficulty, seed); maze i is drawn from np.random.default_rng([seed, i]), so `seed` must
    be non-negative."""
    if difficulty not in DIFFICULTIES:
        raise ValueError(
            f"unknown difficulty {difficulty!r}; choose from {', '.join(DIFFICULTIES)}"
        )
    return generate_seeded(_generate_one, n, difficulty, seed, workers, noun="mazes")


# ------------------------------------------------------------------------------------- CSV
# `puzzle` and `solution` lead, as in the Sudoku files, so `trm_core.data.load_puzzle_csv`
# reads maze CSVs unchanged.
CSV_FIELDS = ("puzzle", "solution", "path_length", "bucket")


class MazeRecord(NamedTuple):
    """One dataset row: 900-character maze and solution, path length in steps, bucket."""

    puzzle: str
    solution: str
    path_length: int
    bucket: str


def write_csv(path: str | Path, rows: Iterable[Sequence[str | int]]) -> int:
    """Write rows (maze, solution, path_length[, bucket]) under the CSV_FIELDS header, filling
    in a missing bucket with `bucket_of`; returns how many rows were written."""

    def complete(row: Sequence[str | int]) -> tuple[str, str, int, str]:
        steps = int(row[2])
        return str(row[0]), str(row[1]), steps, str(row[3]) if len(row) > 3 else bucket_of(steps)

    return write_rows(path, CSV_FIELDS, map(complete, rows))


def read_csv(path: str | Path) -> list[MazeRecord]:
    """Rows of a file written by `write_csv`; raises ValueError when a column is missing."""
    return [MazeRecord(row["puzzle"], row["solution"], int(row["path_length"]), row["bucket"])
            for row in read_rows(path, CSV_FIELDS)]


TOOLS = DatasetTools(generate, write_csv, read_csv, "the 8 rotations and reflections")

# ------------------------------------------------------------------------------- examples
# A carve with its S draws takes a few ms; 300 bound an example request to about a second.
MAX_CARVES = 300
# The committed test sets (absent from an installed wheel: then only generation is offered).
TEST_SETS = Path(__file__).resolve().parents[2] / "training" / "data"
EXAMPLES_PER_SET = 3


@functools.cache
def examples() -> list[dict[str, Any]]:
    """The first mazes of each committed test set."""
    found: list[dict[str, Any]] = []
    for difficulty in ("easy", "hard"):
        path = TEST_SETS / f"maze-{difficulty}-test.csv"
        if not path.exists():
            continue
        for i, row in enumerate(read_csv(path)[:EXAMPLES_PER_SET], start=1):
            found.append({"name": f"held-out {difficulty} #{i} ({row.path_length} steps)",
                          "puzzle": row.puzzle, "solution": row.solution,
                          "path_length": row.path_length, "bucket": row.bucket})
    return found


def generate_example(difficulty: str, seed: int | None) -> dict[str, Any]:
    """A fresh maze of `difficulty` with its unique shortest path; RuntimeError when
    MAX_CARVES carves found none."""
    puzzle, solution, steps = generate_maze(np.random.default_rng(seed), DIFFICULTIES[difficulty],
                                            max_carves=MAX_CARVES)
    return {"difficulty": difficulty, "puzzle": format_cells(puzzle),
            "solution": format_cells(solution), "path_length": steps,
            "junctions": junctions(puzzle), "seed": seed}
