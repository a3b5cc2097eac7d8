"""Model configuration: one frozen dataclass, validated where it is built, derived sizes computed
here so the model, importer, engine and trainer agree on them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

TokenMixer = Literal["mlp_t", "attention", "conv"]
PositionEncoding = Literal["none", "learned", "rope"]
ConvPadding = Literal["zeros", "circular"]


def swiglu_inner_size(width: int, expansion: float, multiple: int = 256) -> int:
    """The reference's SwiGLU inner size: round(expansion * width * 2/3), rounded UP to a
    multiple of `multiple` (256 in the reference)."""
    raw = round(expansion * width * 2 / 3)
    return -(-raw // multiple) * multiple


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of one TRM. Defaults are the paper's Sudoku TRM-MLP without puzzle positions."""

    seq_len: int = 81  # grid positions (official `seq_len`)
    vocab_size: int = 11
    hidden_size: int = 512  # D
    num_heads: int = 8  # attention only
    expansion: float = 4.0
    num_layers: int = 2  # official `L_layers`
    token_mixer: TokenMixer = "mlp_t"  # official `mlp_t=True`; "attention" otherwise
    # token_mixer = "conv": a 2-D convolution over the grid (ours, not in the reference): kernel
    # size, dilation, and the grid's height (0 = a square grid of seq_len cells).
    conv_kernel: int = 3
    conv_dilation: int = 1
    grid_height: int = 0
    conv_padding: ConvPadding = "zeros"  # "circular": the grid's edges meet (a torus)
    position_encoding: PositionEncoding = "none"  # official `pos_encodings`
    recursions: int = 3  # paper T, official `H_cycles`
    latent_updates: int = 6  # paper n, official `L_cycles`
    max_supervision_steps: int = 16  # paper N_sup, official `halt_max_steps`
    puzzle_emb_len: int = 0  # extra positions before the grid, official `puzzle_emb_len`
    puzzle_emb_dim: int = 0  # official `puzzle_emb_ndim`; 0 = no puzzle embedding
    num_puzzle_ids: int = 1  # rows of the puzzle-embedding table
    rope_base: float = 10000.0
    rms_norm_eps: float = 1e-5
    # The reference rounds SwiGLU widths up to 256; tiny CPU models waste most of their compute
    # on that padding, so they may round to a smaller multiple.
    swiglu_multiple: int = 256

    def __post_init__(self) -> None:
        for name in ("seq_len", "vocab_size", "hidden_size", "num_heads", "num_layers",
                     "recursions", "latent_updates", "max_supervision_steps", "num_puzzle_ids",
                     "swiglu_multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.token_mixer not in ("mlp_t", "attention", "conv"):
            raise ValueError("model.token_mixer must be 'mlp_t', 'attention' or 'conv', "
                             f"got {self.token_mixer!r}")
        if self.token_mixer == "conv":
            self._check_conv()
        if self.position_encoding not in ("none", "learned", "rope"):
            raise ValueError("model.position_encoding must be none, learned or rope, "
                             f"got {self.position_encoding!r}")
        if self.token_mixer == "attention" and self.hidden_size % self.num_heads:
            raise ValueError(f"model.hidden_size {self.hidden_size} is not divisible by "
                             f"num_heads {self.num_heads}")
        if self.puzzle_emb_dim < 0 or self.puzzle_emb_len < 0:
            raise ValueError("model.puzzle_emb_dim and puzzle_emb_len must be >= 0")
        if self.puzzle_emb_dim > self.puzzle_emb_len * self.hidden_size:
            raise ValueError(f"model.puzzle_emb_dim {self.puzzle_emb_dim} does not fit in "
                             f"puzzle_emb_len {self.puzzle_emb_len} positions of "
                             f"{self.hidden_size}")

    def _check_conv(self) -> None:
        if self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
            raise ValueError(f"model.conv_kernel must be odd and >= 1, got {self.conv_kernel}")
        if self.conv_dilation < 1:
            raise ValueError(f"model.conv_dilation must be >= 1, got {self.conv_dilation}")
        if self.conv_padding not in ("zeros", "circular"):
            raise ValueError(f"model.conv_padding must be 'zeros' or 'circular', got "
                             f"{self.conv_padding!r}")
        height, width = self.grid
        if height * width != self.seq_len:
            raise ValueError(f"model.seq_len {self.seq_len} is not a grid: set model.grid_height "
                             f"to a divisor of it (got {self.grid_height})")

    @property
    def grid(self) -> tuple[int, int]:
        """(height, width) of the grid the conv mixer sees; square unless grid_height is set."""
        height = self.grid_height or math.isqrt(self.seq_len)
        return height, self.seq_len // max(height, 1)

    @property
    def total_len(self) -> int:
        """Positions the network sees: puzzle-embedding positions, then the grid."""
        return self.puzzle_emb_len + self.seq_len

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def passes_per_step(self) -> int:
        """Network applications per supervision step: T x (n + 1)."""
        return self.recursions * (self.latent_updates + 1)

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.hidden_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        return cls(**data)

    @classmethod
    def from_official(cls, official: dict[str, Any]) -> ModelConfig:
        """Translate the official trainer's `arch` config (its field names) into ours."""
        return cls(
            seq_len=int(official["seq_len"]),
            vocab_size=int(official["vocab_size"]),
            hidden_size=int(official["hidden_size"]),
            num_heads=int(official["num_heads"]),
            expansion=float(official["expansion"]),
            num_layers=int(official["L_layers"]),
            token_mixer="mlp_t" if official.get("mlp_t") else "attention",
            position_encoding=official["pos_encodings"],
            recursions=int(official["H_cycles"]),
            latent_updates=int(official["L_cycles"]),
            max_supervision_steps=int(official["halt_max_steps"]),
            puzzle_emb_len=int(official.get("puzzle_emb_len", 0)),
            puzzle_emb_dim=int(official.get("puzzle_emb_ndim", 0)),
            num_puzzle_ids=int(official.get("num_puzzle_identifiers", 1)),
        )
