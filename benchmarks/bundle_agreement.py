"""How often a bundle's answer differs from the server's, over many puzzles: the shipped tiny
Sudoku model's bundle (or `--model`'s) on onnxruntime (the reference loop,
training/bundle_solve.py) and on onnxruntime-web in Chromium (the viewer's runner), against the
service's engine at fp32 stepping one puzzle at a time, as it does for a lone request.

    python benchmarks/bundle_agreement.py --per-set 200 \
        --out benchmarks/results/bundle_agreement_cpu.json
    python benchmarks/bundle_agreement.py --model checkpoints/sudoku/trm-sudoku-small \
        --halting auto --per-set 100 --out benchmarks/results/bundle_agreement_small_auto_cpu.json

`--halting never` runs every puzzle all 16 steps; `auto` (the service's default) stops as the
service does. Per set and runtime it counts the puzzles whose grid differs at some step, whose
final status (solved or not) differs, and whose final grid differs; for each differing puzzle
it records the first step that differs, the engine's confidence in the cells that differ
there, and whether the puzzle is rounding-sensitive for the model (training/conditioning.py:
its float64 steps change when its weights move by one part in 2^20). Beside that, how many
puzzles each fp32 runtime, the server's included, departs on from the model in float64.

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
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # in_thread.py

from training.bundle import write_bundle  # noqa: E402
from training.bundle_solve import Bundle  # noqa: E402
from training.conditioning import (  # noqa: E402
    Run,
    cells_apart,
    differing,
    engine_runs,
    first_difference,
    float64_runs,
    rounding_sensitive,
)
from trm_core.checkpoint import load_checkpoint  # noqa: E402
from trm_core.data import load_puzzle_csv  # noqa: E402
from trm_core.inference import cpu_description, prepare_for_inference  # noqa: E402
from trm_core.tasks import get_task  # noqa: E402

MODEL = ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny"
LEVELS = ("easy", "medium", "hard")
STEPS = 16


def served_runs(stem: Path, puzzles: list[str], halting: str) -> list[Run]:
    """The service's single pass at fp32, one puzzle at a time."""
    model, _ = prepare_for_inference(load_checkpoint(stem).model, "cpu", "float32")
    return engine_runs(model, get_task("sudoku"), puzzles, halting, STEPS)


def onnxruntime_runs(folder: Path, puzzles: list[str], halting: str) -> list[Run]:
    bundle = Bundle(folder)
    runs = []
    for text in puzzles:
        result = bundle.solve(bundle.parse(text), STEPS, halting)
        runs.append(Run([bundle.format(step.answer) for step in result.steps],
                        result.status == "solved"))
    return runs


def browser_runs(stem: Path, sets: dict[str, list[str]], chromium: str,
                 halting: str) -> dict[str, list[Run]]:
    """The viewer's runner on the bundle the service offers (the same files), per set."""
    from bundle_cases import RUN_HERE  # tests/ (on sys.path above)
    from in_thread import serve_in_thread
    from playwright.sync_api import sync_playwright
    from shipped_models import alone

    from app.settings import Settings

    settings = Settings(checkpoint_dir=alone(stem), device="cpu", dtype="float32")
    with serve_in_thread(settings) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium,
                                             args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.goto(server.base_url + "/")
        page.wait_for_function("typeof BundleRunner === 'object'")
        page.evaluate("(id) => BundleRunner.load(id, {})", load_checkpoint(stem).id)
        runs = {level: [Run([step["grid"] for step in r["steps"]],
                            r["result"]["status"] == "solved")
                        for r in page.evaluate(RUN_HERE, [puzzles, halting])]
                for level, puzzles in sets.items()}
        browser.close()
    return runs


def differences(reference: list[Run], other: list[Run], puzzles: list[str],
                sensitive: set[int]) -> dict[str, Any]:
    """The puzzles whose runs differ: from which step, whether the final status or grid
    differs, the server's confidence in the first differing cells, and whether the puzzle is
    rounding-sensitive for the model (training/conditioning.py)."""
    found = []
    for index in sorted(differing(reference, other)):
        ours, theirs = other[index], reference[index]
        first = first_difference(ours, theirs)
        assert first is not None
        entry: dict[str, Any] = {
            "index": index, "puzzle": puzzles[index], "first_step": first + 1,
            "rounding_sensitive": index in sensitive,
            "steps_used": {"server": len(theirs.grids), "bundle": len(ours.grids)},
            "solved": {"server": theirs.solved, "bundle": ours.solved},
            "final_grid_differs": ours.grids[-1] != theirs.grids[-1]}
        if first < min(len(ours.grids), len(theirs.grids)):
            cells = cells_apart(ours.grids[first], theirs.grids[first])
            entry["server_confidence_there"] = [round(theirs.confidence[first][c], 4)
                                                for c in cells]
        found.append(entry)
    return {"puzzles_differing": len(found),
            "differing_not_sensitive": sum(not e["rounding_sensitive"] for e in found),
            "rounding_sensitive": len(sensitive),
            "status_differs": sum(e["solved"]["server"] != e["solved"]["bundle"] for e in found),
            "final_grid_differs": sum(e["final_grid_differs"] for e in found),
            "solved_by_server": sum(r.solved for r in reference),
            "solved_by_bundle": sum(r.solved for r in other),
            "puzzles": found}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-set", type=int, default=200, help="puzzles per test set")
    parser.add_argument("--chromium", default=shutil.which("chromium"),
                        help="Chromium to run the browser runner in (none: skip it)")
    parser.add_argument("--model", type=Path, default=MODEL,
                        help="checkpoint stem (default: the shipped tiny model)")
    parser.add_argument("--halting", choices=["never", "auto"], default="never")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = get_task("sudoku")
    sets = {level: [task.format(p) for p in load_puzzle_csv(
        ROOT / "training" / "data" / f"sudoku-{level}-test.csv", task).head(args.per_set).puzzles]
        for level in LEVELS}
    served = {level: served_runs(args.model, puzzles, args.halting)
              for level, puzzles in sets.items()}
    model, task = load_checkpoint(args.model).model, get_task("sudoku")
    exact = {level: float64_runs(model, task, puzzles, args.halting, STEPS)
             for level, puzzles in sets.items()}
    sensitive = {level: rounding_sensitive(model, task, puzzles, args.halting, STEPS,
                                           reference=exact[level])
                 for level, puzzles in sets.items()}
    with tempfile.TemporaryDirectory() as root:
        write_bundle(load_checkpoint(args.model), Path(root))
        runtimes = {"onnxruntime": {level: onnxruntime_runs(Path(root), puzzles, args.halting)
                                    for level, puzzles in sets.items()}}
    if args.chromium:
        runtimes["onnxruntime-web"] = browser_runs(args.model, sets, args.chromium, args.halting)
    report: dict[str, Any] = {"model": load_checkpoint(args.model).id,
                              "cpu": cpu_description(), "steps": STEPS, "halting": args.halting,
                              "puzzles": {level: len(p) for level, p in sets.items()}}
    report["server_departs_from_float64"] = {level: len(differing(exact[level], served[level]))
                                             for level in sets}
    for runtime, runs in runtimes.items():
        report[runtime + "_departs_from_float64"] = {
            level: len(differing(exact[level], runs[level])) for level in sets}
        report[runtime] = {level: differences(served[level], runs[level], sets[level],
                                              sensitive[level]) for level in sets}
        print(runtime, json.dumps({level: {k: v for k, v in found.items() if k != "puzzles"}
                                   for level, found in report[runtime].items()}), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
