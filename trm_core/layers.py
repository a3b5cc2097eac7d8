"""Building blocks of the TRM network: RMSNorm without weight, SwiGLU, rotary attention, and the
post-norm block. Pure torch; shapes in comments use B batch, L positions, D hidden, H heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from trm_core.config import ModelConfig, swiglu_inner_size

# Variance of a standard normal truncated to [-2, 2]; dividing by its root makes a truncated
# normal init have exactly the requested standard deviation, as the reference's init does.
_TRUNC2_STD = 0.8796256610342398


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Truncated normal (cut at +-2 sigma) whose actual standard deviation is `std`."""
    scaled = std / _TRUNC2_STD
    return nn.init.trunc_normal_(tensor, std=scaled, a=-2 * scaled, b=2 * scaled)


def rms_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) over the last axis, in at least fp32, no learned scale."""
    # bf16/fp16 inputs are normalised in fp32, as the reference does; float64 stays float64 so a
    # float64 model is float64 throughout (the equivalence test runs one).
    wide = x.to(torch.promote_types(x.dtype, torch.float32))
    return (wide * torch.rsqrt(wide.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


def linear(in_features: int, out_features: int) -> nn.Linear:
    """Bias-free linear with the reference's init: truncated normal, std 1/sqrt(fan_in)."""
    layer = nn.Linear(in_features, out_features, bias=False)
    trunc_normal_(layer.weight, std=1 / math.sqrt(in_features))
    return layer


class SwiGLU(nn.Module):
    """down(silu(gate) * up) over the last axis, width -> inner -> width."""

    def __init__(self, width: int, expansion: float, multiple: int = 256) -> None:
        super().__init__()
        inner = swiglu_inner_size(width, expansion, multiple)
        self.gate_up = linear(width, 2 * inner)
        self.down = linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """The half-split rotation: (x1, x2) -> (-x2, x1) over the last axis."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rotary_angles(head_dim: int, positions: int, base: float) -> torch.Tensor:
    """Rotation angle of every position and channel, (L, head_dim), in float64."""
    channels = torch.arange(0, head_dim, 2, dtype=torch.float64)
    inv_freq = 1.0 / (base ** (channels / head_dim))
    freqs = torch.outer(torch.arange(positions, dtype=torch.float64), inv_freq)
    return torch.cat((freqs, freqs), dim=-1)


class Rotary(nn.Module):
    """cos/sin tables for rotary position encoding over all positions, (L, head_dim) each."""

    def __init__(self, head_dim: int, positions: int, base: float) -> None:
        super().__init__()
        # Computed in float64 and rounded once to the dtype the model is built in: fp32 tables
        # are then the same on every machine, and a model built in float64 gets exact ones.
        angles = rotary_angles(head_dim, positions, base)
        dtype = torch.get_default_dtype()
        self.cos: torch.Tensor
        self.sin: torch.Tensor
        self.register_buffer("cos", angles.cos().to(dtype), persistent=False)
        self.register_buffer("sin", angles.sin().to(dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate queries or keys, (B, L, H, head_dim)."""
        cos = self.cos[:, None, :].to(x.dtype)
        sin = self.sin[:, None, :].to(x.dtype)
        return x * cos + rotate_half(x) * sin


class SelfAttention(nn.Module):
    """Non-causal multi-head self-attention with optional rotary encoding."""

    def __init__(self, config: ModelConfig, rotary: Rotary | None) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.qkv = linear(config.hidden_size, 3 * config.hidden_size)
        self.out = linear(config.hidden_size, config.hidden_size)
        self.rotary = rotary

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.unbind(dim=2)  # (B, L, H, hd) each
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        attended = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, H, L, hd)
        return self.out(attended.transpose(1, 2).reshape(batch, length, width))


class ConvMixer(nn.Module):
    """Token mixing by a 2-D convolution over the grid (same padding), for local rules such as
    a maze's growing path: each cell mixes with its k x k neighbourhood, at a cost independent of
    how many cells there are. Puzzle-embedding positions, when present, are not part of the
    grid: every cell also receives a projection of their mean (task identity reaches each cell),
    and they receive a projection of the grid's mean."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        width, kernel, dilation = config.hidden_size, config.conv_kernel, config.conv_dilation
        self.grid = config.grid
        self.prefix = config.puzzle_emb_len
        self.conv = nn.Conv2d(width, width, kernel, padding=dilation * (kernel // 2),
                              dilation=dilation, bias=False, padding_mode=config.conv_padding)
        trunc_normal_(self.conv.weight, std=1 / math.sqrt(width * kernel * kernel))
        self.to_grid = linear(width, width) if self.prefix else None
        self.to_prefix = linear(width, width) if self.prefix else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, L, D), L = puzzle positions + grid cells."""
        prefix, cells = x[:, :self.prefix], x[:, self.prefix:]
        batch, _, width = cells.shape
        image = cells.transpose(1, 2).reshape(batch, width, *self.grid)  # (B, D, H, W)
        mixed = self.conv(image).flatten(2).transpose(1, 2)  # (B, H*W, D)
        if self.to_grid is None or self.to_prefix is None:
            return mixed
        mixed = mixed + self.to_grid(prefix.mean(1, keepdim=True))
        return torch.cat((self.to_prefix(cells.mean(1, keepdim=True)).expand_as(prefix), mixed),
                         dim=1)


class Block(nn.Module):
    """Post-norm block: token mixing then channel mixing, each as h = rmsnorm(h + f(h))."""

    def __init__(self, config: ModelConfig, rotary: Rotary | None) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.token_mixer: nn.Module
        if config.token_mixer == "mlp_t":
            self.token_mixer = SwiGLU(config.total_len, config.expansion, config.swiglu_multiple)
        elif config.token_mixer == "conv":
            self.token_mixer = ConvMixer(config)
        else:
            self.token_mixer = SelfAttention(config, rotary)
        self.mixes_positions_by_mlp = config.token_mixer == "mlp_t"
        self.channel_mixer = SwiGLU(config.hidden_size, config.expansion, config.swiglu_multiple)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.mixes_positions_by_mlp:
            # The reference normalises over the POSITION axis here, while transposed.
            t = h.transpose(1, 2)  # (B, D, L)
            h = rms_norm(t + self.token_mixer(t), self.eps).transpose(1, 2)
        else:
            h = rms_norm(h + self.token_mixer(h), self.eps)
        return rms_norm(h + self.channel_mixer(h), self.eps)  # (B, L, D)
