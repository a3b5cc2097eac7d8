"""The sample-efficient recipe's trainer options: Muon on the reasoner's matrices, label
smoothing, decay to zero, and a warm start from committed weights with a fresh optimizer."""

from pathlib import Path

import numpy as np
import pytest
import torch
from test_trainer import tiny_trainer

from trm_core.losses import token_cross_entropy
from trm_core.optim import muon_parameters
from trm_core.trainer import warm_start


def test_muon_takes_the_reasoner_matrices_and_adamw_the_rest(tmp_path: Path) -> None:
    trainer = tiny_trainer(tmp_path, "train.optimizer=muon", "train.muon_lr=0.02")
    adamw, muon = trainer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    matrices = {id(p) for p in muon_parameters(trainer.model)}
    assert matrices == {id(p) for g in muon.param_groups for p in g["params"]}
    rest = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert not matrices & rest
    assert matrices | rest == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    assert muon.param_groups[0]["base_lr"] == 0.02


def test_muon_trains_and_resumes_exactly(tmp_path: Path) -> None:
    first = tiny_trainer(tmp_path, "train.optimizer=muon", "train.muon_lr=0.05",
                         "train.total_steps=40", "train.halt_exploration_prob=0")
    losses = [first.train_step()["answer_loss"] for _ in range(40)]
    assert np.mean(losses[-5:]) < 0.95 * np.mean(losses[:5])
    first.save_resume()
    second = tiny_trainer(tmp_path, "train.optimizer=muon", "train.muon_lr=0.05",
                          "train.total_steps=40")
    assert second.try_resume() and second.step == 40
    for opt_a, opt_b in zip(first.optimizers, second.optimizers, strict=True):
        params_a = [p for g in opt_a.param_groups for p in g["params"]]
        params_b = [p for g in opt_b.param_groups for p in g["params"]]
        for pa, pb in zip(params_a, params_b, strict=True):
            for key, value in opt_a.state[pa].items():
                torch.testing.assert_close(opt_b.state[pb][key], value, msg=key)


def test_label_smoothing_mixes_in_the_uniform_target() -> None:
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(1, 11, (2, 5))
    for kind in ("softmax", "stablemax"):
        plain = token_cross_entropy(logits, labels, kind)
        smooth = token_cross_entropy(logits, labels, kind, 0.2)
        logprobs = (torch.log_softmax(logits, -1) if kind == "softmax" else
                    torch.log(_stablemax(logits)))
        expected = 0.8 * plain - 0.2 * logprobs.mean(-1)
        torch.testing.assert_close(smooth, expected, rtol=1e-5, atol=1e-5)


def _stablemax(x: torch.Tensor) -> torch.Tensor:
    s = torch.where(x < 0, 1 / (1 - x.clamp(max=0)), x + 1).double()
    return (s / s.sum(-1, keepdim=True)).float()


def test_decay_to_zero_is_allowed_and_bad_values_are_named() -> None:
    from trm_core.train_config import load_run

    assert load_run(None, ["train.lr_min_ratio=0"]).train.lr_min_ratio == 0
    with pytest.raises(ValueError, match="label_smoothing"):
        load_run(None, ["train.label_smoothing=1.5"])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        load_run(None, ["train.optimizer=sgd"])


def test_warm_start_takes_weights_step_and_curve_and_warms_up_again(tmp_path: Path) -> None:
    first = tiny_trainer(tmp_path / "a")
    first.eval_set.provenance["sha256"] = "the same evaluation file"
    first.fit()  # 12 steps, evaluations at 6 and 12 keep `best`
    second = tiny_trainer(tmp_path / "b", "train.total_steps=40")
    second.eval_set.provenance["sha256"] = "the same evaluation file"
    warm_start(second, tmp_path / "a" / "best")
    assert second.step == second.rewarm_from > 0 and second.history
    best = first.ema.model.state_dict() if first.ema else first.model.state_dict()
    assert second.best_exact == max(p["exact_accuracy"] for p in first.history)
    assert set(best) == set(second.model.state_dict())
    assert second.lr_scale() < 1.0  # the warmup runs again from the warm-start step
    second.train_step()


def test_a_warm_start_evaluated_on_other_data_keeps_its_first_evaluation(tmp_path: Path
                                                                          ) -> None:
    """A fine-tune on new evaluation data cannot beat a best measured on the old data, so its
    curve carries on but its bar starts from nothing: the first evaluation is kept as `best`."""
    first = tiny_trainer(tmp_path / "a")
    first.eval_set.provenance["sha256"] = "the old evaluation file"
    first.fit()
    second = tiny_trainer(tmp_path / "b", "train.total_steps=14", "train.eval_every=1")
    second.eval_set.provenance["sha256"] = "a new evaluation file"
    warm_start(second, tmp_path / "a" / "best")
    assert second.best_exact == -1.0 and second.history
    second.fit()
    assert second.best_exact >= 0.0 and (tmp_path / "b" / "best.json").exists()


def test_a_resumed_warm_start_keeps_its_warmup_and_a_fresh_time_limit(tmp_path: Path) -> None:
    """A warm-started run stopped by its time limit and resumed in the next session goes on
    with the warmup it began (not the full learning rate on new moments), and the time limit
    counts the new call's time, not the run's total."""
    first = tiny_trainer(tmp_path / "a")
    first.fit()
    second = tiny_trainer(tmp_path / "b", "train.total_steps=40", "train.warmup_steps=20")
    warm_start(second, tmp_path / "a" / "best")
    second.train_step()
    second.save_resume()
    third = tiny_trainer(tmp_path / "b", "train.total_steps=40", "train.warmup_steps=20",
                         "train.time_limit_s=3600")
    assert third.try_resume()
    assert third.rewarm_from == second.rewarm_from and third.lr_scale() < 0.2
    third.elapsed_s = 7200.0  # the run as a whole has trained longer than one call's limit
    third.fit()
    assert third.step == 40


def test_warm_start_refuses_another_model(tmp_path: Path) -> None:
    first = tiny_trainer(tmp_path / "a")
    first.fit()
    other = tiny_trainer(tmp_path / "b", "model.hidden_size=64")
    with pytest.raises(ValueError, match="model config differs"):
        warm_start(other, tmp_path / "a" / "best")
