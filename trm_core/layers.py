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
    """x * rsqrt(mean(x^2) + eps) over the last axis, in fp32, no learned scale."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


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


class Rotary(nn.Module):
    """cos/sin tables for rotary position encoding over all positions, (L, head_dim) each."""

    def __init__(self, head_dim: int, positions: int, base: float) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(positions, dtype=torch.float32), inv_freq)
        angles = torch.cat((freqs, freqs), dim=-1)
        self.cos: torch.Tensor
        self.sin: torch.Tensor
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

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


class Block(nn.Module):
    """Post-norm block: token mixing then channel mixing, each as h = rmsnorm(h + f(h))."""

    def __init__(self, config: ModelConfig, rotary: Rotary | None) -> None:
        super().__init__()
        self.eps = config.rms_norm_eps
        self.token_mixer: nn.Module
        if config.token_mixer == "mlp_t":
            self.token_mixer = SwiGLU(config.total_len, config.expansion, config.swiglu_multiple)
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
