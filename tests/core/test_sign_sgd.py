"""Sign-SGD for puzzle embeddings: exactly the reference's update on the batch's rows, and the
trainer's use of it (out of AdamW, on the lr schedule, shared with the EMA)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trm_core.data import PuzzleSet
from trm_core.sign_sgd import SignSGD, merge_rows
from trm_core.tasks import get_task
from trm_core.train_config import load_run
from trm_core.trainer import Trainer, lr_at

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def test_only_batch_rows_move_by_lr_times_sign_after_decay() -> None:
    torch.manual_seed(0)
    weight = torch.randn(6, 4)
    before = weight.clone()
    opt = SignSGD(weight, lr=0.1, weight_decay=0.5)
    ids = torch.tensor([1, 3, 1])
    rows = opt.lookup(ids)
    coeffs = torch.tensor([[1.0, 2.0, -1.0, 0.5],  # row 1, first use
                           [-1.0, 0.0, 2.0, -2.0],  # row 3
                           [-3.0, 1.0, 0.5, 0.0]])  # row 1 again: summed with the first
    (rows * coeffs).sum().backward()
    opt.step(ids, rows)
    expected = before.clone()
    summed = {1: coeffs[0] + coeffs[2], 3: coeffs[1]}  # [-2, 3, -0.5, 0.5] and [-1, 0, 2, -2]
    for row, grad in summed.items():
        expected[row] = before[row] * (1 - 0.1 * 0.5) - 0.1 * torch.sign(grad)
    torch.testing.assert_close(weight, expected, rtol=0, atol=1e-7)
    untouched = [0, 2, 4, 5]
    assert torch.equal(weight[untouched], before[untouched])
    # A zero summed gradient (row 3, column 1) leaves decay alone.
    assert weight[3, 1] == pytest.approx(float(before[3, 1]) * 0.95)


def test_lookup_is_a_detached_copy_and_no_grad_is_a_no_op() -> None:
    weight = torch.zeros(3, 2)
    opt = SignSGD(weight, lr=1.0, weight_decay=0.0)
    rows = opt.lookup(torch.tensor([0, 2]))
    assert rows.is_leaf and rows.requires_grad
    rows.data.fill_(5.0)
    assert torch.equal(weight, torch.zeros(3, 2))
    opt.step(torch.tensor([0, 2]), rows)  # no backward ran: nothing to apply
    assert torch.equal(weight, torch.zeros(3, 2))


def test_merge_rows_sums_duplicates() -> None:
    unique, summed = merge_rows(torch.tensor([4, 1, 4]), torch.tensor([[1.0], [2.0], [3.0]]))
    assert unique.tolist() == [1, 4] and summed.flatten().tolist() == [2.0, 4.0]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="lr > 0"):
        SignSGD(torch.zeros(2, 2), lr=0.0, weight_decay=0.1)


def tiny_trainer(tmp_path: Path, *overrides: str) -> Trainer:
    """A Sudoku trainer on one puzzle, with a 3-row puzzle table all rows of which use row 0."""
    task = get_task("sudoku")
    one = PuzzleSet(np.stack([task.parse(PUZZLE)] * 4), np.stack([task.parse(SOLUTION)] * 4),
                    np.array(["easy"] * 4))
    run = load_run(None, [
        "model.hidden_size=32", "model.num_heads=4", "model.recursions=1",
        "model.latent_updates=1", "model.max_supervision_steps=2", "model.swiglu_multiple=32",
        "train.batch_size=4", "train.lr=3e-3", "train.total_steps=8", "train.ema_rate=0.9",
        f"train.out_dir={tmp_path}", *overrides])
    return Trainer(run, task, one, None)


PUZZLE_TABLE = ["model.puzzle_emb_len=1", "model.puzzle_emb_dim=32", "model.num_puzzle_ids=3",
                "train.puzzle_emb_lr=0.01", "train.puzzle_emb_weight_decay=0.1",
                "train.warmup_steps=4"]


def test_trainer_steps_the_table_on_the_lr_schedule(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, *PUZZLE_TABLE)
    table = trainer.model.puzzle_embedding
    assert table is not None and trainer.sign_sgd is not None
    assert not table.weight.requires_grad
    adam_params = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert id(table.weight) not in adam_params
    assert trainer.ema is not None
    assert trainer.ema.model.puzzle_embedding.weight is table.weight  # shared, not copied
    trainer.train_step()
    # Sudoku rows all use puzzle id 0; the table starts at zero, so after one step row 0 is
    # -lr * sign(grad) with lr on the warmup schedule (step 0 of 4: a quarter).
    lr0 = 0.01 * lr_at(0, 1.0, 4, trainer.cfg.total_steps, trainer.cfg.lr_min_ratio)
    assert lr0 == pytest.approx(0.0025)
    moved = table.weight[0].abs()
    assert torch.all(((moved - lr0).abs() < 1e-9) | (moved == 0)) and moved.max() > 0
    assert torch.equal(table.weight[1:], torch.zeros(2, 32))
    trainer.train_step()
    assert trainer.sign_sgd.lr == pytest.approx(0.01 * 2 / 4)
