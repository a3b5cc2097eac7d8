"""The checkpoint format: `<stem>.safetensors` (weights, no pickle) beside `<stem>.json` (the card:
model config, task, step, training config, data provenance, evaluation results).

Trainer, evaluator, engine and service all save and load through this module.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from trm_core.config import ModelConfig
from trm_core.model import TRM

FORMAT = "trm-checkpoint/1"
log = logging.getLogger(__name__)
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Checkpoint:
    """A loaded model with its card. `id` is `name@version`, what API users select."""

    model: TRM
    card: dict[str, Any]
    path: Path
    sha256: str
    config: ModelConfig = field(init=False)

    def __post_init__(self) -> None:
        self.config = self.model.config

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def version(self) -> int:
        return int(self.card.get("version", 1))

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def task(self) -> str:
        return str(self.card["task"])


def weights_path(stem: Path) -> Path:
    return stem.with_suffix(".safetensors")


def card_path(stem: Path) -> Path:
    return stem.with_suffix(".json")


def save_checkpoint(stem: str | Path, model: TRM, card: dict[str, Any],
                    dtype: str = "float32") -> Path:
    """Write weights (floats cast to `dtype`, buffers included) and the card; returns the stem.

    `card` must name `name` and `task`; the model config and format are filled in here.
    """
    for key in ("name", "task"):
        if key not in card:
            raise ValueError(f"checkpoint card needs a {key!r}")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    stem = Path(stem).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: _cast(v, _DTYPES[dtype]) for k, v in model.state_dict().items()}
    save_file(tensors, str(weights_path(stem)))
    full_card = {"format": FORMAT, "version": 1, **card, "dtype": dtype,
                 "model": model.config.to_dict()}
    card_path(stem).write_text(json.dumps(full_card, indent=2, sort_keys=False) + "\n")
    return stem


def _cast(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    return tensor.to(dtype).contiguous() if tensor.is_floating_point() else tensor.contiguous()


def read_card(stem: str | Path) -> dict[str, Any]:
    path = card_path(Path(stem).with_suffix(""))
    card: dict[str, Any] = json.loads(path.read_text())
    if card.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} card (format={card.get('format')!r})")
    return card


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_checkpoint(stem: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load weights (as fp32) and card; the model is in eval mode on `device`."""
    stem = Path(stem).with_suffix("")
    card = read_card(stem)
    model = TRM(ModelConfig.from_dict(card["model"]))
    tensors = load_file(str(weights_path(stem)))
    expected = model.state_dict()
    state = {k: v.to(expected[k].dtype) if k in expected else v for k, v in tensors.items()}
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return Checkpoint(model, card, stem, file_sha256(weights_path(stem)))


def find_checkpoints(root: str | Path) -> list[Path]:
    """Every checkpoint stem under `root` (a `.json` card beside a `.safetensors` file)."""
    root = Path(root)
    stems = sorted(p.with_suffix("") for p in root.rglob("*.safetensors"))
    return [s for s in stems if card_path(s).exists()]


def update_card(stem: str | Path, **fields: Any) -> None:
    """Merge `fields` into an existing card (evaluation results, for example)."""
    stem = Path(stem).with_suffix("")
    card = read_card(stem)
    card.update(fields)
    card_path(stem).write_text(json.dumps(card, indent=2) + "\n")
