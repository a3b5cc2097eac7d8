"""Resume state for interrupted training runs: weights, EMA weights, AdamW moments and counters,
in safetensors beside a JSON file (no pickle).

The moments may be stored in bfloat16 to keep a 5M-parameter run's state small enough to move
between machines (weights + EMA in fp32 + two bf16 moments is about 60 MB), and the tensors are
split into shards of a bounded size (`<stem>-NN.safetensors`) for transports that cap file size;
a tensor larger than a shard (an ARC puzzle-embedding table) is cut into row blocks stored as
`<name>#<block>`. Named model tensors (`low_precision`, e.g. that table) may be stored in the
moments' dtype too. EMA tensors that are the model's own (the EMA shares the live puzzle table)
are stored once.
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


def _split_large(tensors: dict[str, torch.Tensor], max_bytes: int) -> dict[str, torch.Tensor]:
    """Tensors over `max_bytes` cut along dim 0 into blocks `<name>#<k>` that fit a shard."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes <= max_bytes or tensor.dim() == 0 or len(tensor) < 2:
            out[key] = tensor
            continue
        rows = max(1, max_bytes * len(tensor) // nbytes)
        for block, piece in enumerate(torch.split(tensor, rows)):
            out[f"{key}#{block}"] = piece.clone()  # safetensors refuses shared storage
    return out


def _join_blocks(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `_split_large`."""
    whole = {k: v for k, v in tensors.items() if "#" not in k}
    blocks: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        if "#" in key:
            name, _, block = key.rpartition("#")
            blocks.setdefault(name, {})[int(block)] = tensor
    for name, parts in blocks.items():
        whole[name] = torch.cat([parts[k] for k in sorted(parts)])
    return whole


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
    for index, shard in enumerate(_shards(_split_large(tensors, max_bytes), max_bytes)):
        path = stem.parent / f"{stem.name}-{index:02d}.safetensors"
        tmp = path.with_suffix(".tmp")
        save_file(shard, str(tmp))
        tmp.replace(path)
        names.append(path.name)
    return names


def save_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizer: torch.optim.Optimizer, info: dict[str, Any],
                moments_dtype: str = "float32", shard_mb: float = 15.0,
                low_precision: tuple[str, ...] = ()) -> None:
    """Write `<stem>-NN.safetensors` shards of at most `shard_mb` MiB and `<stem>.json` (which
    lists them, and is written last so a reader never sees a half-written state);
    `info` must be JSON-serialisable. Model tensors named in `low_precision` are stored in
    `moments_dtype`."""
    dtype = torch.bfloat16 if moments_dtype == "bfloat16" else torch.float32
    opt = _optimizer_tensors(optimizer, dtype)
    live = model.state_dict()
    tensors = {f"model.{k}": v.detach().to("cpu", dtype if k in low_precision else v.dtype)
               .contiguous() for k, v in live.items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous()
                        for k, v in ema.state_dict().items()
                        if k not in live or v.data_ptr() != live[k].data_ptr()})
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
    tensors = _join_blocks(tensors)
    model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state)
    if ema is not None:
        ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        # Tensors the EMA shares with the model were stored once, under model.
        ema.load_state_dict({**model_state, **ema_state})
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
