"""Choosing how a model runs for inference: the weights' dtype and autocast per device.

bfloat16 weights are the fast path on CPUs with native bf16 matrix instructions (AVX512-BF16 or
AMX): 16 steps of the paper-size Sudoku model run several times faster than fp32 there, with the
same answers (`benchmarks/cpu_inference.py`). Elsewhere bf16 is emulated and slow, so "auto"
keeps fp32 on such CPUs; on CUDA it keeps fp32 weights under bf16 autocast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch

from trm_core.model import TRM

InferenceDtype = Literal["auto", "float32", "bfloat16"]
log = logging.getLogger(__name__)
_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when the CPU advertises bf16 matrix instructions (Linux; False where unknown)."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_FLAGS)


def resolve_dtype(dtype: InferenceDtype, device: torch.device) -> InferenceDtype:
    """What "auto" means on this device: bf16 weights on a bf16-capable CPU, else fp32."""
    if dtype != "auto":
        return dtype
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bfloat16"
    return "float32"


def prepare_for_inference(model: TRM, device: str | torch.device,
                          dtype: InferenceDtype = "auto"
                          ) -> tuple[TRM, torch.dtype | None]:
    """Move `model` to `device` in eval mode with the chosen weights' dtype; returns it and the
    autocast dtype the engine should use (bf16 on CUDA, none on CPU)."""
    device = torch.device(device)
    chosen = resolve_dtype(dtype, device)
    weights = torch.bfloat16 if chosen == "bfloat16" else torch.float32
    model = model.to(device=device, dtype=weights).eval()
    autocast = torch.bfloat16 if device.type == "cuda" and chosen == "float32" else None
    log.info("inference on %s with %s weights%s", device, chosen,
             ", bf16 autocast" if autocast else "")
    return model, autocast
