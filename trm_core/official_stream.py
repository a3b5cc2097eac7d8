"""Convert an official TRM checkpoint of any size into our format without holding it twice.

An official ARC checkpoint carries a puzzle-embedding table of about 900,000 rows x 512 (1.8 GB
in fp32). `torch.load(..., weights_only=True, mmap=True)` maps the file instead of reading it
(and never unpickles anything but tensors), and `write_safetensors` streams every tensor into
the output in blocks of rows, converting dtypes block by block, so the process holds one block
at a time beside the mapped pages (which the OS can drop) rather than a second 1.8 GB copy.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch

from trm_core.checkpoint import FORMAT, card_path, weights_path
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.official import official_names, strip_prefixes

BLOCK_BYTES = 32 << 20  # largest block converted at once
_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16",
                       torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
                       torch.bool: "BOOL"}


def load_official_mapped(path: str | Path) -> dict[str, torch.Tensor]:
    """The official file's tensors, memory-mapped; `test.` entries (evaluation state) dropped."""
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k: v for k, v in state.items() if not k.startswith("test.")}


def infer_config(state: Mapping[str, torch.Tensor], arch: Mapping[str, Any],
                 seq_len: int) -> ModelConfig:
    """Our config from the official `arch` settings plus what only the tensors say (vocabulary,
    identifier count), since the official run keeps those in its dataset's metadata."""
    shapes = {strip_prefixes(k): tuple(v.shape) for k, v in state.items()}
    merged = dict(arch)
    merged.setdefault("seq_len", seq_len)
    merged.setdefault("vocab_size", shapes["embed_tokens.embedding_weight"][0])
    puzzle = shapes.get("puzzle_emb.weights")
    if puzzle is not None:
        merged.setdefault("num_puzzle_identifiers", puzzle[0])
        merged.setdefault("puzzle_emb_ndim", puzzle[1])
        merged.setdefault("puzzle_emb_len", 16)
    return ModelConfig.from_official(merged)


def convert_official(state: Mapping[str, torch.Tensor], config: ModelConfig, stem: str | Path,
                     card: dict[str, Any]) -> Path:
    """Write `state` (official layout) as our checkpoint `stem` (fp32 weights + card), streaming.
    Every weight the model needs must be present with its shape."""
    names = official_names(state.keys(), config.num_layers)
    expected = expected_shapes(config)
    missing = sorted(set(expected) - set(names.values()))
    if missing:
        raise ValueError(f"official checkpoint lacks weights for: {', '.join(missing)}")
    tensors = {}
    for official, ours in names.items():
        tensor = state[official]
        if tuple(tensor.shape) != expected[ours]:
            raise ValueError(f"{ours}: checkpoint shape {tuple(tensor.shape)} != model shape "
                             f"{expected[ours]} (check the config)")
        tensors[ours] = tensor
    stem = Path(stem).with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    write_safetensors(weights_path(stem), tensors, torch.float32)
    full_card = {"format": FORMAT, "version": 1, **card, "dtype": "float32",
                 "model": config.to_dict()}
    card_path(stem).write_text(json.dumps(full_card, indent=2) + "\n")
    return stem


def expected_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every saved tensor's shape for `config`, without allocating its puzzle table."""
    small = ModelConfig.from_dict({**config.to_dict(), "num_puzzle_ids": 1})
    shapes = {k: tuple(v.shape) for k, v in TRM(small).state_dict().items()}
    if "puzzle_embedding.weight" in shapes:
        shapes["puzzle_embedding.weight"] = (config.num_puzzle_ids, config.puzzle_emb_dim)
    return shapes


def write_safetensors(path: str | Path, tensors: Mapping[str, torch.Tensor],
                      float_dtype: torch.dtype) -> Path:
    """A safetensors file of `tensors` (floats cast to `float_dtype`), written block by block."""
    order = sorted(tensors)
    header: dict[str, Any] = {}
    offset = 0
    for name in order:
        dtype = _out_dtype(tensors[name], float_dtype)
        size = tensors[name].numel() * dtype.itemsize
        header[name] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    path = Path(path)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for name in order:
            _write_blocks(handle, tensors[name], _out_dtype(tensors[name], float_dtype))
    return path


def _out_dtype(tensor: torch.Tensor, float_dtype: torch.dtype) -> torch.dtype:
    return float_dtype if tensor.is_floating_point() else tensor.dtype


def _write_blocks(handle: BinaryIO, tensor: torch.Tensor, dtype: torch.dtype) -> None:
    """Rows of `tensor` in blocks of at most BLOCK_BYTES, each cast and written, then freed."""
    flat = tensor.reshape(tensor.shape[0], -1) if tensor.dim() > 1 else tensor.reshape(-1, 1)
    if flat.numel() == 0:
        return
    row_bytes = max(1, flat.shape[1] * max(dtype.itemsize, tensor.dtype.itemsize))
    rows = max(1, BLOCK_BYTES // row_bytes)
    for start in range(0, flat.shape[0], rows):
        block = flat[start:start + rows].to(dtype).contiguous()
        handle.write(block.view(torch.uint8).numpy().data)
