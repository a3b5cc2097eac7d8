"""The committed few-givens Sudoku test set: proper puzzles of 17-22 givens, bucketed by givens
and by whether an exact solver needs a guess.

    python -m training.sudoku_few_givens --seeds training/data/sudoku-17-seeds.txt \
        --seventeens 330 --per-count 100 --per-walked-count 160

17 givens is the fewest a proper Sudoku can have, and such puzzles are rare: a walk from random
grids does not reach them (`trm_core.tasks.sudoku_sparse`). So the 17-given bucket comes from a
file of known 17-given puzzles (`--seeds`, one 81-character puzzle per line, `#` comments;
`training/data/sudoku-17-seeds.txt` holds 387 entries of Gordon Royle's published collection of
17-clue puzzles), each shown under a random Sudoku symmetry. The 18-given bucket takes the
other seeds one given up (`one_given_more`: a solution cell revealed, then swaps until the
puzzle is minimal again), the 19-given bucket those 18s one given up again (a walk from a
random grid reaches 19 one time in four), and the 20-22 buckets come from clue-swap walks down
from freshly dug random grids (`walk_down`, one puzzle a walk). Every puzzle is unique up to
symmetry within the set and disjoint from the other committed test sets; `<out>.keys.gz` holds
the canonical keys, so training data can exclude the set with `--exclude` cheaply.

Columns: the usual `puzzle,solution,guesses,bucket` (bucket "17 givens, no guess", ...),
plus `givens` and `guessing` ("no guess" or "guesses") for `trm eval --buckets givens` and
`--buckets guessing`. "No guess" means naked and hidden singles alone solve it. Rows are in
the order of their puzzle's sha256, unrelated to bucket or source, so `--limit N` takes a fair
sample. Built with 2 processes in 14 minutes (815 s).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from training.datasets import canonical_key, excluded_keys, write_keys
from trm_core.tasks import sudoku_sparse
from trm_core.tasks.generation import parallel_map, write_rows
from trm_core.tasks.sudoku import SudokuSymmetry, format_cells, parse_puzzle
from trm_core.tasks.sudoku_generate import (
    CSV_FIELDS,
    count_guesses,
    dig,
    random_solution,
    write_csv,
)

log = logging.getLogger(__name__)

DATA = Path(__file__).parent / "data"
COMMITTED = ("sudoku-easy-test.csv", "sudoku-medium-test.csv", "sudoku-hard-test.csv",
             "sudoku-sparse-test.csv")
WALK_MOVES = 6_000  # a walk from a dug grid reaches 20 givens in about 3,000 moves (3 s)
POOL_MAX_GIVENS = 23
WALK_FLOOR = 20  # and 19 one time in four in 12,000, so 19s come from the 18s instead
GIVENS_MOVES = 3_000  # swap budget for one given more (4 s each; 3 in 10 seeds find none)
SEED_ROUNDS = 5
FIELDS = (*CSV_FIELDS, "givens", "guessing")


def read_seeds(path: Path) -> list[np.ndarray]:
    """The 17-given puzzles of a seeds file; ValueError naming a line that is not one."""
    seeds = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#")[0].split(",")[0].strip()
        if not text:
            continue
        try:
            puzzle = parse_puzzle(text)
        except ValueError as err:
            raise ValueError(f"{path}:{number}: {err}") from None
        if sudoku_sparse.only_solution(puzzle) is None:
            raise ValueError(f"{path}:{number}: not a proper puzzle (no single solution)")
        seeds.append(puzzle)
    return seeds


def row(puzzle: np.ndarray, solution: np.ndarray) -> tuple[str, str, int, str, int, str]:
    givens, guesses = int(np.count_nonzero(puzzle)), count_guesses(puzzle)
    guessing = "guesses" if guesses else "no guess"
    return (format_cells(puzzle), format_cells(solution), guesses,
            f"{givens} givens, {guessing}", givens, guessing)


def _given_more(job: tuple[bytes, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """One walk one given up from a minimal puzzle (as bytes): (puzzle, solution) or None."""
    cells, seed = job
    puzzle = np.frombuffer(cells, dtype=np.int8).copy()
    solution = _solution(puzzle)
    more = sudoku_sparse.one_given_more(puzzle, solution, np.random.default_rng(seed),
                                        GIVENS_MOVES)
    return None if more is None else (more, solution)


def _solution(puzzle: np.ndarray) -> np.ndarray:
    """The solution of a puzzle known to be proper (a seed, or a puzzle built from one)."""
    solution = sudoku_sparse.only_solution(puzzle)
    if solution is None:
        raise ValueError(f"not a proper puzzle: {format_cells(puzzle)}")
    return solution


def _walk(seed: int, floor: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """What a walk from a fresh grid down to `floor` givens holds (`walk_down`)."""
    rng = np.random.default_rng(seed)
    solution = random_solution(rng)
    return sudoku_sparse.walk_down(dig(solution, rng, 0), solution, rng, floor, WALK_MOVES)


def _walk_to(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The first puzzle of `target` givens a walk from a fresh grid holds, or None."""
    seed, target = job
    return _walk(seed, target).get(target)


def build(seeds: list[np.ndarray], wanted: dict[int, int], rng: np.random.Generator,
          exclude: set[bytes], seventeens: int, workers: int | None = None
          ) -> list[tuple[str, str, int, str, int, str]]:
    """Rows for each givens count in `wanted`, unique under symmetry and outside `exclude`.
    The walks run on `workers` processes, in rounds until each count is filled."""
    seen = set(exclude)
    rows: list[tuple[str, str, int, str, int, str]] = []
    counts: Counter[int] = Counter()

    def add(found: tuple[np.ndarray, np.ndarray] | None, shown: bool = True
            ) -> np.ndarray | None:
        """Keep a found puzzle (shown under a random symmetry) when its count still wants one
        and it is new up to symmetry; returns the puzzle kept."""
        if found is None:
            return None
        puzzle, solution = found
        if shown:  # a random symmetric image, so no bucket keeps its source's layout
            puzzle, solution = SudokuSymmetry.random(rng).apply(np.stack([puzzle, solution]))
        givens = int(np.count_nonzero(puzzle))
        key = canonical_key(format_cells(puzzle), "sudoku")
        if counts[givens] >= wanted.get(givens, 0) or key in seen:
            return None
        seen.add(key)
        counts[givens] += 1
        rows.append(row(puzzle, solution))
        return puzzle

    def fill(givens: int, sources: list[np.ndarray], tag: int) -> list[np.ndarray]:
        """Puzzles of `givens` one given up from `sources`, a walk per source and round."""
        made: list[np.ndarray] = []
        for turn in range(SEED_ROUNDS):
            if counts[givens] >= wanted.get(givens, 0):
                break
            jobs = [(source.tobytes(), tag * 1_000_003 + turn * 10_007 + i)
                    for i, source in enumerate(sources)]
            for found in parallel_map(_given_more, jobs, workers):
                kept = add(found)
                if kept is not None:
                    made.append(kept)
        log.info("%d givens: %d in %.0f s", givens, counts[givens], time.perf_counter() - started)
        return made

    started = time.perf_counter()
    seeds = [seeds[i] for i in rng.permutation(len(seeds))]
    for seed in seeds[:seventeens]:
        add((seed, _solution(seed)))
    eighteens = fill(18, seeds[seventeens:], 18)
    fill(19, eighteens, 19)
    while lacking := [g for g in wanted if g >= WALK_FLOOR and counts[g] < wanted[g]]:
        # One puzzle a walk, so no two puzzles share a walk.
        jobs = []
        for givens in lacking:
            extra = wanted[givens] - counts[givens]
            jobs += [(int(rng.integers(2**62)), givens) for _ in range(extra + extra // 10 + 1)]
        for found in parallel_map(_walk_to, jobs, workers):
            add(found, shown=False)
    log.info("done: %s in %.0f s", dict(sorted(counts.items())), time.perf_counter() - started)
    # In an order unrelated to bucket or source, so `trm eval --limit N` scores a fair sample.
    return sorted(rows, key=lambda r: hashlib.sha256(r[0].encode()).digest())


def _walk_rows(job: tuple[int, int]) -> list[tuple[str, str, int]]:
    """The puzzles of `POOL_MAX_GIVENS` givens or fewer that one walk from a fresh grid holds."""
    held = _walk(*job)
    return [(format_cells(puzzle), format_cells(grid), count_guesses(puzzle))
            for givens, (puzzle, grid) in sorted(held.items()) if givens <= POOL_MAX_GIVENS]


def build_pool(out: Path, walks: int, val: int, exclude: list[Path], seed: int,
               workers: int | None) -> dict[str, int]:
    """Training data for few givens: every puzzle of 23 givens or fewer that `walks` walks from
    fresh grids hold (about five a walk, 20-23 givens; a walk costs seconds, so a pool is built
    once and reused under symmetry augmentation), unique under symmetry and outside `exclude`;
    the last `val` walks' puzzles go to val.csv."""
    seen = excluded_keys(exclude, workers, "sudoku")
    jobs = [(seed * 1_000_003 + walk, WALK_FLOOR) for walk in range(walks)]
    splits: dict[str, list[tuple[str, str, int]]] = {"train": [], "val": []}
    for walk, rows in enumerate(parallel_map(_walk_rows, jobs, workers)):
        keys = [canonical_key(r[0], "sudoku") for r in rows]
        fresh = [r for r, key in zip(rows, keys, strict=True) if key not in seen]
        seen.update(keys)
        splits["val" if walk >= walks - val else "train"] += fresh
    out.mkdir(parents=True, exist_ok=True)
    return {split: write_csv(out / f"{split}.csv", rows) for split, rows in splits.items()}


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pool"]:
        pool_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=Path, required=True,
                        help="17-given puzzles, one 81-character puzzle per line")
    parser.add_argument("--out", type=Path, default=Path("training/data/sudoku-few-test.csv"))
    parser.add_argument("--seventeens", type=int, default=300,
                        help="seeds shown as 17-given puzzles; the rest seed the 18s")
    parser.add_argument("--per-count", type=int, default=100,
                        help="puzzles of 18 and of 19 givens")
    parser.add_argument("--per-walked-count", type=int, default=160,
                        help="puzzles of each count from 20 to 22 (walks are cheaper)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    args = parser.parse_args(argv)
    seeds = read_seeds(args.seeds)
    if len(seeds) <= args.seventeens:
        parser.error(f"{args.seeds} holds {len(seeds)} puzzles; --seventeens {args.seventeens} "
                     f"leaves none to seed the 18-given bucket")
    exclude = excluded_keys([DATA / name for name in COMMITTED if (DATA / name).exists()],
                             None, "sudoku")
    wanted = {17: args.seventeens, 18: args.per_count, 19: args.per_count,
              **{g: args.per_walked_count for g in range(20, 23)}}
    rows = build(seeds, wanted, np.random.default_rng(args.seed), exclude, args.seventeens,
                 args.workers or None)
    write_rows(args.out, FIELDS, rows)
    write_keys(args.out, "sudoku")
    print(f"{args.out}: {len(rows)} puzzles", dict(Counter(r[3] for r in rows)))


def pool_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.sudoku_few_givens pool",
                                     description=build_pool.__doc__)
    parser.add_argument("--out", type=Path, default=Path("data/sudoku-few-pool"))
    parser.add_argument("--walks", type=int, default=400)
    parser.add_argument("--val-walks", type=int, default=20)
    parser.add_argument("--exclude", type=Path, action="append", default=[])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=0, help="processes (0: all cores)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    written = build_pool(args.out, args.walks, args.val_walks, args.exclude, args.seed,
                         args.workers or None)
    print(f"{args.out}: {written} in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
