"""The loaded models: one checkpoint, one `Engine` and one engine thread per model.

`ModelRegistry.load` finds every checkpoint under the checkpoint folder (`TRM_CHECKPOINT_DIR`, else
the shipped ones: `Settings.checkpoint_root`), builds an engine for it on the configured device,
and picks a default model per task. A checkpoint that fails to load is logged and skipped (and
reported by readiness) so one bad file does not take the service down. Two checkpoints that claim
the same id (`name@version`) are both refused, loudly, and readiness fails until one is renamed:
serving either would silently shadow the other.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import safe_open

from app import errors
from app.engine_thread import EngineThread
from app.metrics import Metrics, ModelMetrics
from app.settings import Settings
from trm_core.calibration import Calibration
from trm_core.checkpoint import (
    Checkpoint,
    file_sha256,
    find_checkpoints,
    load_checkpoint,
    read_card,
    weights_path,
)
from trm_core.config import ModelConfig
from trm_core.engine import Engine, TickStats
from trm_core.inference import prepare_for_inference, resolve_precision
from trm_core.model import TRM, count_parameters
from trm_core.tasks import TASKS, task_of_card
from trm_core.tasks.base import Task

log = logging.getLogger(__name__)


def _calibration(checkpoint: Checkpoint) -> Calibration | None:
    """The card's calibration; a malformed one is logged and ignored (no `confidence`)."""
    entry = checkpoint.card.get("calibration")
    if entry is None:
        return None
    try:
        return Calibration.from_card(entry)
    except ValueError as exc:
        log.error("%s: ignoring its calibration: %s", checkpoint.path, exc)
        return None


def _ambiguous_ids(stems: list[Path]) -> dict[str, list[Path]]:
    """Model ids (`name@version`, from the cards) claimed by more than one checkpoint."""
    claims: defaultdict[str, list[Path]] = defaultdict(list)
    for stem in stems:
        try:
            card = read_card(stem)
            claims[f"{card['name']}@{int(card.get('version', 1))}"].append(stem)
        except (OSError, ValueError, KeyError):
            continue  # loading reports the broken card
    return {model_id: paths for model_id, paths in claims.items() if len(paths) > 1}


# TRM's persistent buffers (its initial states, trm_core/model.py): in the weights file, not
# parameters. tests/app/test_service_setup.py holds the header count to `count_parameters`.
_BUFFERS = frozenset({"y_init", "z_init"})


@dataclass
class CardCheckpoint(Checkpoint):
    """A checkpoint's card and identity without its weights (a broker-mode API replica's
    view: the broker workers load the weights). `model` is never built."""

    parameters: int = 0

    def __post_init__(self) -> None:
        self.config = ModelConfig.from_dict(self.card["model"])

    @classmethod
    def read(cls, stem: Path) -> CardCheckpoint:
        weights = weights_path(stem)
        with safe_open(str(weights), "pt") as header:  # reads the header, no tensor
            parameters = sum(math.prod(header.get_slice(name).get_shape())
                             for name in header.keys() if name not in _BUFFERS)  # noqa: SIM118
        no_model = cast(TRM, None)  # what a card-only entry must never touch
        return cls(no_model, read_card(stem), stem, file_sha256(weights), parameters)


class UnknownModel(LookupError):
    """No loaded model of the task matches the reference; `available` lists those that do."""

    def __init__(self, ref: str, task: str, available: list[str]) -> None:
        super().__init__(ref)
        self.ref = ref
        self.task = task
        self.available = available


@dataclass
class ModelEntry:
    """A servable model: checkpoint, task, engine, engine thread and its bound metrics. A
    card-only entry (`ModelRegistry.read_cards`: a broker-mode API replica) has neither."""

    checkpoint: Checkpoint
    task: Task
    loaded_engine: Engine | None
    loaded_thread: EngineThread | None
    metrics: ModelMetrics
    device: str
    precision: str  # `Precision.name`: the arithmetic its steps run in
    slots: int
    max_queue: int
    load_s: float
    warmed: bool = False
    # What the task keeps with the model beyond its weights (`Task.load_model_extras`; ARC:
    # the checkpoint's row -> task version table, its `<stem>.identifiers.json` sidecar)
    identifiers: Any = None
    parameters: int = field(init=False)
    # The card's confidence calibration (`trm calibrate`); None: results carry no `confidence`.
    calibration: Calibration | None = field(init=False)

    def __post_init__(self) -> None:
        self.parameters = (self.checkpoint.parameters if isinstance(self.checkpoint, CardCheckpoint)
                           else count_parameters(self.checkpoint.model))
        self.calibration = _calibration(self.checkpoint)

    @property
    def id(self) -> str:
        return self.checkpoint.id

    @property
    def engine(self) -> Engine:
        assert self.loaded_engine is not None, f"{self.id} is a card only: no engine"
        return self.loaded_engine

    @property
    def thread(self) -> EngineThread:
        assert self.loaded_thread is not None, f"{self.id} is a card only: no engine thread"
        return self.loaded_thread

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
            "max_steps": self.max_steps, "device": self.device, "precision": self.precision,
            "parameters": self.parameters,
            "loaded": True, "warmed": self.warmed,
            "batching": {"slots": self.slots, "max_queue": self.max_queue},
        }
        body.update(self.task.describe_model_extras(self.identifiers))
        evaluation = ckpt.card.get("evaluation")
        if evaluation is not None:
            body["evaluation"] = evaluation
        calibration = ckpt.card.get("calibration")
        if self.calibration is not None and calibration is not None:
            body["calibration"] = {key: calibration.get(key) for key in
                                   ("table", "answers", "data", "settings", "measured_at")}
        return body


class ModelRegistry:
    """Every loaded model by id, plus the default model of each task."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.entries: dict[str, ModelEntry] = {}
        self.defaults: dict[str, str] = {}
        self.load_errors: list[str] = []
        self.refused: list[str] = []  # checkpoints refused for an ambiguous id: not ready
        self.loaded = False
        self._served: list[str] | None = None
        self._root: Path | None = None

    def require_task(self, task_name: str) -> None:
        """The one rule for a task this service cannot answer, whether no such task exists or
        no model for it is loaded (Sudoku, mazes and ARC alike): 404 naming what it serves."""
        served = self.served_tasks()
        if task_name in served:
            return
        what = "unknown task" if task_name not in TASKS else "no model is loaded for task"
        serves = ", ".join(served) if served else \
            f"none (no checkpoints under {self.root.resolve()})"
        raise errors.not_found("task", f"{what} {task_name!r}; this service serves: {serves}",
                               known=served)

    def check(self) -> str:
        """Readiness of the loaded models: "ok", or why they cannot serve (ids refused as
        ambiguous, nothing found or loaded)."""
        if self.refused:
            return "; ".join(self.refused)
        return "ok" if self.entries else "; ".join(self.load_errors) or "no models"

    @property
    def root(self) -> Path:
        """The folder checkpoints are read from (resolved once)."""
        if self._root is None:
            self._root = self.settings.checkpoint_root()
        return self._root

    def served_tasks(self) -> list[str]:
        """Tasks with a checkpoint to serve, read once from the cards (known before loading, so
        the tools advertised to agents never name a task no model can answer). A card that
        carries a data-defined task's spec registers its task here, so the task is known."""
        if self._served is None:
            tasks = set()
            for stem in find_checkpoints(self.root):
                try:
                    tasks.add(task_of_card(read_card(stem)).name)
                except (OSError, ValueError, KeyError):
                    continue  # loading reports the broken card
            self._served = sorted(tasks & set(TASKS))
        return self._served

    # ------------------------------------------------------------------------------- loading

    def read_cards(self) -> None:
        """Every checkpoint's card, without its weights or an engine (blocking): what a
        broker-mode API replica needs to admit and describe jobs that broker workers run."""
        self.load(engines=False)

    def load(self, engines: bool = True) -> None:
        """Load every checkpoint (blocking; call it off the event loop)."""
        device = self.settings.resolved_device(torch.cuda.is_available())
        if self.settings.torch_threads is not None:
            # On a small CPU box, fewer intra-op threads than cores leaves one for the event loop
            # and avoids OpenMP spinning against it.
            torch.set_num_threads(self.settings.torch_threads)
        stems = self._unambiguous(find_checkpoints(self.root))
        if not stems and not self.refused:
            self._warn_no_checkpoints()
        for stem in stems:
            try:
                entry = (self._load_one(stem, device) if engines
                         else self._card_only(stem, device))
            except Exception as exc:
                log.exception("could not load checkpoint %s", stem)
                self.load_errors.append(f"{stem}: {exc}")
                continue
            self.entries[entry.id] = entry
            log.info("loaded %s (%s, %d parameters) on %s in %.2f s", entry.id,
                     entry.checkpoint.task, entry.parameters, device, entry.load_s)
        self.defaults = self._pick_defaults()
        self.loaded = True

    def _unambiguous(self, stems: list[Path]) -> list[Path]:
        """`stems` without those whose model id another checkpoint claims too (refused, with
        an error naming every claimant and the fix)."""
        ambiguous = _ambiguous_ids(stems)
        for model_id, paths in ambiguous.items():
            message = (f"model id {model_id} is claimed by {len(paths)} checkpoints: "
                       f"{', '.join(str(p) for p in paths)}; serving none of them. Give one "
                       f"another name or version in its card (e.g. trm train --set "
                       f"train.name=NAME), or serve one folder with --checkpoints DIR")
            log.error("%s", message)
            self.refused.append(message)
        refused = {p for paths in ambiguous.values() for p in paths}
        return [stem for stem in stems if stem not in refused]

    def _warn_no_checkpoints(self) -> None:
        """Say loudly where no checkpoint was found: the service can answer nothing."""
        looked = ", ".join(str(d.resolve()) for d in self.settings.checkpoint_dirs())
        message = (f"no checkpoints (NAME.safetensors beside NAME.json) under {looked}; set "
                   f"TRM_CHECKPOINT_DIR or pass --checkpoints DIR")
        log.warning("no models: %s", message)
        self.load_errors.append(message)

    def _load_one(self, stem: Any, device: str) -> ModelEntry:
        started = time.perf_counter()
        ckpt = load_checkpoint(stem, device)
        task = task_of_card(ckpt.card)
        slots = self.settings.slots_for(device)
        max_queue = self.settings.queue_for(slots)
        bound = self.metrics.bind_model(ckpt.id, task.name, device)

        def on_tick(stats: TickStats) -> None:
            bound.observe_tick(stats)

        model, precision = prepare_for_inference(ckpt.model, device, self.settings.dtype,
                                                 self.settings.autocast)
        engine = Engine(model, task, slots=slots, max_queue=max_queue, device=device,
                        autocast_dtype=precision.autocast, seed=self.settings.seed,
                        on_tick=on_tick)
        load_s = time.perf_counter() - started
        self.metrics.register_model(ckpt.id, task.name, ckpt.version, ckpt.sha256, device,
                                    load_s, lambda: (engine.queue_depth, engine.active_slots))
        thread = EngineThread(engine, ckpt.id)
        identifiers = task.load_model_extras(Path(stem), ckpt.config.num_puzzle_ids)
        return ModelEntry(ckpt, task, engine, thread, bound, device, precision.name, slots,
                          max_queue, load_s, identifiers=identifiers)

    def _card_only(self, stem: Path, device: str) -> ModelEntry:
        """An entry from the card and the weights file's header alone: no tensor is read and
        no engine built, so describing a model costs no weights or engine buffers."""
        started = time.perf_counter()
        ckpt = CardCheckpoint.read(stem)
        task = task_of_card(ckpt.card)
        slots = self.settings.slots_for(device)
        precision = resolve_precision(self.settings.dtype, device, self.settings.autocast)
        identifiers = task.load_model_extras(Path(stem), ckpt.config.num_puzzle_ids)
        return ModelEntry(ckpt, task, None, None,
                          self.metrics.bind_model(ckpt.id, task.name, device), device,
                          precision.name, slots, self.settings.queue_for(slots),
                          time.perf_counter() - started, warmed=True, identifiers=identifiers)

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

    def start_engines(self) -> None:
        for entry in self.entries.values():
            entry.thread.start()

    def stop_engines(self, timeout_s: float = 10.0) -> None:
        for entry in self.entries.values():
            entry.thread.stop(timeout_s)

    # ------------------------------------------------------------------------------- lookup

    @property
    def warmed(self) -> bool:
        return bool(self.entries) and all(e.warmed for e in self.entries.values())

    def dead_engines(self) -> list[str]:
        return [e.id for e in self.entries.values() if not e.thread.alive]

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
