"""`trm_client.Client` against the real service: solve, stream, jobs, models, problem errors."""

from __future__ import annotations

import pytest
from in_thread import RunningServer
from trm_client import Client, InvalidPuzzle, NotFound, SolveResult, StepEvent

README_PUZZLE = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
README_SOLUTION = (
    "483921657967345821251876493548132976729564138136798245372689514814253769695417382")


def test_solve_returns_a_typed_verified_result(server: RunningServer) -> None:
    with Client(server.base_url) as trm:
        result = trm.solve("sudoku", README_PUZZLE, halting="never", max_steps=5)
    assert isinstance(result, SolveResult)
    assert result.solved and result.valid and result.solution == README_SOLUTION
    assert result.steps_used == 5 and result.model == "trm-sudoku-tiny@1"
    assert result.grid[0] == [4, 8, 3, 9, 2, 1, 6, 5, 7]


def test_stream_yields_every_step_then_the_result(server: RunningServer) -> None:
    with Client(server.base_url) as trm:
        stream = trm.stream("sudoku", README_PUZZLE, halting="never", max_steps=4)
        steps = list(stream)
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(isinstance(s, StepEvent) and len(s.cell_confidence) == 81 for s in steps)
    assert stream.result is not None and stream.result.solution == steps[-1].grid


def test_jobs_submit_get_events_and_resume(server: RunningServer) -> None:
    with Client(server.base_url) as trm:
        job = trm.submit("sudoku", README_PUZZLE, halting="never", max_steps=6)
        assert job.id.startswith("job_") and job.task == "sudoku"
        stream = trm.events(job.id)
        assert [s.step for s in stream] == [1, 2, 3, 4, 5, 6]
        resumed = trm.events(job.id, after=4)
        assert [s.step for s in resumed] == [5, 6]
        assert resumed.result is not None and resumed.result.valid
        done = trm.get(job.id)
        assert done.done and done.status == "succeeded"
        assert done.result is not None and done.result.solution == README_SOLUTION


def test_models_and_errors(server: RunningServer) -> None:
    with Client(server.base_url) as trm:
        [model] = trm.models()
        assert model.id == "trm-sudoku-tiny@1" and model.task == "sudoku"
        with pytest.raises(InvalidPuzzle) as bad:
            trm.solve("sudoku", "55" + "." * 79)
        assert bad.value.status == 422 and "appears twice in row 1" in bad.value.detail
        with pytest.raises(InvalidPuzzle) as steps:
            list(trm.stream("sudoku", README_PUZZLE, max_steps=99))
        assert any("max_steps" in str(e.get("loc")) for e in steps.value.errors) \
            or "max_steps" in steps.value.detail
        with pytest.raises(NotFound):
            trm.get("job_missing")
        with pytest.raises(NotFound) as task:
            trm.solve("chess", README_PUZZLE)
        assert task.value.title == "Not Found"
