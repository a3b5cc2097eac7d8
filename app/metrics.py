"""Prometheus metrics of the service (names, labels and buckets as in the serving design §7.5).

Each `Metrics` owns its own `CollectorRegistry`, so several apps (tests) never collide in the
process-wide default registry. Label children are created when a model is registered so every
series exists from the first scrape. Queue depth and active slots are read from the engines at
scrape time rather than pushed, so they are exact even while no tick runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import trm_core
from trm_core.engine import TickStats

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
STEP_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1)
BATCH_BUCKETS = tuple(float(2**i) for i in range(11))  # 1 … 1024
STEPS_BUCKETS = tuple(float(i) for i in range(1, 17))

ENDPOINTS = ("solve", "jobs", "mcp")
OUTCOMES = ("solved", "unsolved", "invalid", "rejected", "timeout", "cancelled", "error")
REJECT_REASONS = ("queue_full", "draining", "not_ready", "rate_limited")
CONTENT_TYPE = CONTENT_TYPE_LATEST


@dataclass(frozen=True)
class _Live:
    """Where to read one engine's queue depth and active slots at scrape time."""

    task: str
    device: str
    read: Callable[[], tuple[int, int]]


class _LiveGauges(Collector):
    """`trm_queue_depth` and `trm_active_slots`, sampled from the engines on every scrape."""

    def __init__(self) -> None:
        self._models: dict[str, _Live] = {}
        self._lock = threading.Lock()

    def add(self, model: str, live: _Live) -> None:
        with self._lock:
            self._models[model] = live

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("trm_queue_depth", "Jobs waiting for a slot",
                                  labels=["task", "model"])
        active = GaugeMetricFamily("trm_active_slots", "Slots stepping a job",
                                   labels=["task", "model", "device"])
        with self._lock:
            models = list(self._models.items())
        for model, live in models:
            queued, running = live.read()
            depth.add_metric([live.task, model], queued)
            active.add_metric([live.task, model, live.device], running)
        yield depth
        yield active


class ModelMetrics:
    """The label children of one loaded model, bound once so hot paths skip label lookups."""

    def __init__(self, metrics: Metrics, model: str, task: str, device: str) -> None:
        self.task = task
        self._requests = {(endpoint, outcome): metrics.requests.labels(task, model, endpoint,
                                                                       outcome)
                          for endpoint in ENDPOINTS for outcome in OUTCOMES}
        self._duration = {endpoint: metrics.request_duration.labels(task, model, endpoint)
                          for endpoint in ENDPOINTS}
        self._queue_wait = metrics.queue_wait.labels(task, model)
        self._first_step = metrics.time_to_first_step.labels(task, model)
        self._steps = metrics.steps_per_request.labels(task, model)
        self._step_duration = metrics.step_duration.labels(task, model, device)
        self._batch = metrics.batch_size.labels(task, model, device)

    def observe_tick(self, stats: TickStats) -> None:
        """Engine thread, once per batched supervision step."""
        self._step_duration.observe(stats.duration_s)
        self._batch.observe(stats.batch_size)

    def first_step(self, seconds: float) -> None:
        self._first_step.observe(seconds)

    def finished(self, endpoint: str, outcome: str, duration_s: float | None = None,
                 queue_s: float | None = None, steps: int | None = None) -> None:
        """One request reached its outcome; the optional values are observed when known."""
        self._requests[(endpoint, outcome)].inc()
        if duration_s is not None:
            self._duration[endpoint].observe(duration_s)
        if queue_s is not None:
            self._queue_wait.observe(queue_s)
        if steps:
            self._steps.observe(steps)


class Metrics:
    """All service metrics in one private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("trm_requests", "Solve requests by outcome",
                                ["task", "model", "endpoint", "outcome"], registry=r)
        self.request_duration = Histogram(
            "trm_request_duration_seconds", "Admission to final answer",
            ["task", "model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("trm_queue_wait_seconds", "Time queued before a slot",
                                    ["task", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.time_to_first_step = Histogram(
            "trm_time_to_first_step_seconds", "Admission to the first step event",
            ["task", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.step_duration = Histogram(
            "trm_step_duration_seconds", "One batched supervision step",
            ["task", "model", "device"], buckets=STEP_BUCKETS, registry=r)
        self.batch_size = Histogram("trm_batch_size", "Active slots per batched step",
                                    ["task", "model", "device"], buckets=BATCH_BUCKETS, registry=r)
        self.steps_per_request = Histogram(
            "trm_steps_per_request", "Supervision steps a request used", ["task", "model"],
            buckets=STEPS_BUCKETS, registry=r)
        self.rejections = Counter("trm_rejections", "Requests refused at admission",
                                  ["task", "reason"], registry=r)
        # Moved by the result cache lookups of either runner (app/runners).
        self.cache_requests = Counter("trm_cache_requests", "Result cache lookups",
                                      ["task", "result"], registry=r)
        self.sse_streams = Gauge("trm_sse_streams", "Open server-sent event streams",
                                 ["endpoint"], registry=r)
        self.model_info = Gauge("trm_model_info", "Loaded models (value is always 1)",
                                ["model", "task", "version", "checkpoint_sha", "device"],
                                registry=r)
        self.model_load = Gauge("trm_model_load_seconds", "Time to load a checkpoint",
                                ["model"], registry=r)
        build = Gauge("trm_build_info", "Service build (value is always 1)",
                      ["version", "torch_version"], registry=r)
        build.labels(trm_core.__version__, torch.__version__).set(1)
        self._live = _LiveGauges()
        r.register(self._live)
        for endpoint in ENDPOINTS:
            self.sse_streams.labels(endpoint)

    def bind_model(self, model: str, task: str, device: str) -> ModelMetrics:
        """The label children of one model, created now so its series exist at once."""
        for reason in REJECT_REASONS:
            self.rejections.labels(task, reason)
        for result in ("hit", "miss"):
            self.cache_requests.labels(task, result)
        return ModelMetrics(self, model, task, device)

    def register_model(self, model: str, task: str, version: int, sha256: str, device: str,
                       load_s: float, read_live: Callable[[], tuple[int, int]]) -> None:
        """Publish a loaded model; `read_live` returns its (queue depth, active slots)."""
        self.model_info.labels(model, task, str(version), sha256[:12], device).set(1)
        self.model_load.labels(model).set(load_s)
        self._live.add(model, _Live(task, device, read_live))

    def rejected(self, task: str, reason: str) -> None:
        self.rejections.labels(task, reason).inc()

    def stream_opened(self, endpoint: str) -> None:
        self.sse_streams.labels(endpoint).inc()

    def stream_closed(self, endpoint: str) -> None:
        self.sse_streams.labels(endpoint).dec()

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
