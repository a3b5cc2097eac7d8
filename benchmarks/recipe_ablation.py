"""Training recipes compared back to back: optimizer steps, sample-steps and seconds until the
tiny Sudoku config first reaches a target exact accuracy on its held-out easy validation set.

    trm data sudoku --out data/sudoku-easy --difficulty easy --train 20000 --val 500
    python benchmarks/recipe_ablation.py --out benchmarks/results/recipe_ablation.json

Each variant is `trm train training/configs/sudoku-tiny-cpu.toml` with the overrides below
(evaluation every 100 steps on 500 puzzles at full depth, bf16 autocast), run one after the
other on the same machine; `--parallel` runs them side by side, one thread each, which is
faster but noisier in seconds (sample-steps do not depend on it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

COMMON = ["--set", "train.eval_every=100", "--set", "train.total_steps=800",
          "--set", "train.autocast=bfloat16"]
VARIANTS: dict[str, list[str]] = {
    "baseline (AdamW 3e-3, cosine to 10%)": [],
    "Muon 1e-2 + label smoothing 0.1 + decay to 0": [
        "train.optimizer=muon", "train.muon_lr=0.01", "train.label_smoothing=0.1",
        "train.lr_min_ratio=0"],
    "AdamW 6e-3 + label smoothing 0.1 + decay to 0": [
        "train.lr=6e-3", "train.label_smoothing=0.1", "train.lr_min_ratio=0"],
}


def command(name: str, overrides: list[str], root: Path, threads: int) -> list[str]:
    out = root / f"variant{list(VARIANTS).index(name)}"
    sets = [arg for pair in overrides for arg in ("--set", pair)]
    return [sys.executable, "-m", "training.cli", "train", "training/configs/sudoku-tiny-cpu.toml",
            "--fresh", "--set", f"train.out_dir={out}", "--set", f"train.threads={threads}",
            *COMMON, *sets]


def first_reaching(curve: list[dict[str, Any]], target: float) -> dict[str, Any] | None:
    return next((p for p in curve if p["exact_accuracy"] >= target), None)


def summarise(name: str, out: Path, target: float, batch: int) -> dict[str, Any]:
    history = json.loads((out / "resume.json").read_text())["history"]
    hit = first_reaching(history, target)
    return {"variant": name, "curve": history,
            "steps_to_target": hit and hit["step"],
            "sample_steps_to_target": hit and hit["step"] * batch,
            "seconds_to_target": hit and hit["elapsed_s"],
            "best_exact": max(p["exact_accuracy"] for p in history)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--root", type=Path, default=Path("runs/recipe-ablation"))
    parser.add_argument("--parallel", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    threads = 1 if args.parallel else 0
    commands = {name: command(name, sets, args.root, threads) for name, sets in VARIANTS.items()}
    if args.parallel:
        running = [subprocess.Popen(c, stdout=subprocess.DEVNULL) for c in commands.values()]
        if any(p.wait() for p in running):
            raise SystemExit("a variant failed")
    else:
        for c in commands.values():
            subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
    rows = [summarise(name, args.root / f"variant{i}", args.target, 128)
            for i, name in enumerate(VARIANTS)]
    for row in rows:
        print(f"{row['variant']:<48} steps {row['steps_to_target']}  sample-steps "
              f"{row['sample_steps_to_target']}  s {row['seconds_to_target']}  "
              f"best {row['best_exact']:.1%}")
    if args.out:
        result = {"benchmark": "recipe_ablation", "target": args.target, "rows": rows,
                  "parallel": args.parallel}
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
