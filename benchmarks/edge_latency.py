"""Latency of one supervision step and of one puzzle in the browser and on the server, and the
size of what the browser downloads.

The browser is the viewer's runner (app/static/bundle-runner.js: the model's bundle on
onnxruntime-web, WebAssembly, one thread) in headless Chromium (Debian's, driven by Playwright);
the server is `POST /v1/solve/sudoku` over HTTP from this process to the service in this process
(uvicorn on a loopback port, fp32, one torch thread, the single pass: `attempts` 1,
`budget_steps` 0, as the bundle runs). Both answer the same puzzles, one at a time, each puzzle
first on the server and then in the browser, so load from other work on the machine falls on
both alike.

- per step: `halting: "never"` (16 steps); the browser's compute time (graph and reading the
  answer) and the server's `timing.compute_ms` (the engine, from admission to result), / 16;
- per puzzle: `halting: "auto"` (the default); the browser's time from the first step to the
  result (no network) and the server's round trip as the client measures it.

    python benchmarks/edge_latency.py --puzzles 100 --out benchmarks/results/edge_cpu.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # in_thread.py

from in_thread import serve_in_thread  # noqa: E402

from app.settings import Settings  # noqa: E402
from trm_core.data import load_puzzle_csv  # noqa: E402
from trm_core.inference import cpu_description  # noqa: E402
from trm_core.tasks import get_task  # noqa: E402

log = logging.getLogger("edge_latency")
MODEL = ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny"
RUNTIME = ROOT / "app" / "static" / "ort"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update"]
SOLVE_HERE = """async ([text, halting]) => {
  let result = null;
  await BundleRunner.solve(BundleRunner.parse(text), { halting },
    (name, data) => { if (name === "solve.completed") result = data; }, () => false);
  return result;
}"""
LOAD = """async (modelId) => {
  const started = performance.now();
  const loaded = await BundleRunner.load(modelId, {});
  return { ms: performance.now() - started, graph_bytes: loaded.graphBytes };
}"""


def puzzles(count: int) -> dict[str, list[str]]:
    """The first `count` puzzles of the committed easy and medium test sets."""
    task = get_task("sudoku")
    return {level: [task.format(p) for p in load_puzzle_csv(
        ROOT / "training" / "data" / f"sudoku-{level}-test.csv", task).head(count).puzzles]
        for level in ("easy", "medium")}


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 2),
            "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "mean": round(statistics.fmean(ordered), 2)}


def serve_solve(client: httpx.Client, puzzle: str, halting: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    response = client.post("/v1/solve/sudoku", json={"puzzle": puzzle, "halting": halting,
                                                      "attempts": 1, "budget_steps": 0})
    response.raise_for_status()
    return response.json(), (time.perf_counter() - started) * 1000.0


def measure(client: httpx.Client, page: Any, texts: list[str], halting: str) -> dict[str, Any]:
    """Every puzzle on the server, then in the browser; their timings and steps."""
    server_ms, server_compute, browser_ms, steps = [], [], [], []
    for text in texts:
        served, wall_ms = serve_solve(client, text, halting)
        here = page.evaluate(SOLVE_HERE, [text, halting])
        assert here["steps_used"] == served["steps_used"], text  # the same run, or no figure
        server_ms.append(wall_ms)
        server_compute.append(served["timing"]["compute_ms"])
        browser_ms.append(here["timing"]["compute_ms"])
        steps.append(served["steps_used"])
    return {"puzzles": len(texts), "mean_steps": round(statistics.fmean(steps), 2),
            "server_http_ms": summary(server_ms), "server_compute_ms": summary(server_compute),
            "browser_ms": summary(browser_ms),
            "server_compute_ms_per_step": summary([c / s for c, s in zip(server_compute, steps,
                                                                         strict=True)]),
            "browser_ms_per_step": summary([b / s for b, s in zip(browser_ms, steps,
                                                                  strict=True)])}


def sizes(client: httpx.Client, model_id: str) -> dict[str, Any]:
    """Bytes of the bundle's files and of the vendored runtime, raw and gzipped."""
    manifest = client.get(f"/v1/models/{model_id}/bundle").json()
    zipped = client.get(f"/v1/models/{model_id}/bundle.zip").content
    runtime = {path.name: {"bytes": path.stat().st_size,
                           "gzip_bytes": len(gzip.compress(path.read_bytes(), 9))}
               for path in sorted(RUNTIME.iterdir()) if path.suffix in (".js", ".mjs", ".wasm")}
    step = client.get(f"/v1/models/{model_id}/bundle/step.onnx").content
    return {"bundle_files": manifest["files"], "bundle_zip_bytes": len(zipped),
            "step_onnx_gzip_bytes": len(gzip.compress(step, 9)), "runtime": runtime}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as root:
        (Path(root) / "sudoku").mkdir()
        for path in MODEL.parent.glob(f"{MODEL.name}.*"):
            shutil.copy(path, Path(root) / "sudoku" / path.name)
        settings = Settings(checkpoint_dir=Path(root), device="cpu", dtype="float32",
                            torch_threads=1, search_budget_steps=0)
        with serve_in_thread(settings) as server, \
                httpx.Client(base_url=server.base_url, timeout=120) as client, \
                sync_playwright() as playwright:
            model_id = client.get("/v1/models").json()["data"][0]["id"]
            client.get(f"/v1/models/{model_id}/bundle").raise_for_status()  # export it first
            browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page()
            page.goto(server.base_url + "/")
            page.wait_for_function("typeof BundleRunner === 'object'")
            first_load = page.evaluate(LOAD, model_id)
            sets = puzzles(args.puzzles)
            measure(client, page, sets["easy"][:8], "never")  # warm both up
            report = {"model": model_id, "cpu": cpu_description(), "torch": torch.__version__,
                      "chromium": browser.version, "first_load_ms": round(first_load["ms"], 1),
                      "sizes": sizes(client, model_id),
                      "never": {level: measure(client, page, texts, "never")
                                for level, texts in sets.items()},
                      "auto": {level: measure(client, page, texts, "auto")
                               for level, texts in sets.items()}}
            browser.close()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--puzzles", type=int, default=100, help="per set (easy, medium)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--out", type=Path, help="write the report as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    report = run(args)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
