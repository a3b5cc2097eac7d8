"""Sign-SGD for puzzle embeddings: only the rows a batch used are updated, each by the sign of its
summed gradient, with decoupled weight decay, as the reference trains its puzzle embeddings:

    row <- row * (1 - lr * weight_decay) - lr * sign(sum of the row's gradients)

The table is not an autograd leaf: a batch looks its rows up with `lookup` (a small leaf that
receives the gradient), and `step` writes the update back. That keeps a table of ~900,000 x 512
out of dense gradients, Adam moments and DistributedDataParallel's all-reduce; under
`torch.distributed` the ranks all-gather (ids, row gradients) so every replica applies the same
update.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def merge_rows(ids: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique ids (U,) and the sum of their rows' gradients (U, dim)."""
    unique, inverse = torch.unique(ids, return_inverse=True)
    summed = torch.zeros(len(unique), grads.shape[1], dtype=grads.dtype, device=grads.device)
    summed.index_add_(0, inverse, grads)
    return unique, summed


def gather_rows(ids: torch.Tensor, grads: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's (ids, grads) concatenated; the inputs unchanged outside torch.distributed.
    Ranks must pass equally many rows (every rank runs the same batch size)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return ids, grads
    world = dist.get_world_size()
    all_ids = [torch.empty_like(ids) for _ in range(world)]
    all_grads = [torch.empty_like(grads) for _ in range(world)]
    dist.all_gather(all_ids, ids.contiguous())
    dist.all_gather(all_grads, grads.contiguous())
    return torch.cat(all_ids), torch.cat(all_grads)


class SignSGD:
    """Updates the used rows of `weight` (rows, dim); `lr` may be changed between steps."""

    def __init__(self, weight: torch.Tensor, lr: float, weight_decay: float) -> None:
        if lr <= 0 or weight_decay < 0:
            raise ValueError(f"sign-SGD needs lr > 0 and weight_decay >= 0, got {lr}, "
                             f"{weight_decay}")
        self.weight, self.lr, self.weight_decay = weight, lr, weight_decay

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """The rows for `ids` (B,) as a fresh leaf (B, dim) that will receive their gradient."""
        return self.weight.detach()[ids].clone().requires_grad_(True)

    @torch.no_grad()
    def step(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Apply the update for a batch that used `rows = lookup(ids)` and ran backward."""
        if rows.grad is None:
            return
        all_ids, all_grads = gather_rows(ids, rows.grad.to(self.weight.dtype))
        unique, summed = merge_rows(all_ids, all_grads)
        updated = self.weight[unique] * (1 - self.lr * self.weight_decay)
        updated -= self.lr * torch.sign(summed)
        self.weight[unique] = updated
