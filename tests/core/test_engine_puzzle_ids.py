"""Jobs that name a puzzle-embedding row: the engine embeds each job with its own row, batched
or not, and refuses a row the table does not have."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.engine import Engine, Job
from trm_core.model import TRM
from trm_core.tasks.sudoku import SudokuTask

TASK = SudokuTask()


def model_with_rows(rows: int = 3) -> TRM:
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2,
                            max_supervision_steps=3, puzzle_emb_len=1, puzzle_emb_dim=32,
                            num_puzzle_ids=rows))
    torch.nn.init.normal_(model.puzzle_embedding.weight, std=3.0)  # type: ignore[union-attr]
    return model.eval()


def direct_answer(model: TRM, puzzle: np.ndarray, row: int, steps: int) -> np.ndarray:
    tokens = torch.from_numpy(TASK.to_tokens(puzzle[None]))
    with torch.inference_mode():
        state = model.initial_state(1)
        for _ in range(steps):
            out = model(state, tokens, torch.tensor([row]))
            state = out.state
    return TASK.from_tokens(out.logits.argmax(-1).numpy())[0]


def test_each_job_uses_its_own_row() -> None:
    model = model_with_rows()
    puzzle = np.zeros(81, dtype=np.int8)
    engine = Engine(model, TASK, slots=4)
    results = engine.solve_batch([puzzle] * 3, puzzle_ids=[2, 0, 1], halting="never")
    answers = [r.answer for r in results]
    for row, answer in zip([2, 0, 1], answers, strict=True):
        assert np.array_equal(answer, direct_answer(model, puzzle, row, 3))
    assert not np.array_equal(answers[0], answers[1])  # the rows really differ


def test_a_row_outside_the_table_is_refused() -> None:
    engine = Engine(model_with_rows(3), TASK, slots=2)
    with pytest.raises(ValueError, match=r"puzzle_id must be an integer in 0\.\.2, got 3"):
        engine.submit(Job(np.zeros(81, dtype=np.int8), max_steps=2, puzzle_id=3))
    with pytest.raises(ValueError, match="puzzle_ids has 1 entries for 2 puzzles"):
        engine.solve_batch([np.zeros(81, dtype=np.int8)] * 2, puzzle_ids=[1])
