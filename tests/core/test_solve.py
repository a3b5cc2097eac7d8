"""The plain solve loop (`trm_core.solve`): the engine's steps, one readout per step.

The comparisons run the tiny model in float64, where a batch of 1 and of 4 round alike (see
`tests/core/test_engine.py`), so equality is exact."""

from __future__ import annotations

import numpy as np
import torch

from tests.core.test_engine import PUZZLE, TASK, tiny_model, variants
from trm_core.engine import Engine, StepUpdate
from trm_core.evaluate import full_depth
from trm_core.solve import final_answers, final_tokens, q_halt, solve, solve_tokens


def test_each_step_equals_the_engine_step() -> None:
    model = tiny_model(dtype=torch.float64)
    updates: list[StepUpdate] = []
    Engine(model, TASK, slots=1).solve(PUZZLE, max_steps=4, halting="never",
                                       on_step=updates.append)
    steps = list(solve(model, TASK, PUZZLE[None], 4))
    assert len(steps) == len(updates) == 4
    for step, update in zip(steps, updates, strict=True):
        assert np.array_equal(TASK.keep_givens(PUZZLE, step.answers[0]), update.answer)
        assert np.array_equal(step.confidence[0], update.cell_confidence)
        assert q_halt(step.halt_logits[0]) == update.q_halt


def test_a_batch_equals_its_rows_alone() -> None:
    model = tiny_model(dtype=torch.float64)
    puzzles = np.stack(variants(3))
    batch = list(solve(model, TASK, puzzles, 3))
    for row, puzzle in enumerate(puzzles):
        alone = list(solve(model, TASK, puzzle[None], 3))
        for together, single in zip(batch, alone, strict=True):
            assert np.array_equal(together.answers[row], single.answers[0])


def test_final_tokens_are_the_model_run_forward() -> None:
    """The loop the ARC evaluation used to write by hand: `model(state, tokens)` each step."""
    model = tiny_model()
    tokens = torch.from_numpy(TASK.to_tokens(np.stack(variants(2))))
    state = model.initial_state(2)
    with torch.no_grad():
        for _ in range(3):
            out = model(state, tokens)
            state = out.state
    assert torch.equal(final_tokens(model, tokens, 3), out.logits.argmax(-1))


def test_modes_are_not_held_between_steps() -> None:
    model = tiny_model()
    tokens = torch.from_numpy(TASK.to_tokens(PUZZLE[None]))
    for readout in solve_tokens(model, tokens, 2):
        assert not torch.is_inference_mode_enabled()
        assert readout.tokens.shape == (1, 81) and readout.halt_logits.shape == (1,)


def test_full_depth_results_equal_the_engine_results() -> None:
    model = tiny_model(dtype=torch.float64)
    puzzles = np.stack(variants(4))
    plain = full_depth(model, TASK, puzzles, 3, batch_size=4, autocast_dtype=None)
    engine = Engine(model, TASK, slots=4).solve_batch(list(puzzles), max_steps=3,
                                                      halting="never")
    for a, b in zip(plain, engine, strict=True):
        assert a.answer is not None and b.answer is not None
        assert np.array_equal(a.answer, b.answer)
        assert (a.valid, a.steps_used, a.halted_early) == (b.valid, b.steps_used, b.halted_early)
        assert (a.confidence, a.q_halt, a.status) == (b.confidence, b.q_halt, b.status)


def test_no_puzzles_give_empty_answers() -> None:
    last = final_answers(tiny_model(), TASK, np.zeros((0, 81), np.int8), 2)
    assert last.answers.shape == (0, 81) and last.halt_logits.shape == (0,)
