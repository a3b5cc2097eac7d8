"""The plain inference loop: run these puzzles for N supervision steps, one readout per step.

As gpt-fast keeps `prefill`, `decode_one_token` and `generate` as plain functions, this module
keeps `start` (embed the puzzles once, make the fresh carry), `step` (one supervision step and
its readout) and `solve_tokens` / `solve` (every step, one readout each). Nothing here halts,
batches or schedules: the engine (`trm_core.engine`) is the scheduler around `step`, keeping
carries in slots and deciding per job when to stop; evaluation, ARC prediction, export checks
and tests call the loop directly.

The carry keeps the dtype it started in (the model's weights' dtype) whatever autocast computes
in, as the engine's slots do, so a step here and a step there are the same arithmetic.
"""

from __future__ import annotations

import collections
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch

from trm_core.model import TRM, State, StepOutput
from trm_core.tasks.base import Task

T = TypeVar("T")


@dataclass
class StepReadout:
    """One step's outputs, as tensors on the model's device."""

    tokens: torch.Tensor  # (B, seq_len) int64 argmax tokens
    probs: torch.Tensor  # (B, seq_len) float32 max softmax probability
    halt_logits: torch.Tensor  # (B,) float32; > 0 means the head would stop here


@dataclass
class CellStep:
    """One step's outputs in the task's cell space, on the host."""

    answers: np.ndarray  # (B, seq_len) int8 cells: the model's answer, givens not restored
    confidence: np.ndarray  # (B, seq_len) float32 max softmax probability per cell
    halt_logits: np.ndarray  # (B,) float32


def read_out(out: StepOutput) -> StepReadout:
    """The argmax tokens, their probabilities and the halt logits of one step's output."""
    probs, tokens = out.logits.float().softmax(-1).max(-1)  # (B, seq_len) each
    return StepReadout(tokens, probs, out.halt_logits.float())


def start(model: TRM, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None,
          puzzle_vectors: torch.Tensor | None = None,
          dtype: torch.dtype | None = None) -> tuple[State, torch.Tensor]:
    """The fresh carry and the input injection x, (B, L, D) each, for `tokens` (B, seq_len);
    `dtype` is the carry's (default: the model's weights')."""
    dtype = dtype or next(model.parameters()).dtype
    if puzzle_vectors is None:
        x = model.embed(tokens, puzzle_ids)  # (B, L, D)
    else:
        x = model.embed(tokens, puzzle_ids, puzzle_vectors)
    return model.initial_state(len(tokens), tokens.device, dtype), x.to(dtype)


def step(model: TRM, state: State, x: torch.Tensor) -> tuple[State, StepReadout]:
    """One supervision step from `state`; the new carry stays in the old carry's dtype."""
    out = model.step(state, x)
    dtype = state.y.dtype
    return State(out.state.y.to(dtype), out.state.z.to(dtype)), read_out(out)


@contextlib.contextmanager
def computing(device: torch.device, autocast_dtype: torch.dtype | None) -> Iterator[None]:
    """inference_mode, plus autocast to `autocast_dtype` when one is given."""
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype,
                                                 enabled=autocast_dtype is not None):
        yield


def solve_tokens(model: TRM, tokens: torch.Tensor, steps: int,
                 puzzle_ids: torch.Tensor | None = None,
                 puzzle_vectors: torch.Tensor | None = None,
                 autocast_dtype: torch.dtype | None = None) -> Iterator[StepReadout]:
    """`steps` supervision steps of `tokens` (B, seq_len) on the model's device, one readout
    per step, no halting. The modes are entered per step, never held across a yield."""
    device = tokens.device
    with torch.inference_mode():  # embedded outside autocast, as the engine's slots are
        state, x = start(model, tokens, puzzle_ids, puzzle_vectors)
    for _ in range(steps):
        with computing(device, autocast_dtype):
            state, readout = step(model, state, x)
        yield readout


def solve(model: TRM, task: Task, puzzles: np.ndarray, steps: int,
          puzzle_ids: np.ndarray | None = None,
          autocast_dtype: torch.dtype | None = None) -> Iterator[CellStep]:
    """`solve_tokens` for puzzles given as cells (B, seq_len); readouts come back as cells."""
    device = next(model.parameters()).device
    tokens = torch.from_numpy(np.ascontiguousarray(task.to_tokens(puzzles), dtype=np.int64))
    ids = None if puzzle_ids is None else torch.from_numpy(np.asarray(puzzle_ids, np.int64))
    for readout in solve_tokens(model, tokens.to(device), steps,
                                None if ids is None else ids.to(device),
                                autocast_dtype=autocast_dtype):
        yield CellStep(task.from_tokens(readout.tokens.cpu().numpy()),
                       readout.probs.cpu().numpy(), readout.halt_logits.cpu().numpy())


def final_tokens(model: TRM, tokens: torch.Tensor, steps: int,
                 puzzle_ids: torch.Tensor | None = None,
                 autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """The argmax tokens (B, seq_len) after `steps` supervision steps."""
    return _last(solve_tokens(model, tokens, steps, puzzle_ids,
                              autocast_dtype=autocast_dtype)).tokens


def final_answers(model: TRM, task: Task, puzzles: np.ndarray, steps: int, *,
                  puzzle_ids: np.ndarray | None = None, batch_size: int = 256,
                  autocast_dtype: torch.dtype | None = None) -> CellStep:
    """The last step's readout of every puzzle (N, seq_len), `batch_size` puzzles at a time."""
    parts = []
    for begin in range(0, len(puzzles), batch_size):
        ids = None if puzzle_ids is None else puzzle_ids[begin:begin + batch_size]
        parts.append(_last(solve(model, task, puzzles[begin:begin + batch_size], steps, ids,
                                 autocast_dtype)))
    if not parts:
        return CellStep(np.zeros((0, task.seq_len), np.int8),
                        np.zeros((0, task.seq_len), np.float32), np.zeros(0, np.float32))
    return CellStep(*(np.concatenate([getattr(p, name) for p in parts])
                      for name in ("answers", "confidence", "halt_logits")))


def _last(readouts: Iterator[T]) -> T:
    """The last item of a loop's readouts; the loop must run at least one step."""
    kept = collections.deque(readouts, maxlen=1)
    assert kept, "steps must be >= 1"
    return kept[0]


def q_halt(halt_logit: float) -> float:
    """sigmoid of a halt logit, written to never overflow (what the engine reports)."""
    return 0.5 * (1.0 + math.tanh(0.5 * float(halt_logit)))
