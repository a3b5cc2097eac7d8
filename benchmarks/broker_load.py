"""Broker mode under load: N API processes and M worker processes on loopback, one private
`redis-server`, the shipped Sudoku checkpoint, every request `halting: "never"` (16 steps).

1. Throughput at M = 1 and M = 2 workers (each worker one torch thread): a fixed number of
   sync solves from a closed loop of clients spread over the API processes.
2. A bounded soak at about twice the measured capacity: requests arrive open-loop at 2x the
   M = 2 rate for a fixed count; excess ones must get 503 + Retry-After, every accepted one
   exactly one result (checked against the result keys in Redis), and the RSS of every process
   is sampled at the start, middle and end.

The result cache is off (the same puzzles repeat). Results go to JSON:

    python benchmarks/broker_load.py --apis 1 --out benchmarks/results/broker_load_cpu.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("broker_load")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Cluster:
    """Redis, API and worker processes of one benchmark run; everything stops at exit."""

    def __init__(self, log_dir: Path, queue_size: int, batch: int) -> None:
        self.log_dir = log_dir
        self.queue_size = queue_size
        self.batch = batch
        self.redis_port = free_port()
        self.url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.api_urls: list[str] = []

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        out = (self.log_dir / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                            stderr=subprocess.STDOUT)

    def _env(self, **settings: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRM_")}
        base = {"redis_url": self.url, "checkpoint_dir": str(ROOT / "checkpoints"),
                "device": "cpu", "torch_threads": 1, "cache_enabled": "false",
                "max_queue_size": self.queue_size, "max_batch_size": self.batch,
                "log_level": "warning"}
        env.update({f"TRM_{k.upper()}": str(v) for k, v in {**base, **settings}.items()})
        return env

    def start_redis(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._spawn("redis", [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"])
        client = redis.Redis(port=self.redis_port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def start_api(self) -> None:
        port = free_port()
        self._spawn(f"api{len(self.api_urls)}", [sys.executable, "-m", "app"],
                    self._env(port=port, host="127.0.0.1"))
        self.api_urls.append(f"http://127.0.0.1:{port}")

    def start_worker(self) -> None:
        index = sum(name.startswith("worker") for name in self.procs)
        self._spawn(f"worker{index}", [sys.executable, "-m", "app.worker_main"],
                    self._env(worker_id=f"bench{index}"))

    def wait_ready(self, workers: int, timeout_s: float = 90.0) -> None:
        client = redis.Redis(port=self.redis_port, decode_responses=True)
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            beats = len(list(client.scan_iter("trm:worker:*")))
            ready = all(_ready(url) for url in self.api_urls)
            if beats >= workers and ready:
                return
            time.sleep(0.2)
        raise RuntimeError(f"cluster not ready after {timeout_s} s")

    def rss(self) -> dict[str, float]:
        return {name: round(rss_mb(p.pid), 1) for name, p in self.procs.items()
                if p.poll() is None and name != "redis"}

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def puzzles(count: int) -> list[str]:
    lines = (ROOT / "training/data/sudoku-easy-test.csv").read_text().splitlines()[1:]
    return [lines[i % len(lines)].split(",")[0] for i in range(count)]


async def solve(http: httpx.AsyncClient, url: str,
                puzzle: str) -> tuple[int, float, dict[str, Any]]:
    started = time.perf_counter()
    response = await http.post(f"{url}/v1/solve/sudoku",
                               json={"puzzle": puzzle, "halting": "never"})
    elapsed = time.perf_counter() - started
    body = response.json() if response.headers.get("content-type", "").endswith("json") else {}
    if response.status_code == 503:
        body["retry_after"] = response.headers.get("Retry-After")
    return response.status_code, elapsed, body


async def closed_loop(urls: list[str], requests: int, clients: int) -> dict[str, Any]:
    """`clients` concurrent clients, round-robin over the APIs, `requests` solves in all."""
    work = puzzles(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        async def client(index: int) -> None:
            for i in range(index, requests, clients):
                status, elapsed, _ = await solve(http, urls[i % len(urls)], work[i])
                statuses[status] += 1
                latencies.append(elapsed)

        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(clients)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": requests, "clients": clients, "wall_s": round(wall, 2),
            "req_per_s": round(statuses[200] / wall, 1), "statuses": dict(statuses),
            "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99) - 1], 1)}


async def open_loop(cluster: Cluster, rate: float, requests: int) -> dict[str, Any]:
    """Arrivals at `rate` per second regardless of answers: the overload soak."""
    work = puzzles(requests)
    urls = cluster.api_urls
    results: list[tuple[int, float, dict[str, Any]]] = []
    rss = {"start": cluster.rss()}
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=1000)) as http:
        async def one(i: int) -> None:
            results.append(await solve(http, urls[i % len(urls)], work[i]))

        tasks = []
        started = time.perf_counter()
        for i in range(requests):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
            if i == requests // 2:
                rss["middle"] = cluster.rss()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - started
    rss["end"] = cluster.rss()
    statuses = Counter(status for status, _, _ in results)
    accepted_ids = [body["id"] for status, _, body in results if status == 200]
    store = redis.Redis(port=cluster.redis_port, decode_responses=True)
    with_result = sum(bool(store.exists(f"trm:res:{job}")) for job in accepted_ids)
    refused = [body for status, _, body in results if status == 503]
    return {"rate_per_s": round(rate, 1), "requests": requests, "wall_s": round(wall, 2),
            "statuses": dict(statuses), "accepted": len(accepted_ids),
            "accepted_with_one_result_key": with_result,
            "duplicate_ids": len(accepted_ids) - len(set(accepted_ids)),
            "refused_with_retry_after": sum(bool(b.get("retry_after")) for b in refused),
            "lost": requests - statuses[200] - statuses[503],
            "solved_req_per_s": round(statuses[200] / wall, 1), "rss_mb": rss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apis", type=int, default=1)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--queue-size", type=int, default=32)
    parser.add_argument("--soak-s", type=float, default=60.0, help="soak length at 2x capacity")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/broker_load.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log_dir = Path(tempfile.mkdtemp(prefix="broker_load_"))  # process logs, if a run fails
    log.info("process logs in %s", log_dir)
    cluster = Cluster(log_dir, args.queue_size, args.batch)
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
               "platform": platform.platform()}
    report: dict[str, Any] = {"machine": machine,
                              "apis": args.apis, "batch": args.batch,
                              "queue_size": args.queue_size, "throughput": []}
    try:
        cluster.start_redis()
        for _ in range(args.apis):
            cluster.start_api()
        for workers in (1, 2):
            cluster.start_worker()
            cluster.wait_ready(workers)
            asyncio.run(closed_loop(cluster.api_urls, 32, 8))  # warm the HTTP paths
            run = asyncio.run(closed_loop(cluster.api_urls, args.requests, args.clients))
            run["workers"] = workers
            log.info("M=%d: %s", workers, run)
            report["throughput"].append(run)
        capacity = report["throughput"][-1]["req_per_s"]
        rate = 2 * capacity
        soak = asyncio.run(open_loop(cluster, rate, int(rate * args.soak_s)))
        log.info("soak: %s", soak)
        report["soak"] = soak
    finally:
        cluster.stop()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
