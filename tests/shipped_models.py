"""The shipped checkpoints, one model at a time.

Tests that need *a* real trained Sudoku model serve the shipped tiny one alone: it is the
fastest, and what they assert (model ids, step counts) stays fixed whichever model is the
shipped default. Tests of the shipped folder itself (tests/app/test_shipped_checkpoint.py) serve
SHIPPED as it is."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints"
TINY = SHIPPED / "sudoku" / "trm-sudoku-tiny"
TINY_ID = "trm-sudoku-tiny@1"
SMALL = SHIPPED / "sudoku" / "trm-sudoku-small"  # the default
SMALL_ID = "trm-sudoku-small@1"


@functools.cache
def alone(stem: Path) -> Path:
    """A checkpoint folder holding only the shipped model `stem` and its sidecars (made once
    per test process, removed at exit)."""
    root = Path(tempfile.mkdtemp(prefix=f"{stem.name}-"))
    atexit.register(shutil.rmtree, root, True)
    folder = root / stem.parent.name
    folder.mkdir()
    for path in stem.parent.glob(f"{stem.name}.*"):
        shutil.copy(path, folder / path.name)
    return root


def tiny_only() -> Path:
    """A checkpoint folder holding only the shipped tiny Sudoku model."""
    return alone(TINY)


EASY_CSV = ROOT / "training" / "data" / "sudoku-easy-test.csv"


def easy_puzzles(count: int) -> list[str]:
    lines = EASY_CSV.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("puzzle") if "puzzle" in header else 0
    # Row 1 is one of the few held-out puzzles the shipped model gets wrong; start after it.
    return [line.split(",")[column] for line in lines[2:count + 2]]
