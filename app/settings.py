"""Service configuration: the one `Settings` object, read from `TRM_*` environment variables.
Settings of one task live in that task's group (`app.task_models.TaskSettings`), which
`Settings` inherits, so their names and environment variables are the same as any other's.

Nothing else in the service reads the environment; every component receives the values it needs
from a `Settings` instance, so tests build their own without touching `os.environ`.
"""

from __future__ import annotations

import logging
import site
import sysconfig
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.task_models import TaskSettings
from trm_core.checkpoint import find_checkpoints
from trm_core.inference import AutocastChoice, InferenceDtype

# Slots per engine when TRM_MAX_BATCH_SIZE is unset: a 7M-parameter model on a GPU steps 256
# Sudokus about as fast as 16, while a CPU pays for every row.
DEFAULT_SLOTS = {"cuda": 256, "cpu": 16}
# Where a wheel install puts the shipped checkpoints (pyproject.toml: tool.setuptools.data-files).
SHIPPED_CHECKPOINTS = Path("share") / "trm-serve" / "checkpoints"


def default_checkpoint_dirs() -> list[Path]:
    """Where checkpoints are looked for when TRM_CHECKPOINT_DIR is unset, in order: the current
    directory's checkpoints/, the source tree this package runs from (a clone, an editable
    install), and the copy a wheel installs under the environment's (or the user's) prefix."""
    source_tree = Path(__file__).resolve().parents[1]
    return [Path("checkpoints"), source_tree / "checkpoints",
            Path(sysconfig.get_path("data")) / SHIPPED_CHECKPOINTS,
            Path(site.getuserbase()) / SHIPPED_CHECKPOINTS]


def _split_commas(value: Any) -> Any:
    """Accept `a,b,c` from the environment as well as a real list from Python callers."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings, TaskSettings):
    """Every knob of the HTTP service. Environment names are the field names upper-cased with the
    `TRM_` prefix, e.g. `TRM_CHECKPOINT_DIR`. A task's own settings (`TRM_ARC_*`) come from its
    settings group, which `TaskSettings` gathers."""

    model_config = SettingsConfigDict(env_prefix="TRM_", extra="ignore", frozen=True)

    # Models
    checkpoint_dir: Path | None = Field(
        default=None, description="every checkpoint below it is loaded, one engine each; unset: "
                                  "the first of ./checkpoints, the shipped ones beside the "
                                  "package, and PREFIX/share/trm-serve/checkpoints (a wheel "
                                  "install) that holds any")
    default_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="model ids or names that become their task's default, comma-separated")
    device: str = Field(
        default="auto", description="auto (cuda when available, else cpu), cpu, cuda:0 ...")
    # Both go to trm_core/inference.py, which `trm eval --dtype` uses too: same choice, same
    # arithmetic.
    dtype: InferenceDtype = Field(
        default="auto", description="weights' dtype: auto = bf16 on CPUs with native bf16 "
                                    "(AVX512-BF16/AMX; several times faster there), else fp32; "
                                    "fp32 + bf16 autocast on CUDA (`trm eval --dtype` takes the "
                                    "same choices; /v1/models shows each model's precision)")
    autocast: AutocastChoice = Field(
        default="off", description="force this autocast dtype (overrides dtype's choice)")
    warmup: bool = Field(default=True, description="step each engine once before ready, so "
                                                   "the first request pays no start-up cost")
    seed: int = Field(default=0, description="seed of the engines' random attempts and noise")
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads; unset keeps torch's default")

    # Batching and admission
    max_batch_size: int | None = Field(
        default=None, ge=1, description="engine slots; default 256 on cuda, 16 on cpu")
    max_queue_size: int | None = Field(
        default=None, ge=1, description="queued jobs per engine, beyond which 503 + "
                                        "Retry-After (broker mode: admitted, unfinished jobs "
                                        "across the cluster); default 4 x slots")
    max_attempts: int = Field(default=8, ge=1,
                              description="most attempts one request may ask for (at most the "
                                          "slots)")
    # Verified search (trm_core/search.py): what a request that names no budget_steps gets.
    # An answer that verifies in the first pass costs nothing extra.
    search_budget_steps: int = Field(
        default=512, ge=0, description="default search budget in slot-steps (supervision steps "
                                       "x attempts) when a request names none; 0 = single pass")
    max_budget_steps: int = Field(default=2048, ge=0,
                                  description="most slot-steps one request may ask for")
    search_attempts: int = Field(default=4, ge=1,
                                 description="attempts per search round (at most the slots)")
    search_round_steps: int = Field(default=4, ge=1,
                                    description="supervision steps of each search round after "
                                                "the first pass")
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="deadline of a solve; a request's timeout_ms may only "
                                        "lower it")
    job_timeout_s: float = Field(
        default=300.0, gt=0, description="deadline of jobs made by POST /v1/jobs")
    retry_after_s: int = Field(
        default=2, ge=1, description="Retry-After sent with 503 answers")

    # Example puzzles (GET /v1/examples/{task}/generate): pure-Python searches, run in other
    # processes so they never hold this one's interpreter lock while engines step.
    generate_workers: int = Field(
        default=1, ge=1, description="processes that generate example puzzles (started on the "
                                     "first request)")
    generate_max_inflight: int = Field(
        default=4, ge=1, description="example generations running or waiting at once, beyond "
                                     "which 503 + Retry-After")

    # Jobs and streams
    job_ttl_s: float = Field(
        default=600.0, gt=0, description="how long finished jobs stay readable (broker mode: "
                                         "also their results and event streams in Redis)")
    job_store_max_jobs: int = Field(
        default=10000, ge=1, description="finished jobs kept in memory at most; the oldest are "
                                         "forgotten first, even before job_ttl_s")
    job_store_max_bytes: int = Field(
        default=64 * 2**20, ge=1, description="bytes (as JSON) of finished jobs' results and "
                                              "event logs kept in memory at most; over it the "
                                              "oldest logs shrink to their terminal event, "
                                              "then the oldest jobs are forgotten")
    sse_ping_s: float = Field(default=15.0, gt=0,
                              description="keep-alive comment on an idle event stream this often")
    sse_retry_ms: int = Field(default=2000, ge=0,
                              description="the `retry:` an event stream tells clients to wait")

    # HTTP
    host: str = Field(default="127.0.0.1", description="interface to bind (0.0.0.0: all)")
    port: int = Field(default=8000, ge=0, le=65535, description="port to bind")
    # An ARC task (demonstrations and test inputs) is up to ~25 KB as compact JSON, a few times
    # that pretty-printed; puzzles are far smaller.
    max_body_bytes: int = Field(default=262144, ge=1, description="larger bodies get 413")
    # uvicorn waits forever for a request's headers and body, so a few thousand clients that
    # trickle them would hold that many connections. app/connections.py enforces the cap and
    # the header deadline, app/middleware.py the body's.
    max_connections: int = Field(
        default=1000, ge=1, description="open HTTP connections at most; a request on one beyond "
                                        "them gets 503 + Retry-After and its connection closes")
    request_header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request's line and headers must arrive within this "
                                        "(from the connection or the request's first byte); "
                                        "otherwise the connection closes")
    request_body_timeout_s: float = Field(
        default=30.0, gt=0, description="a request's body must arrive within this after its "
                                        "headers; otherwise 408 and the connection closes")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="comma-separated; unset: auth off. Sent as "
                                          "`Authorization: Bearer` or `X-API-Key`")
    problem_base_uri: str = Field(default="/problems/",
                                  description="prefix of the `type` of problem answers")
    shutdown_timeout_s: float = Field(
        default=30.0, ge=0, description="on SIGTERM: readyz 503, finish in-flight work this long")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1:*", "localhost:*", "[::1]:*"],
        description="Host headers the service answers (DNS-rebinding guard, /mcp included); "
                    "others get 421. Comma-separated `name:port`, `name:*` (any port or none) "
                    "or `name`, e.g. api:* for a compose service; * accepts any")
    metrics_public: bool = Field(
        default=False, description="with API keys set, /metrics needs none (e.g. for a "
                                   "Prometheus that sends no key); without keys it is open "
                                   "like every route")
    log_level: str = Field(default="info", description="debug, info, warning, error")

    # Broker mode (Redis Streams): on when redis_url is set; unset keeps one in-process engine
    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; API replicas enqueue, workers solve")
    redis_max_connections: int = Field(
        default=32, ge=2, le=10_000, description="an API replica's Redis connections at most "
        "(one follows every job's events; the rest enqueue and look up; a request waits for a "
        "free one)")
    reclaim_idle_s: float = Field(
        default=120.0, gt=0, description="a delivered job idle this long is reclaimed by another "
        "worker; must exceed max_steps x worst step time plus a margin")
    max_deliveries: int = Field(
        default=3, ge=1, description="deliveries before a job goes to the dead-letter stream")
    worker_heartbeat_s: float = Field(
        default=2.0, gt=0, description="how often a worker announces itself (TTL is 3x)")
    worker_id: str | None = Field(
        default=None, description="consumer name of a worker; default host-pid")
    worker_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="a worker's /metrics port; unset: none")
    cache_enabled: bool = Field(
        default=True, description="answer symmetric repeats of solved puzzles from the cache "
        "(Redis in broker mode, else in this process)")
    cache_max_entries: int = Field(
        default=10_000, ge=0, description="answers the in-process cache keeps (no broker); "
        "the least recently used go first")
    cache_ttl_s: float = Field(default=86400.0, gt=0,
                               description="how long a cached answer lives")


    @field_validator("default_models", "api_keys", "allowed_hosts", mode="before")
    @classmethod
    def _comma_lists(cls, value: Any) -> Any:
        return _split_commas(value)

    def checkpoint_dirs(self) -> list[Path]:
        """The folders searched for checkpoints: TRM_CHECKPOINT_DIR, else the defaults."""
        return [self.checkpoint_dir] if self.checkpoint_dir is not None \
            else default_checkpoint_dirs()

    def checkpoint_root(self) -> Path:
        """The folder checkpoints are loaded from: TRM_CHECKPOINT_DIR, else the first default
        folder holding any (the first default when none does)."""
        folders = self.checkpoint_dirs()
        return next((f for f in folders if f.is_dir() and find_checkpoints(f)), folders[0])

    def resolved_device(self, cuda_available: bool) -> str:
        """The torch device the engines run on."""
        if self.device == "auto":
            return "cuda" if cuda_available else "cpu"
        return self.device

    def slots_for(self, device: str) -> int:
        if self.max_batch_size is not None:
            return self.max_batch_size
        return DEFAULT_SLOTS["cuda" if device.startswith("cuda") else "cpu"]

    def queue_for(self, slots: int) -> int:
        return self.max_queue_size if self.max_queue_size is not None else 4 * slots

    @property
    def graceful_shutdown_s(self) -> float:
        """What uvicorn waits for open connections: the drain plus time for the last events."""
        return self.shutdown_timeout_s + 5.0


def settings_from_flags(flags: dict[str, Any]) -> Settings:
    """Settings for a command-line entry point: the flags that were given override the TRM_*
    environment; logging is configured at the resulting level."""
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return settings
