"""`python -m app.worker_main [--redis-url URL] [--checkpoints DIR] …`: one broker-mode worker.

Run one per device. It loads every checkpoint below `TRM_CHECKPOINT_DIR`, warms the engines,
optionally serves `/metrics` on `TRM_WORKER_METRICS_PORT`, and consumes jobs from Redis until
SIGTERM/SIGINT, when it stops taking jobs, lets running ones finish within
`TRM_SHUTDOWN_TIMEOUT_S` and leaves the rest pending for other workers. It starts before Redis is
reachable and keeps retrying with backoff. `trm worker` calls `main(argv)`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import redis
from prometheus_client import start_http_server

from app.broker_worker import BrokerWorker
from app.metrics import Metrics
from app.registry import ModelRegistry
from app.settings import Settings, settings_from_flags

log = logging.getLogger(__name__)


def build_parser(prog: str = "python -m app.worker_main") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Solve queued jobs from Redis.",
        epilog="Every option also reads its TRM_* environment variable, e.g. TRM_REDIS_URL.")
    parser.add_argument("--redis-url", help="redis://host:port/db (TRM_REDIS_URL, required)")
    parser.add_argument("--checkpoints", type=Path, dest="checkpoint_dir",
                        help="directory searched for checkpoints (TRM_CHECKPOINT_DIR)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:1 … (TRM_DEVICE)")
    parser.add_argument("--max-batch-size", type=int, help="engine slots (TRM_MAX_BATCH_SIZE)")
    parser.add_argument("--torch-threads", type=int, help="intra-op threads (TRM_TORCH_THREADS)")
    parser.add_argument("--worker-id", help="consumer name (TRM_WORKER_ID, default host-pid)")
    parser.add_argument("--metrics-port", type=int, dest="worker_metrics_port",
                        help="serve /metrics on this port (TRM_WORKER_METRICS_PORT)")
    parser.add_argument("--log-level", help="debug, info, warning … (TRM_LOG_LEVEL)")
    return parser


def connect(settings: Settings) -> redis.Redis:
    """A client that fails fast, so the worker's own backoff loop decides when to retry."""
    assert settings.redis_url is not None
    return redis.Redis.from_url(settings.redis_url, decode_responses=True,
                                socket_connect_timeout=2.0, socket_timeout=10.0,
                                health_check_interval=15)


def serve(settings: Settings, stop: threading.Event,
          worker_class: type[BrokerWorker] = BrokerWorker) -> None:
    """Load models, then run the worker until `stop` is set (tests bring a faulty
    `worker_class`: tests/fault_worker.py)."""
    metrics = Metrics()
    registry = ModelRegistry(settings, metrics)
    registry.load()
    if not registry.entries:
        raise SystemExit(f"no models to serve: {'; '.join(registry.load_errors)}")
    registry.warmup()
    if settings.reclaim_idle_s < settings.request_timeout_s:
        # XAUTOCLAIM only sees idle time: a healthy job running longer than this is taken over
        # and run twice (the result stays unique, the work does not). Workers take only jobs
        # they can start, so a job's time here is its compute time, bounded by its deadline.
        log.warning("TRM_RECLAIM_IDLE_S=%.1f is below TRM_REQUEST_TIMEOUT_S=%.0f: slow jobs "
                    "may be reclaimed while still running", settings.reclaim_idle_s,
                    settings.request_timeout_s)
    registry.start_engines()
    if settings.worker_metrics_port is not None:
        start_http_server(settings.worker_metrics_port, addr=settings.host,
                          registry=metrics.registry)
        log.info("metrics on %s:%d", settings.host, settings.worker_metrics_port)
    try:
        worker_class(settings, registry, connect(settings), settings.worker_id).run(stop)
    finally:
        registry.stop_engines()


def main(argv: Sequence[str] | None = None, prog: str = "python -m app.worker_main",
         worker_class: type[BrokerWorker] = BrokerWorker) -> int:
    settings = settings_from_flags(vars(build_parser(prog).parse_args(argv)))
    if not settings.redis_url:
        log.error("a worker needs TRM_REDIS_URL (or --redis-url)")
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve(settings, stop, worker_class)
    return 0


if __name__ == "__main__":
    sys.exit(main())
