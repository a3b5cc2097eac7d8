"""How often a bundle's answer differs from the server's at any step, over many puzzles: the
shipped tiny Sudoku model's bundle (or `--model`'s) on onnxruntime (the reference loop,
training/bundle_solve.py) and on onnxruntime-web in Chromium (the viewer's runner), against the
service's engine at fp32 stepping one puzzle at a time, as it does for a lone request. Every
puzzle runs all 16 steps (`halting: "never"`), and a puzzle counts as differing when any cell of
any step's grid differs.

    python benchmarks/bundle_agreement.py --per-set 200 \
        --out benchmarks/results/bundle_agreement_cpu.json

The tests check the first 16 puzzles of each set exactly (tests/training/test_bundle.py,
tests/app/test_bundle_browser.py); this measures how far that holds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout

from training.bundle import write_bundle  # noqa: E402
from training.bundle_solve import Bundle  # noqa: E402
from trm_core.checkpoint import load_checkpoint  # noqa: E402
from trm_core.data import load_puzzle_csv  # noqa: E402
from trm_core.engine import Engine  # noqa: E402
from trm_core.inference import cpu_description, prepare_for_inference  # noqa: E402
from trm_core.tasks import get_task  # noqa: E402

MODEL = ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny"
LEVELS = ("easy", "medium", "hard")
STEPS = 16
IN_BROWSER = """async (puzzles) => {
  const runs = [];
  for (const text of puzzles) {
    const grids = [];
    await BundleRunner.solve(BundleRunner.parse(text), { halting: "never" },
      (name, data) => { if (name === "solve.step") grids.push(data.grid); }, () => false);
    runs.push(grids);
  }
  return runs;
}"""


def engine_grids(stem: Path, puzzles: list[str]) -> list[list[str]]:
    """Each puzzle's grid at every step, from the engine at fp32, one puzzle at a time."""
    task = get_task("sudoku")
    model, _ = prepare_for_inference(load_checkpoint(stem).model, "cpu", "float32")
    engine = Engine(model, task, slots=1, max_queue=1)
    runs = []
    for text in puzzles:
        grids: list[str] = []
        engine.solve(task.parse(text), halting="never", max_steps=STEPS,
                     on_step=lambda update, grids=grids: grids.append(task.format(update.answer)))
        runs.append(grids)
    return runs


def onnxruntime_grids(folder: Path, puzzles: list[str]) -> list[list[str]]:
    bundle = Bundle(folder)
    return [[bundle.format(step.answer) for step in
             bundle.solve(bundle.parse(text), STEPS, "never").steps] for text in puzzles]


def browser_grids(stem: Path, sets: dict[str, list[str]],
                  chromium: str) -> dict[str, list[list[str]]]:
    """The viewer's runner on the bundle the service offers (the same files), per set."""
    from playwright.sync_api import sync_playwright

    from app.server import serve_in_thread
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "sudoku").mkdir()
        for path in stem.parent.glob(f"{stem.name}.*"):
            shutil.copy(path, Path(root) / "sudoku" / path.name)
        settings = Settings(checkpoint_dir=Path(root), device="cpu", dtype="float32")
        with serve_in_thread(settings) as server, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium,
                                                 args=["--headless", "--no-sandbox"])
            page = browser.new_page()
            page.goto(server.base_url + "/")
            page.wait_for_function("typeof BundleRunner === 'object'")
            page.evaluate("(id) => BundleRunner.load(id, {})", load_checkpoint(stem).id)
            runs = {level: page.evaluate(IN_BROWSER, puzzles) for level, puzzles in sets.items()}
            browser.close()
    return runs


def differences(reference: list[list[str]], other: list[list[str]],
                puzzles: list[str]) -> list[dict[str, Any]]:
    """The puzzles whose grids differ at some step: which steps and how many cells."""
    found = []
    for index, (ours, theirs) in enumerate(zip(other, reference, strict=True)):
        steps = [s for s in range(STEPS) if ours[s] != theirs[s]]
        if steps:
            found.append({"index": index, "puzzle": puzzles[index],
                          "steps": [s + 1 for s in steps],
                          "cells": [sum(a != b for a, b in zip(ours[s], theirs[s], strict=True))
                                    for s in steps]})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-set", type=int, default=200, help="puzzles per test set")
    parser.add_argument("--chromium", default=shutil.which("chromium"),
                        help="Chromium to run the browser runner in (none: skip it)")
    parser.add_argument("--model", type=Path, default=MODEL,
                        help="checkpoint stem (default: the shipped tiny model)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("sudoku")
    sets = {level: [task.format(p) for p in load_puzzle_csv(
        ROOT / "training" / "data" / f"sudoku-{level}-test.csv", task).head(args.per_set).puzzles]
        for level in LEVELS}
    served = {level: engine_grids(args.model, puzzles) for level, puzzles in sets.items()}
    with tempfile.TemporaryDirectory() as root:
        write_bundle(load_checkpoint(args.model), Path(root))
        runtimes = {"onnxruntime": {level: onnxruntime_grids(Path(root), puzzles)
                                    for level, puzzles in sets.items()}}
    if args.chromium:
        runtimes["onnxruntime-web"] = browser_grids(args.model, sets, args.chromium)
    report: dict[str, Any] = {"model": load_checkpoint(args.model).id,
                              "cpu": cpu_description(), "steps": STEPS,
                              "puzzles": {level: len(p) for level, p in sets.items()}}
    for runtime, runs in runtimes.items():
        report[runtime] = {level: differences(served[level], runs[level], sets[level])
                           for level in sets}
        print(runtime, {level: len(found) for level, found in report[runtime].items()},
              "puzzles differing", flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
