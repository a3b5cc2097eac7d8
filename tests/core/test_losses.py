"""Stablemax cross-entropy and the per-step loss."""

import torch

from trm_core.losses import log_stablemax, step_loss, token_cross_entropy


def test_stablemax_is_a_distribution() -> None:
    logits = torch.tensor([[-3.0, 0.0, 2.5, -0.5]])
    probs = log_stablemax(logits).exp()
    torch.testing.assert_close(probs.sum(-1), torch.ones(1, dtype=torch.float64))
    s = torch.tensor([1 / 4, 1.0, 3.5, 1 / 1.5], dtype=torch.float64)
    torch.testing.assert_close(probs[0], s / s.sum())


def test_padding_is_ignored() -> None:
    logits = torch.randn(1, 3, 5)
    labels = torch.tensor([[2, 0, 3]])
    for kind in ("stablemax", "softmax"):
        ce = token_cross_entropy(logits, labels, kind)
        assert ce[0, 1] == 0 and ce[0, 0] > 0


def test_halting_target_is_exactness() -> None:
    labels = torch.tensor([[2, 3], [2, 3]])
    logits = torch.full((2, 2, 4), -10.0)
    logits[0, 0, 2] = logits[0, 1, 3] = 10.0  # row 0 exactly right
    logits[1, 0, 2] = logits[1, 1, 2] = 10.0  # row 1 wrong in one cell
    loss = step_loss(logits, torch.zeros(2), labels)
    assert loss.exact.tolist() == [True, False]
    assert loss.cell_correct.tolist() == [1.0, 0.5]
    torch.testing.assert_close(loss.halting, 2 * torch.log(torch.tensor(2.0)))


def test_stablemax_gradient_is_finite_at_one() -> None:
    logits = torch.tensor([[[1.0, -2.0, 0.5]]], requires_grad=True)
    token_cross_entropy(logits, torch.tensor([[2]]), "stablemax").sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
