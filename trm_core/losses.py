"""Per-step training loss: answer cross-entropy (stablemax, as the reference, or softmax) plus the
halting head's BCE against "this step's answer is exactly right".
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

IGNORE_LABEL = 0  # token 0 is PAD in every task; the loss skips it


def log_stablemax(logits: torch.Tensor) -> torch.Tensor:
    """log(s(x_i) / sum_j s(x_j)) with s(x) = 1/(1-x) for x < 0, x + 1 otherwise (float64)."""
    x = logits.double()
    # Feed the 1/(1-x) branch only non-positive values: at x = 1 it would be infinite, and
    # `where` turns an infinite unselected branch into a NaN gradient.
    negative = torch.clamp(x, max=0.0)
    s = torch.where(x < 0, 1 / (1 - negative), x + 1)
    return torch.log(s / s.sum(dim=-1, keepdim=True))


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, kind: str,
                        smoothing: float = 0.0) -> torch.Tensor:
    """Per-position CE, (B, S), against (1 - smoothing) one-hot + smoothing uniform over the
    vocabulary; zero where the label is ignored."""
    valid = labels != IGNORE_LABEL
    if kind == "stablemax":
        logprobs = log_stablemax(logits)  # (B, S, V) float64
    else:
        logprobs = F.log_softmax(logits.float(), dim=-1)  # (B, S, V)
    picked = logprobs.gather(-1, labels.unsqueeze(-1)).squeeze(-1)  # (B, S)
    ce = -picked if smoothing == 0 else -(1 - smoothing) * picked - smoothing * logprobs.mean(-1)
    return torch.where(valid, ce, 0).float()


class StepLoss(NamedTuple):
    total: torch.Tensor  # summed over rows; divide by the global batch before backward
    answer: torch.Tensor
    halting: torch.Tensor
    exact: torch.Tensor  # (B,) bool: every labelled position right
    cell_correct: torch.Tensor  # (B,) fraction of labelled positions right


def step_loss(logits: torch.Tensor, halt_logits: torch.Tensor, labels: torch.Tensor,
              kind: str = "stablemax", halt_weight: float = 0.5,
              smoothing: float = 0.0) -> StepLoss:
    """The reference's loss for one supervision step over a batch (sums over rows)."""
    valid = labels != IGNORE_LABEL  # (B, S)
    counts = valid.sum(-1)  # (B,)
    per_row = token_cross_entropy(logits, labels, kind, smoothing).sum(-1) / counts.clamp_min(1)
    with torch.no_grad():
        correct = valid & (logits.argmax(-1) == labels)
        exact = correct.sum(-1) == counts
        cell_correct = correct.sum(-1) / counts.clamp_min(1)
    answer = per_row.sum()
    halting = F.binary_cross_entropy_with_logits(halt_logits, exact.to(halt_logits.dtype),
                                                 reduction="sum")
    return StepLoss(answer + halt_weight * halting, answer, halting, exact, cell_correct)
