"""Training configuration: a frozen dataclass per concern, read from a TOML run file with
`section.field=value` overrides type-checked against the dataclass.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trm_core.config import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Defaults follow the fast public Sudoku recipe (see README)."""

    task: str = ""  # required: the registered task this run trains
    # A data-defined task's spec (task.toml): read and registered before the task is looked up.
    task_spec: str = ""
    # A CSV, or for ARC a `trm data-arc` build folder (its train split; eval_data names the
    # folder whose test split is scored, usually the same one). "" = no evaluation.
    train_data: str = "data/sudoku/train.csv"
    eval_data: str = "data/sudoku/val.csv"
    batch_size: int = 768  # global batch, split evenly over torchrun ranks
    total_steps: int = 50_000  # optimizer steps (one supervision step each)
    lr: float = 1e-4
    lr_min_ratio: float = 0.01  # cosine decays to lr * lr_min_ratio (1.0 = constant)
    # "muon": Muon on the reasoner's weight matrices, AdamW on the rest (trm_core/optim.py)
    optimizer: Literal["adamw", "muon"] = "adamw"
    muon_momentum: float = 0.95
    muon_lr: float = 0.0  # Muon's peak lr (AdamW-RMS matched); 0 = train.lr
    label_smoothing: float = 0.0  # answer CE against (1 - e) one-hot + e uniform
    warmup_steps: int = 2000
    weight_decay: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    # Puzzle embeddings: sign-SGD on the rows a batch uses, on the same warmup/cosine schedule.
    puzzle_emb_lr: float = 1e-4
    puzzle_emb_weight_decay: float = 1.0
    ema_rate: float = 0.999  # 0 disables the EMA copy
    loss: Literal["stablemax", "softmax"] = "stablemax"
    halt_loss_weight: float = 0.5
    halt_exploration_prob: float = 0.1
    augment: bool = True
    eval_every: int = 1000
    eval_puzzles: int = 2000  # first N of eval_data; 0 = all
    eval_batch_size: int = 512
    out_dir: str = "runs/sudoku"
    name: str = "trm-sudoku"  # checkpoint name; the model id is name@version
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    compile: Literal["auto", "off", "default", "reduce-overhead", "max-autotune"] = "auto"
    # auto = bf16 on CUDA, fp32 on CPU; native = bf16 on CUDA and on CPUs with native bf16
    # (AMX / AVX512-BF16, the CPU fast path), fp32 elsewhere (emulated bf16 is slower)
    autocast: Literal["auto", "native", "off", "bfloat16"] = "auto"
    time_limit_s: float = 0.0  # stop (saving resume state) after this long in this call (a
    # resumed run gets it again); 0 = no limit
    # Adam moments and the puzzle-embedding table on disk (weights and EMA stay float32)
    resume_state_dtype: Literal["float32", "bfloat16"] = "float32"
    resume_shard_mb: float = 15.0  # largest resume file; some transports cap file size
    threads: int = 0  # torch CPU threads; 0 = torch's default
    # A checkpoint stem to start from when out_dir holds no resume state: its weights (as
    # model and EMA), step and curve carry over, the optimizer starts fresh and the learning
    # rate warms up again over warmup_steps. How a run continues on another machine from the
    # small bf16 weights committed at the end of a session.
    init_from: str = ""

    def __post_init__(self) -> None:
        positive = ("batch_size", "total_steps", "eval_every", "eval_batch_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.puzzle_emb_lr <= 0 or self.puzzle_emb_weight_decay < 0:
            raise ValueError("train.puzzle_emb_lr must be > 0 and puzzle_emb_weight_decay "
                             f">= 0, got {self.puzzle_emb_lr} and "
                             f"{self.puzzle_emb_weight_decay}")
        if not 0 <= self.ema_rate < 1:
            raise ValueError(f"train.ema_rate must be in [0, 1), got {self.ema_rate}")
        if not 0 <= self.lr_min_ratio <= 1:
            raise ValueError(f"train.lr_min_ratio must be in [0, 1], got {self.lr_min_ratio}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"train.label_smoothing must be in [0, 1), got "
                             f"{self.label_smoothing}")
        if self.muon_lr < 0:
            raise ValueError(f"train.muon_lr must be >= 0, got {self.muon_lr}")
        if not 0 <= self.muon_momentum < 1:
            raise ValueError(f"train.muon_momentum must be in [0, 1), got {self.muon_momentum}")
        if self.loss not in ("stablemax", "softmax"):
            raise ValueError(f"train.loss must be stablemax or softmax, got {self.loss!r}")


@dataclass(frozen=True)
class RunConfig:
    """A named run: the model to build and how to train it."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"model": dataclasses.asdict(self.model), "train": dataclasses.asdict(self.train)}


def _coerce(section: str, name: str, hint: Any, raw: Any) -> Any:
    """Convert `raw` (TOML value or command-line string) to the field's declared type."""
    where = f"{section}.{name}"
    origin = typing.get_origin(hint)
    if origin is Literal:
        if raw not in typing.get_args(hint):
            choices = ", ".join(map(str, typing.get_args(hint)))
            raise ValueError(f"{where} must be one of {choices}, got {raw!r}")
        return raw
    if hint is bool:
        if isinstance(raw, str):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{where} expects true or false, got {raw!r}")
            return raw.lower() in ("true", "1")
        return bool(raw)
    try:
        return hint(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{where} expects {hint.__name__}, got {raw!r}") from None


def _build(cls: Any, section: str, values: dict[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown {section} fields: {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(known))}")
    return cls(**{k: _coerce(section, k, hints[k], v) for k, v in values.items()})


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    """`["model.hidden_size=64", "train.lr=3e-4"]` -> {"model": {...}, "train": {...}}."""
    parsed: dict[str, dict[str, str]] = {"model": {}, "train": {}}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or section not in parsed:
            raise ValueError(f"override {pair!r} must look like model.FIELD=VALUE or "
                             "train.FIELD=VALUE")
        parsed[section][name] = value.strip()
    return parsed


def load_run(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML run file (sections [model] and [train]), then apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        data = tomllib.loads(Path(path).read_text())
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ValueError(f"{path}: unknown sections {unknown}; expected [model] and [train]")
    extra = parse_overrides(overrides or [])
    model_values = {**data.get("model", {}), **extra["model"]}
    train_values = {**data.get("train", {}), **extra["train"]}
    return RunConfig(_build(ModelConfig, "model", model_values),
                     _build(TrainConfig, "train", train_values))


def run_from_dict(data: dict[str, Any]) -> RunConfig:
    """The inverse of `RunConfig.to_dict` (resolved configs saved with checkpoints)."""
    return RunConfig(ModelConfig.from_dict(data["model"]),
                     _build(TrainConfig, "train", data["train"]))
