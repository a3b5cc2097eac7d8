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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _ordered_params(optimizers: Sequence[torch.optim.Optimizer]) -> list[torch.Tensor]:
    """Every optimizer's parameters in one fixed order: a state's index is its place here."""
    return [p for opt in optimizers for group in opt.param_groups for p in group["params"]]


def _optimizer_of(optimizers: Sequence[torch.optim.Optimizer]) -> list[torch.optim.Optimizer]:
    return [opt for opt in optimizers for group in opt.param_groups for _ in group["params"]]


def _optimizer_tensors(optimizers: Sequence[torch.optim.Optimizer], dtype: torch.dtype
                       ) -> dict[str, Any]:
    """Each parameter's state tensors (AdamW's two moments, Muon's momentum) as
    `opt.<index>.<key>` in `dtype`, and its scalar step count where the optimizer keeps one."""
    tensors: dict[str, torch.Tensor] = {}
    states: dict[str, dict[str, Any]] = {}
    for index, (param, opt) in enumerate(zip(_ordered_params(optimizers),
                                             _optimizer_of(optimizers), strict=True)):
        state = opt.state.get(param)
        if not state:
            continue
        keys = [k for k, v in state.items() if k != "step" and torch.is_tensor(v)]
        for key in keys:
            tensors[f"opt.{index}.{key}"] = state[key].detach().to("cpu", dtype).contiguous()
        step = float(state["step"]) if "step" in state else None
        states[str(index)] = {"step": step, "keys": keys}
    return {"tensors": tensors, "states": states}


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
                optimizers: Sequence[torch.optim.Optimizer], info: dict[str, Any],
                moments_dtype: str = "float32", shard_mb: float = 15.0,
                low_precision: tuple[str, ...] = ()) -> None:
    """Write `<stem>-NN.safetensors` shards of at most `shard_mb` MiB and `<stem>.json` (which
    lists them, and is written last so a reader never sees a half-written state);
    `info` must be JSON-serialisable. Model tensors named in `low_precision` are stored in
    `moments_dtype`."""
    dtype = torch.bfloat16 if moments_dtype == "bfloat16" else torch.float32
    opt = _optimizer_tensors(optimizers, dtype)
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
    meta = {**info, "optimizer_states": opt["states"], "moments_dtype": moments_dtype,
            "shards": shards}
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")


def load_resume(stem: Path, model: nn.Module, ema: nn.Module | None,
                optimizers: Sequence[torch.optim.Optimizer]) -> dict[str, Any]:
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
    params, owners = _ordered_params(optimizers), _optimizer_of(optimizers)
    for index_text, saved in meta["optimizer_states"].items():
        param, owner = params[int(index_text)], owners[int(index_text)]
        state: dict[str, Any] = {
            key: tensors[f"opt.{index_text}.{key}"].to(param.device, param.dtype)
            for key in saved["keys"]}
        if saved["step"] is not None:
            state["step"] = torch.tensor(saved["step"])
        owner.state[param] = state
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
