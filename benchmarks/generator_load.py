"""Solve throughput while clients hammer the example generator, against the same server alone.

Starts the service as its own process (`python -m app` on a loopback port, torch on one thread,
the shipped tiny Sudoku model alone), then alternates fixed-length phases: M clients solving
(`halting: "never"`, so every solve costs the same 16 steps) by themselves, and the same M
clients while N more, in a process of their own, request
`GET /v1/examples/sudoku/generate?difficulty=hard` back to back. A refused generator client
waits the Retry-After it was given (or --refused-wait-s, to play one that ignores it) and asks
again. Reports solves/s in each phase, the loaded / alone ratio (goal >= 0.80) and what the
generator clients got; every phase and count is bounded.

    python benchmarks/generator_load.py --out benchmarks/results/generator_load_cpu.json
    python benchmarks/generator_load.py --generators 32 --solvers 4 --refused-wait-s 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny"
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(env: dict[str, str]) -> Iterator[str]:
    """`python -m app` serving only the tiny model; yields its base URL once ready."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "sudoku"
        folder.mkdir()
        for path in TINY.parent.glob(f"{TINY.name}.*"):
            shutil.copy(path, folder / path.name)
        port = free_port()
        command = [sys.executable, "-m", "app", "--port", str(port), "--checkpoints", scratch,
                   "--shutdown-timeout", "2", "--log-level", "warning"]
        server = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **env})
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base_url, server)
            yield base_url
        finally:
            server.terminate()
            server.wait(30)


def wait_ready(base_url: str, server: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"not ready after {timeout_s} s")


async def solve_for(clients: list[httpx.AsyncClient], seconds: float) -> dict[str, Any]:
    """Every client solves back to back for `seconds`; a solve started in time counts."""
    counts = {"solved": 0, "solve_errors": 0}
    started = time.monotonic()

    async def one(http: httpx.AsyncClient) -> None:
        while time.monotonic() < started + seconds:
            response = await http.post("/v1/solve/sudoku",
                                       json={"puzzle": PUZZLE, "halting": "never"})
            counts["solved" if response.status_code == 200 else "solve_errors"] += 1

    await asyncio.gather(*(one(http) for http in clients))
    wall_s = time.monotonic() - started
    return {**counts, "wall_s": round(wall_s, 2),
            "solves_per_s": round(counts["solved"] / wall_s, 2)}


def hammer(base_url: str, generators: int, refused_wait_s: float | None, ready: Any,
           stop: Any, results: Any) -> None:
    """The generator load, in its own process so that its clients' work never delays the
    solve clients: `generators` clients ask for hard Sudokus until `stop` is set."""
    results.put(asyncio.run(_hammer(base_url, generators, refused_wait_s, ready, stop)))


async def _hammer(base_url: str, generators: int, refused_wait_s: float | None, ready: Any,
                  stop: Any) -> dict[str, int]:
    counts = {"generated": 0, "refused": 0, "generate_errors": 0}
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(single_connection_client(base_url))
                   for _ in range(generators)]
        ready.set()

        async def one(http: httpx.AsyncClient, seed: int) -> None:
            while not stop.is_set():
                response = await http.get("/v1/examples/sudoku/generate",
                                          params={"difficulty": "hard", "seed": seed})
                seed += generators
                if response.status_code == 503:
                    counts["refused"] += 1
                    advised = float(response.headers.get("retry-after", 1))
                    await asyncio.sleep(advised if refused_wait_s is None else refused_wait_s)
                else:
                    counts["generated" if response.status_code == 200
                           else "generate_errors"] += 1

        await asyncio.gather(*(one(http, i) for i, http in enumerate(clients)))
    return counts


def single_connection_client(base_url: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    return httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60)


async def loaded_phase(base_url: str, clients: list[httpx.AsyncClient],
                       args: argparse.Namespace) -> dict[str, Any]:
    """Solves while a hammer process runs; its clients are built before the clock starts."""
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Event(), context.Event(), context.Queue()
    load = context.Process(target=hammer, args=(base_url, args.generators,
                                                args.refused_wait_s, ready, stop, results))
    load.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise TimeoutError("the hammer process did not start")
        solved = await solve_for(clients, args.phase_s)
    finally:
        stop.set()
    counts = await asyncio.to_thread(results.get, True, 120)
    load.join(30)
    return {"generators": args.generators, **solved, **counts}


async def measure(base_url: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(single_connection_client(base_url))
                   for _ in range(args.solvers)]
        await solve_for(clients, 2.0)  # warm connections and the engine
        phases = []
        for _ in range(args.rounds):
            alone = {"generators": 0, **await solve_for(clients, args.phase_s)}
            for result in (alone, await loaded_phase(base_url, clients, args)):
                print(json.dumps(result), flush=True)
                phases.append(result)
        return phases


def summary(phases: list[dict[str, Any]]) -> dict[str, float]:
    alone = sum(p["solved"] for p in phases if not p["generators"])
    loaded = sum(p["solved"] for p in phases if p["generators"])
    seconds = {key: sum(p["wall_s"] for p in phases if bool(p["generators"]) == key)
               for key in (False, True)}
    return {"solves_per_s_alone": round(alone / seconds[False], 2),
            "solves_per_s_loaded": round(loaded / seconds[True], 2),
            "loaded_over_alone": round((loaded / seconds[True]) / (alone / seconds[False]), 3)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--solvers", type=int, default=4, help="solve clients (M)")
    parser.add_argument("--generators", type=int, default=32, help="generator clients (N)")
    parser.add_argument("--phase-s", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=2, help="alone/loaded phase pairs")
    parser.add_argument("--refused-wait-s", type=float, default=None,
                        help="how long a refused generator client waits before asking again "
                             "(default: the Retry-After it was given)")
    parser.add_argument("--label", default="", help="a note kept in the JSON (which code ran)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine shifts every figure
    env = {"TRM_TORCH_THREADS": "1", "TRM_MAX_BATCH_SIZE": "16", "TRM_DEVICE": "cpu"}
    with serve(env) as base_url:
        phases = asyncio.run(measure(base_url, args))
    report = {"label": args.label, "solvers": args.solvers, "generators": args.generators,
              "phase_s": args.phase_s, "refused_wait_s": args.refused_wait_s or "Retry-After",
              "rounds": args.rounds, "model": "trm-sudoku-tiny@1", "server_env": env,
              "python": platform.python_version(), "cpu_count": os.cpu_count(),
              "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
              "phases": phases, **summary(phases)}
    print(json.dumps(summary(phases)))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
