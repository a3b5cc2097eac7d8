"""The README's few-givens tables from `trm eval --json` reports on
`training/data/sudoku-few-test.csv`, whose buckets read "17 givens, no guess": each report's
buckets pooled by givens and by guessing (exact shares, weighted by puzzle counts).

    python benchmarks/few_givens_table.py benchmarks/results/sudoku-few/*.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

POOLED = ("puzzles", "verified", "first_pass_verified", "mean_model_steps")


def pooled(buckets: dict[str, dict[str, Any]], part: int) -> dict[str, dict[str, float]]:
    """Buckets "G givens, X" pooled by part 0 (givens) or 1 (guessing), puzzle-weighted."""
    groups: dict[str, dict[str, float]] = {}
    for name, summary in buckets.items():
        key = name.split(", ")[part]
        group = groups.setdefault(key, dict.fromkeys(POOLED, 0.0))
        count = summary["puzzles"]
        group["puzzles"] += count
        for field in POOLED[1:]:
            group[field] += summary.get(field, 0.0) * count
    for group in groups.values():
        for field in POOLED[1:]:
            group[field] /= group["puzzles"]
    return dict(sorted(groups.items()))


def table(report: dict[str, Any], label: str) -> str:
    lines = [f"{label}: {report['overall']['puzzles']} puzzles, "
             f"{report['overall']['verified']:.1%} verified "
             f"({report['overall']['first_pass_verified']:.1%} first pass), "
             f"{report['overall']['mean_model_steps']:.2f} model steps, "
             f"{report['speed']['seconds']:.0f} s",
             "| bucket | puzzles | first pass | verified | model steps |", "|---|---|---|---|---|"]
    for part in (0, 1):
        for key, g in pooled(report["buckets"], part).items():
            lines.append(f"| {key} | {g['puzzles']:.0f} | {g['first_pass_verified']:.1%} | "
                         f"{g['verified']:.1%} | {g['mean_model_steps']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", type=Path, nargs="+")
    for path in parser.parse_args().reports:
        print(table(json.loads(path.read_text()), path.stem), end="\n\n")


if __name__ == "__main__":
    main()
