"""Resume state for interrupted training runs: weights, EMA weights, AdamW moments and counters,
in safetensors beside a JSON file (no pickle).

The moments may be stored in bfloat16 to keep a 5M-parameter run's state small enough to move
between machines (weights + EMA in fp32 + two bf16 moments is about 60 MB), and the tensors are
split into shards of a bounded size (`<stem>-NN.safetensors`) for transports that cap file size.
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


def _shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[dict[str, torch.Tensor]]:
    """Greedy split into groups of at most `max_bytes` (a larger tensor gets a shard alone)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > max_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    return shards


def _write_shards(stem: Path, tensors: dict[str, torch.Tensor], max_bytes: int) -> list[str]:
    """Write the shards (each via a temporary name, then renamed); returns their file names."""
    for old in stem.parent.glob(f"{stem.name}-*.safetensors"):
        old.unlink()
    names = []
    for index, shard in enumerate(_shards(tensors, max_bytes)):
        path = stem.parent / f"{stem.name}-{index:02d}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(shard, str(tmp))
        tmp.replace(path)
        names.append(path.name)
    return names


def save_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizer: torch.optim.Optimizer, info: dict[str, Any],
                moments_dtype: str = "float32", shard_mb: float = 15.0) -> None:
    """Write `<stem>-NN.safetensors` shards of at most `shard_mb` MiB and `<stem>.json` (which
    lists them, and is written last so a reader never sees a half-written state);
    `info` must be JSON-serialisable."""
    dtype = torch.bfloat16 if moments_dtype == "bfloat16" else torch.float32
    opt = _optimizer_tensors(optimizer, dtype)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous()
                        for k, v in ema.state_dict().items()})
    tensors.update(opt["tensors"])
    stem.parent.mkdir(parents=True, exist_ok=True)
    shards = _write_shards(stem, tensors, int(shard_mb * 2**20))
    meta = {**info, "optimizer_steps": opt["counts"], "moments_dtype": moments_dtype,
            "shards": shards}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore what `save_resume` wrote into freshly built objects; returns the info dict."""
    meta: dict[str, Any] = json.loads(stem.with_suffix(".json").read_text())
    tensors: dict[str, torch.Tensor] = {}
    for name in meta["shards"]:
        tensors.update(load_file(str(stem.parent / name)))
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


def remove_resume(stem: Path) -> None:
    """Delete a saved resume state (its card first, so it never points at missing shards)."""
    stem.with_suffix(".json").unlink(missing_ok=True)
    for shard in stem.parent.glob(f"{stem.name}-*.safetensors"):
        shard.unlink()


def resume_exists(stem: Path) -> bool:
    meta = stem.with_suffix(".json")
    if not meta.exists():
        return False
    shards = json.loads(meta.read_text()).get("shards", [])
    return bool(shards) and all((stem.parent / name).exists() for name in shards)
