"""Stored canonical keys of the committed test sets: current (their header names the CSV's
sha256), equal to the keys computed from the puzzles, and ignored once the CSV changes."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets import canonical_keys, excluded_keys, stored_keys, write_keys

DATA = Path(__file__).resolve().parents[2] / "training" / "data"
COMMITTED = sorted(DATA.glob("sudoku-*-test.csv"))


@pytest.mark.parametrize("csv_path", COMMITTED, ids=lambda p: p.stem)
def test_committed_test_sets_carry_current_keys(csv_path: Path) -> None:
    stored = stored_keys(csv_path, "sudoku")
    assert stored is not None, f"run write_keys for {csv_path.name} (see training/datasets.py)"
    puzzles = [line.split(",")[0] for line in csv_path.read_text().splitlines()[1:]]
    assert len(stored) == len(puzzles)
    assert stored[:25] == canonical_keys(puzzles[:25], "sudoku", 1)


def test_keys_of_a_changed_csv_are_recomputed(tmp_path: Path) -> None:
    copy = tmp_path / "set.csv"
    lines = COMMITTED[0].read_text().splitlines()[:6]
    copy.write_text("\n".join(lines) + "\n")
    write_keys(copy, "sudoku", workers=1)
    assert stored_keys(copy, "sudoku") is not None
    copy.write_text("\n".join(lines[:4]) + "\n")  # the CSV changed after its keys were stored
    assert stored_keys(copy, "sudoku") is None
    expected = set(canonical_keys([line.split(",")[0] for line in lines[1:4]], "sudoku", 1))
    assert excluded_keys([copy], 1, "sudoku") == expected
