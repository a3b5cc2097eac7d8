"""The committed test sets: proper puzzles, each unique up to symmetry, and no puzzle of one set
a symmetric image of a puzzle of the other, so training data built with `--exclude` on them
never contains a test puzzle in disguise."""

from pathlib import Path

import pytest

from training.datasets import canonical_keys, splits_disjoint
from trm_core.tasks import get_task
from trm_core.tasks.sudoku_generate import read_csv, solve

DATA = Path(__file__).resolve().parents[2] / "training" / "data"
SETS = {"sudoku-easy-test.csv": ("easy", 1000), "sudoku-hard-test.csv": ("hard", 2000)}


@pytest.mark.parametrize("name", sorted(SETS))
def test_sets_are_unique_under_symmetry(name: str) -> None:
    bucket, count = SETS[name]
    records = read_csv(DATA / name)
    assert len(records) == count and {r.bucket for r in records} == {bucket}
    assert len(set(canonical_keys([r.puzzle for r in records], "sudoku", workers=2))) == count


def test_sets_are_disjoint_under_symmetry() -> None:
    assert splits_disjoint([DATA / name for name in sorted(SETS)], "sudoku", workers=2)


def test_hard_sample_has_unique_solutions() -> None:
    task = get_task("sudoku")
    for record in read_csv(DATA / "sudoku-hard-test.csv")[:40]:
        solutions, _ = solve(task.parse(record.puzzle), limit=2)
        assert len(solutions) == 1 and task.format(solutions[0]) == record.solution
