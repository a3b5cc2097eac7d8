"""Test-time adaptation: versions and their placed demonstrations, fitting only the new rows
(the served model untouched), the stop rules, and engine jobs fed fitted rows."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.engine import Engine, Job
from trm_core.model import TRM
from trm_core.tasks.arc.adapt import AdaptConfig, draw_symmetries, fit_rows, training_examples
from trm_core.tasks.arc.grids import ArcTask, encode, locate

SOURCE = Path(__file__).resolve().parents[1] / "data" / "arc"
_TASK = json.loads((SOURCE / "arc-agi_evaluation_challenges.json").read_text())["00576224"]
DEMOS = [(np.array(p["input"]), np.array(p["output"])) for p in _TASK["train"]]
TESTS = [np.array(p["input"]) for p in _TASK["test"]]


def tiny_model(puzzle_emb_dim: int = 16) -> TRM:
    torch.manual_seed(0)
    config = ModelConfig(seq_len=900, vocab_size=12, hidden_size=16, num_heads=1, num_layers=1,
                         token_mixer="attention", position_encoding="rope", recursions=1,
                         latent_updates=1, max_supervision_steps=2, swiglu_multiple=16,
                         puzzle_emb_len=1 if puzzle_emb_dim else 0,
                         puzzle_emb_dim=puzzle_emb_dim, num_puzzle_ids=3)
    return TRM(config).eval()


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_versions_start_with_identity_and_differ() -> None:
    symmetries = draw_symmetries(DEMOS, TESTS, 6, np.random.default_rng(0))
    assert len(symmetries) == 6 and symmetries[0].dihedral_id == 0
    assert symmetries[0].colour_map.tolist() == list(range(10))
    images = {tuple(s.apply_grid(DEMOS[0][1]).reshape(-1).tolist()) + s.apply_grid(
        DEMOS[0][1]).shape for s in symmetries}
    assert len(images) == 6
    # A task of one black cell has a single version whatever is asked.
    blank = [(np.zeros((1, 1), int), np.zeros((1, 1), int))]
    assert len(draw_symmetries(blank, [], 5, np.random.default_rng(0))) == 1


def test_examples_are_each_versions_demonstrations_placed_as_training_pairs() -> None:
    symmetries = draw_symmetries(DEMOS, TESTS, 3, np.random.default_rng(1))
    inputs, labels, owners = training_examples(DEMOS, symmetries, np.random.RandomState(0))
    assert inputs.shape == labels.shape == (6, 900) and owners.tolist() == [0, 0, 1, 1, 2, 2]
    for k, v in enumerate(owners):
        row, col, grid = locate(inputs[k])
        assert (row, col) == locate(labels[k])[:2]  # input and output share their offset
        assert np.array_equal(symmetries[v].invert_grid(grid), DEMOS[k % 2][0])
        assert np.array_equal(symmetries[v].invert_grid(locate(labels[k])[2]), DEMOS[k % 2][1])
    at_origin = [locate(inputs[k])[:2] == (0, 0) for k in range(6)]
    assert all(any(at_origin[2 * v: 2 * v + 2]) for v in range(3))  # one pair per version


@pytest.mark.parametrize("optimizer", ["adam", "sign_sgd"])
def test_fit_moves_only_the_new_rows(optimizer: str) -> None:
    model = tiny_model()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    progress: list[dict[str, float]] = []
    adapted = fit_rows(model, DEMOS, TESTS, 2,
                       AdaptConfig(max_steps=3, optimizer=optimizer, stop_when_exact=False),
                       on_progress=progress.append)
    assert adapted.rows.shape == (2, 16) and adapted.rows.dtype == np.float32
    assert np.abs(adapted.rows).sum() > 0  # zero-initialised rows were updated
    report = adapted.report
    assert (report.steps, report.stopped, report.examples, report.versions) == (3, "steps", 4, 2)
    assert 0.0 <= report.demo_exact <= 1.0 and np.isfinite(report.loss)
    assert progress[-1]["step"] == 3
    for name, p in model.named_parameters():
        assert p.grad is None and p.requires_grad == flags[name]
        assert torch.equal(p, before[name]), name


class MicroBatchClock:
    """A clock on which every micro-batch's forward takes one second (read by a hook on the
    answer head, which each forward calls once); `on_forward` may act after each one."""

    def __init__(self, model: TRM, on_forward: Callable[[int], None] | None = None) -> None:
        self.now, self.forwards = 0.0, 0
        self.on_forward = on_forward
        model.answer_head.register_forward_hook(self._tick)

    def _tick(self, *_: object) -> None:
        self.now += 1.0
        self.forwards += 1
        if self.on_forward is not None:
            self.on_forward(self.forwards)

    def __call__(self) -> float:
        return self.now


def test_budget_is_checked_between_micro_batches() -> None:
    # 2 versions x 2 demonstrations = 4 examples; one at a time, a step takes 4 s.
    model = tiny_model()
    clock = MicroBatchClock(model)
    cut = fit_rows(model, DEMOS, TESTS, 2, AdaptConfig(budget_s=2.5, max_steps=50,
                                                       micro_batch=1), clock=clock)
    report = cut.report
    assert (report.steps, report.stopped, report.loss) == (0, "budget", None)
    assert report.seconds <= 2.5 + 1.0  # at most one micro-batch past the budget
    assert not cut.rows.any()  # the step it cut short was not applied
    # All four in one micro-batch: a step takes 1 s, so whole steps fit in the budget.
    model = tiny_model()
    whole = fit_rows(model, DEMOS, TESTS, 2, AdaptConfig(budget_s=2.5, max_steps=50,
                                                         micro_batch=4),
                     clock=MicroBatchClock(model))
    assert (whole.report.steps, whole.report.stopped) == (3, "budget")


def test_stop_requests_are_seen_between_micro_batches() -> None:
    model = tiny_model()
    stop = threading.Event()
    clock = MicroBatchClock(model, on_forward=lambda _: stop.set())
    asked = fit_rows(model, DEMOS, TESTS, 2, AdaptConfig(max_steps=50, micro_batch=1),
                     should_stop=stop.is_set, clock=clock)
    assert (asked.report.steps, asked.report.stopped) == (0, "cancelled")
    assert clock.forwards == 1  # the other three micro-batches of the step never ran
    before = fit_rows(tiny_model(), DEMOS, TESTS, 2, AdaptConfig(max_steps=50),
                      should_stop=stop.is_set)
    assert (before.report.steps, before.report.stopped) == (0, "cancelled")


@pytest.mark.parametrize("optimizer", ["adam", "sign_sgd"])
def test_micro_batches_add_up_to_one_pass(optimizer: str) -> None:
    """Accumulated micro-batch gradients give the rows one pass over every example gives
    (float64, so summation order cannot flip a sign)."""
    fits = []
    for micro_batch in (1, 3, 64):
        model = tiny_model().double()
        config = AdaptConfig(max_steps=4, optimizer=optimizer, stop_when_exact=False,
                             micro_batch=micro_batch)
        fits.append(fit_rows(model, DEMOS, TESTS, 3, config))
    for fit in fits[:-1]:
        assert np.allclose(fit.rows, fits[-1].rows, atol=1e-6)
        assert fit.report.loss == pytest.approx(fits[-1].report.loss, abs=1e-4)
        assert fit.report.demo_exact == fits[-1].report.demo_exact


def test_fit_needs_a_puzzle_embedding_and_demonstrations() -> None:
    with pytest.raises(ValueError, match="puzzle embedding"):
        fit_rows(tiny_model(0), DEMOS, TESTS, 2, AdaptConfig())
    with pytest.raises(ValueError, match="demonstration"):
        fit_rows(tiny_model(), [], TESTS, 2, AdaptConfig())
    with pytest.raises(ValueError, match="optimizer"):
        AdaptConfig(optimizer="sgd")  # type: ignore[arg-type]


# ------------------------------------------------------------------- engine puzzle vectors
def test_engine_job_with_a_puzzle_vector_matches_the_same_table_row() -> None:
    model = tiny_model()
    with torch.no_grad():
        torch.nn.init.normal_(model.puzzle_embedding.weight)  # type: ignore[union-attr]
    row = model.puzzle_embedding.weight[2].detach().numpy().copy()  # type: ignore[union-attr]
    engine = Engine(model, ArcTask(), slots=4)
    puzzle = encode(TESTS[0]).astype(np.int8)
    by_id, by_vector, blank = engine.solve_batch(
        [puzzle] * 3, puzzle_ids=[2, 0, 0], puzzle_vectors=[None, row, None], halting="never")
    assert np.array_equal(by_id.answer, by_vector.answer) and by_id.q_halt == by_vector.q_halt
    assert not np.array_equal(by_id.answer, blank.answer)  # the row matters


def test_engine_refuses_bad_puzzle_vectors() -> None:
    engine = Engine(tiny_model(), ArcTask(), slots=2)
    puzzle = encode(TESTS[0]).astype(np.int8)
    for vector in (np.zeros(15, np.float32), np.full(16, np.nan, np.float32),
                   np.zeros(16, np.int64)):
        with pytest.raises(ValueError, match="puzzle_vector must be"):
            engine.submit(Job(puzzle=puzzle, max_steps=2, puzzle_vector=vector))
    plain = Engine(tiny_model(0), ArcTask(), slots=2)
    with pytest.raises(ValueError, match="no puzzle embedding"):
        plain.submit(Job(puzzle=puzzle, max_steps=2, puzzle_vector=np.zeros(16, np.float32)))
