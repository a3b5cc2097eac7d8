"""Resume state for interrupted training runs: weights, EMA weights, AdamW moments and counters,
in safetensors beside a JSON file (no pickle).

The moments may be stored in bfloat16 to keep a 5M-parameter run's state small enough to move
between machines (weights + EMA in fp32 + two bf16 moments is about 60 MB).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _optimizer_tensors(optimizer: torch.optim.Optimizer, dtype: torch.dtype) -> dict[str, Any]:
    tensors: dict[str, torch.Tensor] = {}
    counts: dict[str, float] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, param in enumerate(params):
        state = optimizer.state.get(param)
        if not state:
            continue
        for moment in ("exp_avg", "exp_avg_sq"):
            tensors[f"opt.{index}.{moment}"] = state[moment].detach().to("cpu", dtype).contiguous()
        counts[str(index)] = float(state["step"])
    return {"tensors": tensors, "counts": counts}


def save_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizer: torch.optim.Optimizer, info: dict[str, Any],
                moments_dtype: str = "float32") -> None:
    """Write `<stem>.safetensors` and `<stem>.json`; `info` must be JSON-serialisable."""
    dtype = torch.bfloat16 if moments_dtype == "bfloat16" else torch.float32
    opt = _optimizer_tensors(optimizer, dtype)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous()
                        for k, v in ema.state_dict().items()})
    tensors.update(opt["tensors"])
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = stem.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(stem.with_suffix(".safetensors"))
    meta = {**info, "optimizer_steps": opt["counts"], "moments_dtype": moments_dtype}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what `save_resume` wrote into freshly built objects; returns the info dict."""
    tensors = load_file(str(stem.with_suffix(".safetensors")))
    meta: dict[str, Any] = json.loads(stem.with_suffix(".json").read_text())
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if ema is not None:
        ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        ema.load_state_dict(ema_state or model.state_dict())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index_text, count in meta["optimizer_steps"].items():
        param = params[int(index_text)]
        optimizer.state[param] = {
            "step": torch.tensor(count),
            "exp_avg": tensors[f"opt.{index_text}.exp_avg"].to(param.device, param.dtype),
            "exp_avg_sq": tensors[f"opt.{index_text}.exp_avg_sq"].to(param.device, param.dtype),
        }
    return meta


def resume_exists(stem: Path) -> bool:
    return stem.with_suffix(".safetensors").exists() and stem.with_suffix(".json").exists()
