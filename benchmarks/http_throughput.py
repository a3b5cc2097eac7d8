"""Throughput and latency of `POST /v1/solve/sudoku` against the engine it wraps.

Starts the service in this process (uvicorn on a loopback port), then for each concurrency level
sends max(N, 4 x concurrency) puzzles with `halting: "never"` (every request runs all supervision
steps, so both paths do identical work) twice: over HTTP with httpx.AsyncClient, and as `Job`s
submitted straight to the same running engine with the same number of jobs in flight. Prints a
table, writes JSON, and reports the HTTP / engine throughput ratio at the highest concurrency
(goal: >= 0.90). A pass starts with every client arriving at once; sending at least four requests
per client keeps that ramp from dominating the measured rate.

Serves the checkpoints under --checkpoints (default `checkpoints/`) and measures the default
Sudoku model; when there is none, builds a small seeded model (hidden 64, 2 x 2 recursions, 16
steps) in a temporary directory. On a small CPU box give torch one thread, so the engine does not
spin against the event loop and the load generator for the remaining core:

    python benchmarks/http_throughput.py --torch-threads 1 --out /tmp/http_throughput.json
    python benchmarks/http_throughput.py --puzzles 512 --concurrency 1,16,64,256 --device cuda
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # in_thread.py

from in_thread import RunningServer, serve_in_thread  # noqa: E402

from app.engine_thread import LoopBridge  # noqa: E402
from app.registry import ModelEntry  # noqa: E402
from app.settings import Settings  # noqa: E402
from trm_core.checkpoint import find_checkpoints, save_checkpoint  # noqa: E402
from trm_core.config import ModelConfig  # noqa: E402
from trm_core.engine import Job, JobResult  # noqa: E402
from trm_core.model import TRM  # noqa: E402
from trm_core.tasks import get_task  # noqa: E402

log = logging.getLogger("http_throughput")
BASE_PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"


@dataclass
class Run:
    """One measured pass: a mode (http | engine) at one concurrency."""

    mode: str
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    cpu_ms_per_request: float  # whole process (server, engine and load generator)
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float


def summarize(mode: str, concurrency: int, latencies: list[float], errors: int,
              wall_s: float, cpu_s: float) -> Run:
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    p50, p90, p99 = (float(np.percentile(ms, q)) for q in (50, 90, 99))
    done = max(len(latencies), 1)
    return Run(mode, concurrency, len(latencies), errors, round(wall_s, 3),
               round(cpu_s * 1000 / done, 2), round(len(latencies) / wall_s, 2), round(p50, 1),
               round(p90, 1), round(p99, 1), round(float(statistics.fmean(ms)), 1))


def make_puzzles(count: int, seed: int) -> list[str]:
    """`count` distinct but equivalent Sudokus (random symmetries of one puzzle)."""
    task = get_task("sudoku")
    base = task.parse(BASE_PUZZLE)
    rng = np.random.default_rng(seed)
    return [task.format(task.random_symmetry(rng).apply(base)) for _ in range(count)]


def checkpoint_dir(requested: Path, scratch: Path) -> Path:
    """`requested` when it holds a checkpoint; otherwise a fresh small model in `scratch`."""
    if find_checkpoints(requested):
        return requested
    log.warning("no checkpoint under %s; building a small untrained model", requested)
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=64, num_heads=4, recursions=2, latent_updates=2,
                            max_supervision_steps=16))
    save_checkpoint(scratch / "sudoku" / "bench", model, {"name": "trm-sudoku-bench",
                                                          "task": "sudoku"})
    return scratch


async def _drive(puzzles: list[str], concurrency: int, call: Any) -> tuple[list[float], int]:
    """Run `call(client_index, puzzle)` over all puzzles with `concurrency` clients, each with
    one request in flight; returns (latencies of the successes, error count)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for puzzle in puzzles:
        queue.put_nowait(puzzle)
    latencies: list[float] = []
    errors = 0

    async def client(index: int) -> None:
        nonlocal errors
        while not queue.empty():
            puzzle = queue.get_nowait()
            started = time.perf_counter()
            if await call(index, puzzle):
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return latencies, errors


async def run_http(base_url: str, puzzles: list[str], concurrency: int) -> Run:
    # One single-connection AsyncClient per simulated client: a shared pool of many
    # connections costs the load generator milliseconds of CPU per request (it scans the
    # pool), CPU the engine on a small box would then lose.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(
            httpx.AsyncClient(base_url=base_url, limits=limits, timeout=600))
            for _ in range(concurrency)]

        async def call(index: int, puzzle: str) -> bool:
            response = await clients[index].post("/v1/solve/sudoku",
                                                 json={"puzzle": puzzle, "halting": "never"})
            return response.status_code == 200

        await _drive(puzzles[:concurrency], concurrency, call)  # open the connections
        started, cpu = time.perf_counter(), time.process_time()
        latencies, errors = await _drive(puzzles, concurrency, call)
        return summarize("http", concurrency, latencies, errors, time.perf_counter() - started,
                         time.process_time() - cpu)


async def run_engine(entry: ModelEntry, puzzles: list[str], concurrency: int) -> Run:
    """The same work submitted straight to the service's running engine (no HTTP, no JSON)."""
    loop = asyncio.get_running_loop()
    bridge = LoopBridge(loop)

    async def call(_: int, puzzle: str) -> bool:
        done: asyncio.Future[JobResult] = loop.create_future()
        job = Job(puzzle=entry.task.parse(puzzle), max_steps=entry.max_steps, halting="never",
                  on_done=bridge.wrap(done.set_result))
        entry.engine.submit(job)
        result = await done
        return result.status in ("solved", "unsolved")

    started, cpu = time.perf_counter(), time.process_time()
    latencies, errors = await _drive(puzzles, concurrency, call)
    return summarize("engine", concurrency, latencies, errors, time.perf_counter() - started,
                     time.process_time() - cpu)


def measure(running: RunningServer, puzzles: list[str], levels: list[int],
            requested: int) -> list[Run]:
    entry = running.service.registry.resolve("sudoku", None)
    runs: list[Run] = []
    for concurrency in levels:
        batch = puzzles[:max(requested, 4 * concurrency)]
        for mode in ("engine", "http"):
            if mode == "engine":
                run = asyncio.run(run_engine(entry, batch, concurrency))
            else:
                run = asyncio.run(run_http(running.base_url, batch, concurrency))
            log.info("%-6s c=%-3d %7.2f req/s  p50 %7.1f ms", mode, concurrency, run.rps,
                     run.p50_ms)
            runs.append(run)
    return runs


def table(runs: list[Run]) -> str:
    lines = [f"{'mode':<7}{'conc':>5}{'reqs':>6}{'err':>5}{'req/s':>9}{'p50 ms':>9}"
             f"{'p90 ms':>9}{'p99 ms':>9}{'cpu ms/req':>12}"]
    for r in runs:
        lines.append(f"{r.mode:<7}{r.concurrency:>5}{r.requests:>6}{r.errors:>5}{r.rps:>9.2f}"
                     f"{r.p50_ms:>9.1f}{r.p90_ms:>9.1f}{r.p99_ms:>9.1f}"
                     f"{r.cpu_ms_per_request:>12.2f}")
    return "\n".join(lines)


def ratios(runs: list[Run]) -> dict[int, float]:
    """HTTP requests/s divided by engine jobs/s, per concurrency."""
    by = {(r.mode, r.concurrency): r.rps for r in runs}
    return {c: round(by[("http", c)] / by[("engine", c)], 3)
            for (mode, c) in by if mode == "http" and by.get(("engine", c))}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    parser.add_argument("--puzzles", type=int, default=48,
                        help="requests per pass (at least 4 x the concurrency)")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated levels")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--slots", type=int, default=None, help="engine slots (default per "
                                                                  "device)")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch intra-op threads (1 suits a 2-core box)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    levels = [int(c) for c in args.concurrency.split(",")]
    puzzles = make_puzzles(max(args.puzzles, 4 * max(levels)), seed=0)
    with tempfile.TemporaryDirectory() as scratch:
        root = checkpoint_dir(args.checkpoints, Path(scratch))
        settings = Settings(checkpoint_dir=root, device=args.device, max_batch_size=args.slots,
                            max_queue_size=max(levels) * 2, torch_threads=args.torch_threads,
                            request_timeout_s=600)
        with serve_in_thread(settings) as running:
            entry = running.service.registry.resolve("sudoku", None)
            runs = measure(running, puzzles, levels, args.puzzles)
    ratio = ratios(runs)
    print(table(runs))
    top = max(levels)
    print(f"HTTP / engine throughput at {top} clients: {ratio.get(top, float('nan')):.3f} "
          f"(goal >= 0.90)")
    report = {
        "model": entry.id, "device": entry.device, "slots": entry.slots,
        "max_steps": entry.max_steps, "parameters": entry.parameters, "puzzles": args.puzzles,
        # The engine thread runs with --torch-threads when given (threads started after
        # torch.set_num_threads inherit it; this main thread keeps its own count).
        "torch_threads": args.torch_threads or torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "runs": [asdict(r) for r in runs], "http_engine_ratio": ratio,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
