"""The Tiny Recursive Model: one shared 2-layer network applied recursively to a latent z and an
answer y. One call of `step` is one supervision step; the caller (trainer or engine) carries the
state between steps, resets halted rows, and decides when to stop.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from trm_core.config import ModelConfig
from trm_core.layers import Block, Rotary, linear, trunc_normal_


class State(NamedTuple):
    """The carry between supervision steps: answer y and latent z, (B, L, D) each."""

    y: torch.Tensor
    z: torch.Tensor


class StepOutput(NamedTuple):
    state: State
    logits: torch.Tensor  # (B, seq_len, vocab) answer logits on grid positions
    halt_logits: torch.Tensor  # (B,) fp32; > 0 means "stop here"
    continue_logits: torch.Tensor  # (B,) fp32


class Reasoner(nn.Module):
    """f(h, injection) = blocks(h + injection), the network every recursion applies."""

    def __init__(self, config: ModelConfig, rotary: Rotary | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(Block(config, rotary) for _ in range(config.num_layers))

    def forward(self, h: torch.Tensor, injection: torch.Tensor) -> torch.Tensor:
        h = h + injection
        for block in self.blocks:
            h = block(h)
        return h


class TRM(nn.Module):
    """Embeddings, the shared reasoner, and the answer and halting heads."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        width = config.hidden_size
        self.token_embedding = nn.Embedding(config.vocab_size, width)
        trunc_normal_(self.token_embedding.weight, std=1 / config.embed_scale)
        self.position_embedding: nn.Embedding | None = None
        if config.position_encoding == "learned":
            self.position_embedding = nn.Embedding(config.total_len, width)
            trunc_normal_(self.position_embedding.weight, std=1 / config.embed_scale)
        self.puzzle_embedding: nn.Embedding | None = None
        if config.puzzle_emb_dim > 0:
            self.puzzle_embedding = nn.Embedding(config.num_puzzle_ids, config.puzzle_emb_dim)
            nn.init.zeros_(self.puzzle_embedding.weight)
        rotary = None
        if config.position_encoding == "rope":
            rotary = Rotary(config.head_dim, config.total_len, config.rope_base)
        self.reasoner = Reasoner(config, rotary)
        self.answer_head = linear(width, config.vocab_size)
        self.halt_head = nn.Linear(width, 2)
        nn.init.zeros_(self.halt_head.weight)
        nn.init.constant_(self.halt_head.bias, -5.0)
        # Starting y and z: random once, saved with the weights, never trained.
        self.y_init: torch.Tensor
        self.z_init: torch.Tensor
        self.register_buffer("y_init", trunc_normal_(torch.empty(width), std=1.0))
        self.register_buffer("z_init", trunc_normal_(torch.empty(width), std=1.0))

    def initial_state(self, batch_size: int, device: torch.device | None = None,
                      dtype: torch.dtype | None = None) -> State:
        """A fresh carry: y and z equal to their initial vectors at every position."""
        shape = (batch_size, self.config.total_len, self.config.hidden_size)
        device = device or self.y_init.device
        y = self.y_init.to(device=device, dtype=dtype).expand(shape).clone()
        z = self.z_init.to(device=device, dtype=dtype).expand(shape).clone()
        return State(y, z)

    def reset_rows(self, state: State, reset: torch.Tensor) -> State:
        """Rows where `reset` (B,) is true go back to the initial carry."""
        mask = reset.view(-1, 1, 1)
        y = torch.where(mask, self.y_init.to(state.y.dtype), state.y)
        z = torch.where(mask, self.z_init.to(state.z.dtype), state.z)
        return State(y, z)

    def embed(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None,
              puzzle_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """Input injection x: (B, seq_len) tokens -> (B, L, D). The puzzle rows come from the
        table by `puzzle_ids` (default 0), or are given as `puzzle_vectors` (B, puzzle_emb_dim),
        which is how sign-SGD training and test-time adaptation feed rows they own."""
        x = self.token_embedding(tokens)  # (B, seq_len, D)
        if self.puzzle_embedding is not None:
            if puzzle_vectors is None:
                if puzzle_ids is None:
                    puzzle_ids = torch.zeros(tokens.shape[0], dtype=torch.long,
                                             device=tokens.device)
                puzzle_vectors = self.puzzle_embedding(puzzle_ids)  # (B, puzzle_emb_dim)
            x = torch.cat((self._puzzle_positions(puzzle_vectors.to(x.dtype)), x), dim=1)
        elif self.config.puzzle_emb_len:
            pad = x.new_zeros(x.shape[0], self.config.puzzle_emb_len, x.shape[2])
            x = torch.cat((pad, x), dim=1)
        if self.position_embedding is not None:
            x = 0.7071067811865476 * (x + self.position_embedding.weight)
        return self.config.embed_scale * x

    def _puzzle_positions(self, vectors: torch.Tensor) -> torch.Tensor:
        """Puzzle vectors (B, puzzle_emb_dim), zero-padded and folded into puzzle_emb_len
        positions, (B, P, D)."""
        width = self.config.puzzle_emb_len * self.config.hidden_size
        vectors = nn.functional.pad(vectors, (0, width - vectors.shape[-1]))
        return vectors.view(-1, self.config.puzzle_emb_len, self.config.hidden_size)

    def recurse(self, state: State, x: torch.Tensor) -> State:
        """One recursion: n latent updates z <- f(z, y + x), then y <- f(y, z)."""
        y, z = state
        for _ in range(self.config.latent_updates):
            z = self.reasoner(z, y + x)
        y = self.reasoner(y, z)
        return State(y, z)

    def step(self, state: State, x: torch.Tensor) -> StepOutput:
        """One supervision step: T recursions, gradients through the last one only."""
        with torch.no_grad():
            for _ in range(self.config.recursions - 1):
                state = self.recurse(state, x)
        state = self.recurse(state, x)
        logits = self.answer_head(state.y[:, self.config.puzzle_emb_len:])  # (B, seq_len, V)
        # (B, 2) in the head's own dtype, returned as fp32 like the reference's q_head
        halting = self.halt_head(state.y[:, 0].to(self.halt_head.weight.dtype)).float()
        carry = State(state.y.detach(), state.z.detach())
        return StepOutput(carry, logits, halting[:, 0], halting[:, 1])

    def forward(self, state: State, tokens: torch.Tensor,
                puzzle_ids: torch.Tensor | None = None,
                puzzle_vectors: torch.Tensor | None = None) -> StepOutput:
        return self.step(state, self.embed(tokens, puzzle_ids, puzzle_vectors))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the puzzle embedding included (the reference counts it)."""
    return sum(p.numel() for p in model.parameters())
