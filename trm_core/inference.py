"""The precision policy: the one place that decides the arithmetic a model runs in for inference
and evaluation, i.e. its weights' dtype and the autocast dtype around its steps.

The service (`TRM_DTYPE`, `TRM_AUTOCAST`), `trm eval` and `trm eval-arc` (`--dtype`) and the
benchmarks all ask `resolve_precision`, so the same choice on the same machine means the same
arithmetic, and a checkpoint scored locally and through a service agrees; the trainer's
evaluation, whose weights stay fp32, should run at `resolve_precision("float32", device)`.
bfloat16 weights are the fast path on CPUs with native bf16 matrix instructions
(AVX512-BF16 or AMX): 16 steps of the paper-size Sudoku model run several times faster than
fp32 there, with the same answers (`benchmarks/cpu_inference.py`). Elsewhere bf16 is emulated
and slow, so "auto" keeps fp32 on such CPUs; on CUDA it keeps fp32 weights under bf16 autocast.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from trm_core.model import TRM

InferenceDtype = Literal["auto", "float32", "bfloat16"]
AutocastChoice = Literal["off", "bfloat16", "float16"]
DTYPE_CHOICES: tuple[InferenceDtype, ...] = ("auto", "float32", "bfloat16")
log = logging.getLogger(__name__)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_WEIGHTS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
_AUTOCAST = {"off": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The arithmetic of a model's steps: weights in `weights`, under `autocast` when set."""

    weights: torch.dtype
    autocast: torch.dtype | None = None

    @property
    def name(self) -> str:
        """E.g. "bfloat16", or "float32+autocast-bfloat16"; what reports and /v1/models show."""
        weights = str(self.weights).removeprefix("torch.")
        if self.autocast is None:
            return weights
        return f"{weights}+autocast-{str(self.autocast).removeprefix('torch.')}"


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU advertises bf16 matrix instructions (Linux; False where unknown)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_FLAGS)


def cpu_description(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name, core count and whether it has native bf16, for cards and benchmark
    reports (figures from different CPUs are not comparable), e.g.
    "AMD EPYC, 2 cores, no native bf16"."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "cpu"
    names = [line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("model name")]
    bf16 = "native bf16" if cpu_has_native_bf16(cpuinfo) else "no native bf16"
    return f"{names[0] if names else 'cpu'}, {len(names) or 1} cores, {bf16}"


def resolve_dtype(dtype: InferenceDtype, device: torch.device,
                  native_bf16: bool | None = None) -> Literal["float32", "bfloat16"]:
    """What "auto" means on this device: bf16 weights on a bf16-capable CPU, else fp32.
    `native_bf16` overrides the CPU probe (tests use it to stand in for the other kind)."""
    if dtype not in DTYPE_CHOICES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}, got {dtype!r}")
    if dtype != "auto":
        return dtype
    if native_bf16 is None:
        native_bf16 = cpu_has_native_bf16()
    return "bfloat16" if device.type == "cpu" and native_bf16 else "float32"


def resolve_precision(dtype: InferenceDtype, device: str | torch.device,
                      autocast: AutocastChoice = "off",
                      native_bf16: bool | None = None) -> Precision:
    """The precision to run at: the weights' dtype from `dtype` (see `resolve_dtype`), and bf16
    autocast over fp32 weights on CUDA; `autocast` other than "off" forces that autocast."""
    device = torch.device(device)
    weights = _WEIGHTS[resolve_dtype(dtype, device, native_bf16)]
    if autocast not in _AUTOCAST:
        raise ValueError(f"autocast must be one of {', '.join(_AUTOCAST)}, got {autocast!r}")
    forced = _AUTOCAST[autocast]
    if forced is not None:
        return Precision(weights, forced)
    on_tensor_cores = device.type == "cuda" and weights == torch.float32
    return Precision(weights, torch.bfloat16 if on_tensor_cores else None)


def prepare_for_inference(model: TRM, device: str | torch.device,
                          dtype: InferenceDtype = "auto", autocast: AutocastChoice = "off",
                          native_bf16: bool | None = None) -> tuple[TRM, Precision]:
    """Move `model` to `device` in eval mode with the chosen weights' dtype; returns it and the
    precision (its `autocast` is what the engine should run under)."""
    precision = resolve_precision(dtype, device, autocast, native_bf16)
    model = model.to(device=torch.device(device), dtype=precision.weights).eval()
    log.info("inference on %s at %s", device, precision.name)
    return model, precision
