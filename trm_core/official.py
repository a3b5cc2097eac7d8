"""Import and export of the official TRM trainer's state-dict layout.

The official trainer saves `torch.save(model.state_dict())` of a compiled wrapper, so its keys
read `_orig_mod.model.inner.<name>` (some copies add `module.` for DDP or drop the prefixes).
This module only renames and converts dtypes; reading the file is the caller's business (a
safetensors file, or a torch file loaded with `weights_only=True`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import torch

from trm_core.config import ModelConfig
from trm_core.model import TRM

_PREFIXES = ("module.", "_orig_mod.", "model.", "inner.")

# (official name, ours) outside the layers.
_FIXED = (
    ("H_init", "y_init"),
    ("L_init", "z_init"),
    ("embed_tokens.embedding_weight", "token_embedding.weight"),
    ("embed_pos.embedding_weight", "position_embedding.weight"),
    ("puzzle_emb.weights", "puzzle_embedding.weight"),
    ("lm_head.weight", "answer_head.weight"),
    ("q_head.weight", "halt_head.weight"),
    ("q_head.bias", "halt_head.bias"),
)
# (official name, ours) inside layer {i}: `L_level.layers.{i}.` <-> `reasoner.blocks.{i}.`
_PER_LAYER = (
    ("mlp_t.gate_up_proj.weight", "token_mixer.gate_up.weight"),
    ("mlp_t.down_proj.weight", "token_mixer.down.weight"),
    ("self_attn.qkv_proj.weight", "token_mixer.qkv.weight"),
    ("self_attn.o_proj.weight", "token_mixer.out.weight"),
    ("mlp.gate_up_proj.weight", "channel_mixer.gate_up.weight"),
    ("mlp.down_proj.weight", "channel_mixer.down.weight"),
)


def strip_prefixes(key: str) -> str:
    """`_orig_mod.model.inner.lm_head.weight` -> `lm_head.weight`."""
    changed = True
    while changed:
        changed = False
        for prefix in _PREFIXES:
            if key.startswith(prefix):
                key, changed = key[len(prefix):], True
    return key


def _name_pairs(num_layers: int) -> list[tuple[str, str]]:
    pairs = list(_FIXED)
    for i in range(num_layers):
        pairs += [(f"L_level.layers.{i}.{official}", f"reasoner.blocks.{i}.{ours}")
                  for official, ours in _PER_LAYER]
    return pairs


def official_names(keys: Iterable[str], num_layers: int) -> dict[str, str]:
    """Official key -> our key for every key. Raises ValueError on unknown keys."""
    to_ours = dict(_name_pairs(num_layers))
    names = {}
    for key in keys:
        bare = strip_prefixes(key)
        if bare not in to_ours:
            if re.match(r"L_level\.layers\.\d+\.", bare):
                raise ValueError(f"official key {key!r} names a layer beyond "
                                 f"num_layers={num_layers}")
            raise ValueError(f"unexpected key in official checkpoint: {key!r}")
        names[key] = to_ours[bare]
    return names


def from_official(state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """Official state dict -> our state dict (fp32). Raises ValueError on unknown keys."""
    names = official_names(state, num_layers)
    return {names[key]: tensor.float() for key, tensor in state.items()}


def to_official(state: dict[str, torch.Tensor], num_layers: int,
                prefix: str = "_orig_mod.model.inner.") -> dict[str, torch.Tensor]:
    """Our state dict -> the official layout (init vectors in bf16, as the official saves them)."""
    to_official_name = {ours: official for official, ours in _name_pairs(num_layers)}
    converted = {}
    for key, tensor in state.items():
        name = to_official_name[key]
        converted[prefix + name] = tensor.bfloat16() if name in ("H_init", "L_init") else tensor
    return converted


def load_official(state: dict[str, torch.Tensor], config: ModelConfig) -> TRM:
    """A TRM built from `config` holding the official weights; every key must match in shape."""
    model = TRM(config)
    ours = from_official(state, config.num_layers)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(ours))
    if missing:
        raise ValueError(f"official checkpoint lacks weights for: {', '.join(missing)}")
    for key, tensor in ours.items():
        if tensor.shape != expected[key].shape:
            raise ValueError(f"{key}: checkpoint shape {tuple(tensor.shape)} != model shape "
                             f"{tuple(expected[key].shape)} (check the config)")
    model.load_state_dict(ours)
    return model
