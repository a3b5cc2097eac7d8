"""The loaded models: one checkpoint, one `Engine` and one worker thread per model.

`ModelRegistry.load` finds every checkpoint under `TRM_CHECKPOINT_DIR`, builds an engine for it on
the configured device, and picks a default model per task. A checkpoint that fails to load is
logged and skipped (and reported by readiness) so one bad file does not take the service down.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from app.metrics import Metrics, ModelMetrics
from app.settings import Settings
from app.worker import EngineWorker
from trm_core.arc_identifiers import IdentifierMap, load_identifiers, sidecar_path
from trm_core.checkpoint import Checkpoint, find_checkpoints, load_checkpoint, read_card
from trm_core.engine import Engine, TickStats
from trm_core.inference import prepare_for_inference
from trm_core.model import count_parameters
from trm_core.tasks import TASKS, get_task
from trm_core.tasks.base import Task

log = logging.getLogger(__name__)
_AUTOCAST = {"off": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _arc_identifiers(stem: Any, task: Task, rows: int) -> IdentifierMap | None:
    """The sidecar of an ARC checkpoint with `rows` embedding rows; None when absent (or for
    another task)."""
    path = sidecar_path(stem)
    if task.name != "arc" or not path.exists():
        return None
    identifiers = load_identifiers(path)
    if len(identifiers) > rows:
        raise ValueError(f"{path} names {len(identifiers)} identifiers; the checkpoint's "
                         f"puzzle embedding has {rows} rows")
    return identifiers


class UnknownModel(LookupError):
    """No loaded model of the task matches the reference; `available` lists those that do."""

    def __init__(self, ref: str, task: str, available: list[str]) -> None:
        super().__init__(ref)
        self.ref = ref
        self.task = task
        self.available = available


@dataclass
class ModelEntry:
    """A servable model: checkpoint, task, engine, worker and its bound metrics."""

    checkpoint: Checkpoint
    task: Task
    engine: Engine
    worker: EngineWorker
    metrics: ModelMetrics
    device: str
    slots: int
    max_queue: int
    load_s: float
    warmed: bool = False
    # ARC: the checkpoint's row -> task version table (its `<stem>.identifiers.json` sidecar)
    identifiers: IdentifierMap | None = None
    parameters: int = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = count_parameters(self.checkpoint.model)

    @property
    def id(self) -> str:
        return self.checkpoint.id

    @property
    def max_steps(self) -> int:
        return self.checkpoint.config.max_supervision_steps

    def describe(self, is_default: bool) -> dict[str, Any]:
        """The public description served by `/v1/models`."""
        ckpt, config = self.checkpoint, self.checkpoint.config
        body: dict[str, Any] = {
            "id": ckpt.id, "object": "model", "name": ckpt.name, "version": ckpt.version,
            "task": ckpt.task, "default": is_default, "checkpoint_sha256": ckpt.sha256,
            "seq_len": config.seq_len, "vocab_size": config.vocab_size,
            "max_steps": self.max_steps, "device": self.device, "parameters": self.parameters,
            "loaded": True, "warmed": self.warmed,
            "batching": {"slots": self.slots, "max_queue": self.max_queue},
        }
        if self.identifiers is not None:
            body["arc"] = {"known_tasks": len(self.identifiers.task_digests),
                           "identifiers": len(self.identifiers)}
        evaluation = ckpt.card.get("evaluation")
        if evaluation is not None:
            body["evaluation"] = evaluation
        return body


class ModelRegistry:
    """Every loaded model by id, plus the default model of each task."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {}
        self.defaults: dict[str, str] = {}
        self.load_errors: list[str] = []
        self.loaded = False
        self._served: list[str] | None = None

    def served_tasks(self) -> list[str]:
        """Tasks with a checkpoint to serve, read once from the cards (known before loading, so
        the tools advertised to agents never name a task no model can answer)."""
        if self._served is None:
            tasks = set()
            for stem in find_checkpoints(self.settings.checkpoint_dir):
                try:
                    tasks.add(str(read_card(stem)["task"]))
                except (OSError, ValueError, KeyError):
                    continue  # loading reports the broken card
            self._served = sorted(tasks & set(TASKS))
        return self._served

    # ------------------------------------------------------------------------------- loading

    def load(self) -> None:
        """Load every checkpoint (blocking; call it off the event loop)."""
        device = self.settings.resolved_device(torch.cuda.is_available())
        if self.settings.torch_threads is not None:
            # On a small CPU box, fewer intra-op threads than cores leaves one for the event loop
            # and avoids OpenMP spinning against it.
            torch.set_num_threads(self.settings.torch_threads)
        stems = find_checkpoints(self.settings.checkpoint_dir)
        if not stems:
            self.load_errors.append(f"no checkpoints under {self.settings.checkpoint_dir}")
        for stem in stems:
            try:
                entry = self._load_one(stem, device)
            except Exception as exc:
                log.exception("could not load checkpoint %s", stem)
                self.load_errors.append(f"{stem}: {exc}")
                continue
            if entry.id in self.entries:
                self.load_errors.append(f"{stem}: duplicate model id {entry.id}")
                continue
            self.entries[entry.id] = entry
            log.info("loaded %s (%s, %d parameters) on %s in %.2f s", entry.id,
                     entry.checkpoint.task, entry.parameters, device, entry.load_s)
        self.defaults = self._pick_defaults()
        self.loaded = True

    def _load_one(self, stem: Any, device: str) -> ModelEntry:
        started = time.perf_counter()
        ckpt = load_checkpoint(stem, device)
        task = get_task(ckpt.task)
        slots = self.settings.slots_for(device)
        max_queue = self.settings.queue_for(slots)
        bound = self.metrics.bind_model(ckpt.id, task.name, device)

        def on_tick(stats: TickStats) -> None:
            bound.observe_tick(stats)

        model, autocast = prepare_for_inference(ckpt.model, device, self.settings.dtype)
        if self.settings.autocast != "off":
            autocast = _AUTOCAST[self.settings.autocast]
        engine = Engine(model, task, slots=slots, max_queue=max_queue, device=device,
                        autocast_dtype=autocast, seed=self.settings.seed, on_tick=on_tick)
        load_s = time.perf_counter() - started
        self.metrics.register_model(ckpt.id, task.name, ckpt.version, ckpt.sha256, device,
                                    load_s, lambda: (engine.queue_depth, engine.active_slots))
        worker = EngineWorker(engine, ckpt.id)
        return ModelEntry(ckpt, task, engine, worker, bound, device, slots, max_queue, load_s,
                          identifiers=_arc_identifiers(stem, task, ckpt.config.num_puzzle_ids))

    def _pick_defaults(self) -> dict[str, str]:
        """Configured defaults first; otherwise the first name of a task, highest version."""
        defaults: dict[str, str] = {}
        for ref in self.settings.default_models:
            matches = self._matching(ref, None)
            if not matches:
                self.load_errors.append(f"default model {ref!r} is not loaded")
                continue
            defaults.setdefault(matches[0].checkpoint.task, matches[0].id)
        by_name = sorted(self.entries.values(),
                         key=lambda e: (e.checkpoint.name, -e.checkpoint.version))
        for entry in by_name:
            defaults.setdefault(entry.checkpoint.task, entry.id)
        return defaults

    def warmup(self) -> None:
        """One dummy step per engine so the first request pays no start-up cost (blocking)."""
        for entry in self.entries.values():
            if self.settings.warmup:
                started = time.perf_counter()
                entry.engine.warmup()
                log.info("warmed up %s in %.2f s", entry.id, time.perf_counter() - started)
            entry.warmed = True

    def start_workers(self) -> None:
        for entry in self.entries.values():
            entry.worker.start()

    def stop_workers(self, timeout_s: float = 10.0) -> None:
        for entry in self.entries.values():
            entry.worker.stop(timeout_s)

    # ------------------------------------------------------------------------------- lookup

    @property
    def warmed(self) -> bool:
        return bool(self.entries) and all(e.warmed for e in self.entries.values())

    def dead_workers(self) -> list[str]:
        return [e.id for e in self.entries.values() if not e.worker.alive]

    def for_task(self, task: str) -> list[ModelEntry]:
        return [e for e in self.entries.values() if e.checkpoint.task == task]

    def _matching(self, ref: str, task: str | None) -> list[ModelEntry]:
        """Entries whose id is `ref`, or whose name is `ref` (highest version first)."""
        pool = self.for_task(task) if task else list(self.entries.values())
        exact = [e for e in pool if e.id == ref]
        if exact:
            return exact
        named = [e for e in pool if e.checkpoint.name == ref]
        return sorted(named, key=lambda e: -e.checkpoint.version)

    def resolve(self, task: str, ref: str | None) -> ModelEntry:
        """The model serving `task` named by `ref` (id or name), or the task's default."""
        if ref is None:
            default = self.defaults.get(task)
            if default is not None:
                return self.entries[default]
            raise UnknownModel("(default)", task, [])
        matches = self._matching(ref, task)
        if not matches:
            raise UnknownModel(ref, task, sorted(e.id for e in self.for_task(task)))
        return matches[0]
