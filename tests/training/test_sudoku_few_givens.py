"""The few-givens test set and its builder: walks that keep a puzzle of each count, one given
more on a 17, the committed set's buckets and disjointness, and evaluation grouped by any column
of a file."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from training import sudoku_few_givens as few_givens
from training.datasets import stored_keys
from trm_core.data import load_puzzle_csv
from trm_core.tasks import get_task, sudoku_native
from trm_core.tasks.sudoku import parse_puzzle
from trm_core.tasks.sudoku_generate import count_guesses, dig, random_solution
from trm_core.tasks.sudoku_sparse import is_minimal, is_unique, one_given_more, walk_down

DATA = Path(__file__).resolve().parents[2] / "training" / "data"
FEW = DATA / "sudoku-few-test.csv"
# A 17-given puzzle from Gordon Royle's published collection (its first entry).
SEVENTEEN = ("000000010400000000020000000000050407008000300001090000300400200050100000000806000")
TASK = get_task("sudoku")


def test_a_walk_keeps_the_first_puzzle_of_each_count_it_passes() -> None:
    rng = np.random.default_rng(3)
    solution = random_solution(rng)
    start = dig(solution, rng, 0)
    held = walk_down(start, solution, rng, floor=22, max_moves=2000)
    assert max(held) == np.count_nonzero(start) and min(held) <= 22
    for givens, (puzzle, grid) in held.items():
        assert np.count_nonzero(puzzle) == givens and is_unique(puzzle)
        shown = np.flatnonzero(puzzle)
        assert (puzzle[shown] == grid[shown]).all()


def test_one_given_more_on_a_17_is_a_minimal_18_of_the_same_grid() -> None:
    seed = parse_puzzle(SEVENTEEN)
    count, solution = sudoku_native.count_solutions(seed, 2, 10**6)
    assert count == 1 and is_minimal(seed)
    more = one_given_more(seed, solution, np.random.default_rng(0), max_moves=3000)
    assert more is not None
    assert np.count_nonzero(more) == 18 and is_unique(more) and is_minimal(more)
    shown = np.flatnonzero(more)
    assert (more[shown] == solution[shown]).all()


def test_build_fills_each_count_once_up_to_symmetry(tmp_path: Path) -> None:
    seeds = tmp_path / "seeds.txt"
    seeds.write_text(f"{SEVENTEEN}\n{'0' * 81}\n")
    with pytest.raises(ValueError, match="seeds.txt:2: not a proper puzzle"):
        few_givens.read_seeds(seeds)
    seeds.write_text(f"{SEVENTEEN}\n" * 3)
    rows = few_givens.build(few_givens.read_seeds(seeds), {17: 2, 18: 1, 22: 1},
                            np.random.default_rng(1), set(), seventeens=2)
    # The three seeds are one puzzle, so the 17-given bucket keeps one image of it.
    assert Counter(r[4] for r in rows) == {17: 1, 18: 1, 22: 1}
    for puzzle, solution, guesses, bucket, givens, guessing in rows:
        cells = parse_puzzle(puzzle)
        assert np.count_nonzero(cells) == givens and is_unique(cells)
        assert TASK.verify(cells, parse_puzzle(solution))
        assert guesses == count_guesses(cells)
        assert bucket == f"{givens} givens, {guessing}"


def test_the_committed_set_holds_17_to_22_givens_bucketed() -> None:
    with FEW.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 1000
    by_givens = Counter(int(r["givens"]) for r in rows)
    assert sorted(by_givens) == list(range(17, 23)) and min(by_givens.values()) >= 100
    for r in rows[::25]:
        cells = parse_puzzle(r["puzzle"])
        assert np.count_nonzero(cells) == int(r["givens"])
        count, solution = sudoku_native.count_solutions(cells, 2, 10**7)
        assert count == 1 and TASK.format(solution) == r["solution"]
        assert (r["guessing"] == "no guess") == (count_guesses(cells) == 0)
    keys = stored_keys(FEW, "sudoku")
    assert keys is not None and len(set(keys)) == len(rows)
    for other in ("easy", "medium", "hard", "sparse"):
        assert not set(keys) & set(stored_keys(DATA / f"sudoku-{other}-test.csv", "sudoku") or [])


def test_evaluation_groups_by_any_column_of_the_file() -> None:
    assert set(load_puzzle_csv(FEW, TASK, "givens").buckets) == {str(g) for g in range(17, 23)}
    assert set(load_puzzle_csv(FEW, TASK, "guessing").buckets) == {"no guess", "guesses"}
    assert "17 givens, no guess" in set(load_puzzle_csv(FEW, TASK).buckets)
    with pytest.raises(ValueError, match="no rating column to group by"):
        load_puzzle_csv(FEW, TASK, "rating")
