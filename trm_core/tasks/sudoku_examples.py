"""Sudoku examples to try (the README's, easy ones from the committed held-out test set, and two
worth watching) and one fresh puzzle of a difficulty on request: `SudokuTask.examples` and
`SudokuTask.generate_example`."""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_core.tasks.sudoku import format_cells
from trm_core.tasks.sudoku_generate import generate_of_difficulty

# Hard puzzles take ~50 ms on one core; 200 attempts bound the rare unlucky draw.
MAX_ATTEMPTS = 200

EXAMPLES: list[dict[str, Any]] = [
    {"name": "README example (32 givens)",
     "puzzle": ("..3.2.6..9..3.5..1..18.64....81.29..7...."
               "...8..67.82....26.95..8..2.3..9..5.1.3.."),
     "solution": ("48392165796734582125187649354813297672956"
                 "4138136798245372689514814253769695417382")},
    {"name": "held-out easy #1",
     "puzzle": (".53..6.2.1.653..4.8..1.23.....6.45.22.5.7"
               "94.84.82.1.3.5....8..4.84.236516...1...3"),
     "solution": ("95384612712653784984719236531968457226537"
                 "9418478251936531768294784923651692415783")},
    {"name": "held-out easy #2",
     "puzzle": ("1..48.9.6.6.....358.25..4..4.9..85.3.16.."
               "...952.63.14763.1..7982...95.1..4.8.6..2"),
     "solution": ("15348792676492183589256347147921856331675"
                 "4289528639147635142798287395614941876352")},
    {"name": "held-out easy #3",
     "puzzle": (".6.3..54..13.679..4.25...363.1.46.7...679"
               "3415...8..6...259....4694.7.35.8.7.5...1"),
     "solution": ("96832154751346798247258913635124687928679"
                 "3415749815623125938764694172358837654291")},
    {"name": "classic (30 givens, medium)",
     "puzzle": ("53..7....6..195....98....6.8...6...34..8."
               "3..17...2...6.6....28....419..5....8..79"),
     "solution": ("53467891267219534819834256785976142342685"
                 "3791713924856961537284287419635345286179")},
    # Harder than anything the shipped model trained on: wrong cells for several steps, then a
    # verified answer, which makes it the one to watch.
    {"name": "generated medium (28 givens, seed 18)",
     "puzzle": (".....2....26..87.4.8.....2..57....8.4..75"
               "19.......3.4..9.56.8.....3.42..6...89..."),
     "solution": ("34917265852693871478164532995742618343875"
                 "1962162893547294567831875314296613289475")},
]


def generate_example(difficulty: str, seed: int | None) -> dict[str, Any]:
    """A fresh puzzle of `difficulty` with its unique solution, the givens and the guesses
    the exact solver needed; RuntimeError after MAX_ATTEMPTS tries."""
    puzzle, solution, guesses = generate_of_difficulty(
        np.random.default_rng(seed), difficulty, max_attempts=MAX_ATTEMPTS)
    return {"difficulty": difficulty, "puzzle": format_cells(puzzle),
            "solution": format_cells(solution), "givens": int(np.count_nonzero(puzzle)),
            "guesses": guesses, "seed": seed}
