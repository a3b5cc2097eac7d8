"""A compiled Sudoku solution counter for the generators' uniqueness checks, where the pure
Python search (`sudoku_generate.solve`) is the bottleneck: the few-givens walk
(`sudoku_sparse`) checks uniqueness after every move, thousands of times per puzzle.

The C source below is compiled once per machine with the system's C compiler into the user's
cache folder and loaded with ctypes (standard library only). Where no compiler is found,
`available()` is False and callers keep the Python search, which answers the same questions.
The counter: bitmask candidates per row, column and box, the cell with fewest candidates first,
plain backtracking; a guess budget bounds pathological puzzles as `max_guesses` does there.
Each call keeps its state on its own stack, so threads may call it at once (ctypes lets go of
the GIL during the call).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOURCE = r"""
#include <stdint.h>
#include <string.h>

/* All of one count's state, on the caller's stack: calls from several threads never meet. */
typedef struct {
    int8_t grid[81], first[81];
    uint16_t rows[9], cols[9], boxes[9], banned[81];
    int found, wanted;
    long guesses, budget;
} Search;

static int box_of(int i) { return (i / 27) * 3 + (i % 9) / 3; }

static int search(Search *s) {
    int best = -1, best_n = 10;
    uint16_t best_m = 0;
    for (int i = 0; i < 81; i++) {
        if (s->grid[i]) continue;
        uint16_t m = (uint16_t)(~(s->rows[i / 9] | s->cols[i % 9] | s->boxes[box_of(i)]
                                  | s->banned[i]) & 0x3FE);
        int n = __builtin_popcount(m);
        if (n < best_n) {
            best = i; best_n = n; best_m = m;
            if (n <= 1) break;
        }
    }
    if (best < 0) {
        if (s->found == 0) memcpy(s->first, s->grid, 81);
        s->found++;
        return s->found >= s->wanted;
    }
    if (best_n == 0) return 0;
    if (best_n > 1) {
        s->guesses += best_n - 1;
        if (s->budget >= 0 && s->guesses > s->budget) return -1;
    }
    int r = best / 9, c = best % 9, b = box_of(best);
    while (best_m) {
        uint16_t bit = best_m & (uint16_t)(-best_m);
        best_m ^= bit;
        s->grid[best] = (int8_t)__builtin_ctz(bit);
        s->rows[r] |= bit; s->cols[c] |= bit; s->boxes[b] |= bit;
        int result = search(s);
        s->grid[best] = 0;
        s->rows[r] &= (uint16_t)~bit; s->cols[c] &= (uint16_t)~bit;
        s->boxes[b] &= (uint16_t)~bit;
        if (result) return result;
    }
    return 0;
}

/* Solutions of `puzzle` (81 cells, 0 blank) up to `limit`, with `ban_digit` forbidden at
   `ban_cell` (-1: none); the first found goes to `solution`. Returns the count, or -1 when
   the search made more than `max_guesses` guesses (-1: no budget). */
int count_solutions(const int8_t *puzzle, int limit, long max_guesses, int ban_cell,
                    int ban_digit, int8_t *solution) {
    Search s;
    memset(&s, 0, sizeof s);
    for (int i = 0; i < 81; i++) {
        int d = puzzle[i];
        s.grid[i] = (int8_t)d;
        if (!d) continue;
        uint16_t bit = (uint16_t)(1u << d);
        if ((s.rows[i / 9] | s.cols[i % 9] | s.boxes[box_of(i)]) & bit) return 0;
        s.rows[i / 9] |= bit; s.cols[i % 9] |= bit; s.boxes[box_of(i)] |= bit;
    }
    if (ban_cell >= 0) s.banned[ban_cell] = (uint16_t)(1u << ban_digit);
    s.wanted = limit; s.budget = max_guesses;
    int result = search(&s);
    if (result < 0) return -1;
    if (s.found) memcpy(solution, s.first, 81);
    return s.found;
}
"""


class BudgetExceeded(RuntimeError):
    """The count made more guesses than allowed."""


@functools.cache
def _library() -> ctypes.CDLL | None:
    """The compiled counter, built on first use; None where no C compiler is found."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        log.info("no C compiler: Sudoku uniqueness checks use the Python search")
        return None
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:16]
    folder = Path.home() / ".cache" / "trm-serve"
    target = folder / f"sudoku_count_{digest}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as scratch:
            source, built = Path(scratch) / "count.c", Path(scratch) / "count.so"
            source.write_text(SOURCE)
            made = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(built),
                                   str(source)], capture_output=True, text=True, check=False)
            if made.returncode != 0:
                log.warning("compiling the Sudoku counter failed, using the Python search: %s",
                            made.stderr.strip()[:500])
                return None
            built.replace(target)  # atomic: concurrent builders each leave a whole file
    library = ctypes.CDLL(str(target))
    library.count_solutions.restype = ctypes.c_int
    library.count_solutions.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long,
                                        ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return library


def available() -> bool:
    """Whether the compiled counter can be used on this machine."""
    return _library() is not None


def count_solutions(puzzle: np.ndarray, limit: int = 2, max_guesses: int | None = None,
                    ban: tuple[int, int] | None = None) -> tuple[int, np.ndarray | None]:
    """(solutions found up to `limit`, the first of them or None) for cells (81,), with
    `ban = (cell, digit)` forbidding one digit at one cell; BudgetExceeded past `max_guesses`.
    Call only when `available()`."""
    library = _library()
    assert library is not None, "check available() first"
    cells = np.ascontiguousarray(np.asarray(puzzle, dtype=np.int8).reshape(81))
    solution = np.zeros(81, dtype=np.int8)
    cell, digit = ban if ban is not None else (-1, 0)
    count = library.count_solutions(cells.ctypes.data, limit,
                                    -1 if max_guesses is None else max_guesses, cell, digit,
                                    solution.ctypes.data)
    if count < 0:
        raise BudgetExceeded(f"more than {max_guesses} guesses")
    return count, (solution if count else None)
