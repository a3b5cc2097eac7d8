"""The trainer on a tiny model: it learns, refills halted rows, evaluates, saves and resumes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from trm_core.checkpoint import load_checkpoint
from trm_core.data import PuzzleSet
from trm_core.tasks import get_task
from trm_core.train_config import load_run
from trm_core.trainer import Trainer, lr_at

PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"


def tiny_set(count: int = 8) -> PuzzleSet:
    task = get_task("sudoku")
    rng = np.random.default_rng(0)
    puzzle, solution = task.parse(PUZZLE), task.parse(SOLUTION)
    symmetries = [task.random_symmetry(rng) for _ in range(count)]
    return PuzzleSet(np.stack([s.apply(puzzle) for s in symmetries]),
                     np.stack([s.apply(solution) for s in symmetries]),
                     np.array(["easy"] * count), {"source": "test"})


def tiny_trainer(tmp_path: Path, *overrides: str) -> Trainer:
    run = load_run(None, [
        "model.hidden_size=32", "model.num_heads=4", "model.recursions=1",
        "model.latent_updates=2", "model.max_supervision_steps=4", "model.swiglu_multiple=32",
        "train.batch_size=8", "train.lr=3e-3", "train.warmup_steps=2", "train.total_steps=12",
        "train.eval_every=6", "train.eval_batch_size=8", "train.ema_rate=0.9",
        f"train.out_dir={tmp_path}", "train.name=trm-test", *overrides])
    return Trainer(run, get_task("sudoku"), tiny_set(), tiny_set(4))


def test_schedule_warms_up_then_decays() -> None:
    assert lr_at(0, 1.0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 10, 100, 0.1) == pytest.approx(0.1)


def test_loss_falls_on_a_tiny_set(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, "train.total_steps=40", "train.halt_exploration_prob=0")
    losses = [trainer.train_step()["answer_loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5])


def test_halted_rows_are_refilled(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, "train.halt_exploration_prob=0")
    for _ in range(4):  # max_supervision_steps = 4: every row halts by then
        trainer.train_step()
    assert bool(trainer.carry.halted.all())
    drawn = trainer.sampler.cursor + trainer.sampler.epochs * 8
    trainer.train_step()
    assert trainer.sampler.cursor + trainer.sampler.epochs * 8 == drawn + 8
    assert int(trainer.carry.steps.max()) == 1


def test_fit_evaluates_keeps_best_and_saves(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path)
    evaluations: list[dict] = []
    trainer.fit(on_eval=evaluations.append)
    assert [e["step"] for e in evaluations] == [6, 12]
    best = load_checkpoint(tmp_path / "best")
    assert best.card["task"] == "sudoku" and best.card["curve"]
    assert "exact_accuracy" in best.card["evaluation"]["overall"]
    assert (tmp_path / "resume-00.safetensors").exists()


@pytest.mark.parametrize("moments", ["float32", "bfloat16"])
def test_resume_restores_weights_ema_optimizer(tmp_path: Path, moments: str) -> None:
    first = tiny_trainer(tmp_path, f"train.resume_state_dtype={moments}")
    for _ in range(3):
        first.train_step()
    first.save_resume()
    second = tiny_trainer(tmp_path, f"train.resume_state_dtype={moments}")
    assert second.try_resume() and second.step == 3
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert first.ema is not None and second.ema is not None
    for a, b in zip(first.ema.model.parameters(), second.ema.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    tolerance = {"rtol": 1e-2, "atol": 1e-6} if moments == "bfloat16" else {}
    for group_a, group_b in zip(first.optimizers[0].param_groups, second.optimizers[0].param_groups,
                                strict=True):
        for pa, pb in zip(group_a["params"], group_b["params"], strict=True):
            sa, sb = first.optimizers[0].state[pa], second.optimizers[0].state[pb]
            torch.testing.assert_close(sa["exp_avg_sq"], sb["exp_avg_sq"], **tolerance)
    second.train_step()  # and it trains on from there
    assert second.step == 4


def test_resume_state_is_sharded_under_the_size_cap(tmp_path: Path) -> None:
    first = tiny_trainer(tmp_path, "train.resume_shard_mb=0.2")
    first.train_step()
    first.save_resume()
    shards = sorted(tmp_path.glob("resume-*.safetensors"))
    assert len(shards) > 3 and all(p.stat().st_size < 0.21 * 2**20 for p in shards)
    second = tiny_trainer(tmp_path, "train.resume_shard_mb=0.2")
    assert second.try_resume() and second.step == 1
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_resume_refuses_another_model(tmp_path: Path) -> None:
    tiny_trainer(tmp_path).save_resume()
    other = tiny_trainer(tmp_path, "model.hidden_size=16", "model.num_heads=2")
    with pytest.raises(ValueError, match="model config differs"):
        other.try_resume()


def test_a_single_shared_puzzle_row_trains_and_resumes(tmp_path: Path) -> None:
    table = ("model.puzzle_emb_len=1", "model.puzzle_emb_dim=32")
    first = tiny_trainer(tmp_path, *table)
    for _ in range(2):
        first.train_step()
    assert bool((first.carry.puzzle_ids == 0).all())
    assert first.model.puzzle_embedding is not None
    assert first.model.puzzle_embedding.weight[0].abs().sum() > 0
    first.save_resume()
    second = tiny_trainer(tmp_path, *table)
    assert second.try_resume() and second.model.puzzle_embedding is not None
    torch.testing.assert_close(second.model.puzzle_embedding.weight,
                               first.model.puzzle_embedding.weight)


def test_a_model_for_another_grid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seq_len 81 .* the model config has 900"):
        tiny_trainer(tmp_path, "model.seq_len=900")


def test_a_stop_request_ends_with_an_evaluation_and_resume_state(tmp_path: Path) -> None:
    """SIGTERM / Ctrl-C in `trm train` set `stop_requested`: training stops after that step,
    evaluates (so the best checkpoint holds the latest weights) and saves resume state."""
    trainer = tiny_trainer(tmp_path, "train.total_steps=40", "train.eval_every=100")

    def on_log(metrics: dict) -> None:
        if metrics["step"] == 3:
            trainer.stop_requested = True

    trainer.fit(on_log=on_log, log_every=1)
    assert trainer.step == 3 and [p["step"] for p in trainer.history] == [3]
    assert load_checkpoint(tmp_path / "best").card["step"] == 3
    assert (tmp_path / "resume-00.safetensors").exists()
