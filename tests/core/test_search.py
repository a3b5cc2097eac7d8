"""Verified search: rounds, budgets, confidence decimation and reproducibility, on the real
engine. A test double that solves only puzzles with enough givens shows that decimation (the
model's own confident cells kept as givens) turns a failed single pass into a verified answer."""

from __future__ import annotations

import numpy as np
import pytest
from test_engine import PUZZLE, SOLUTION, TASK, OracleTRM, solve_exactly, tiny_model

from trm_core.engine import Engine, Job
from trm_core.search import SearchConfig, SearchPlan, SearchRun
from trm_core.tasks.sudoku import conflicting_cells


class NeedsGivensTRM(OracleTRM):
    """Answers with the solution once a row's puzzle has `needed` givens; below that, with the
    solution spoiled in its first blank cell (a digit that clashes), so nothing verifies."""

    def __init__(self, needed: int) -> None:
        super().__init__(solve_from=1, max_steps=4)
        self.needed = needed

    def _answer(self, tokens: np.ndarray, step: int) -> np.ndarray:
        solution = TASK.to_tokens(solve_exactly(tokens - 1))
        if np.count_nonzero(tokens != 1) >= self.needed:
            return solution
        spoiled = solution.copy()
        first_blank = int(np.flatnonzero(tokens == 1)[0])
        row = first_blank // 9
        spoiled[first_blank] = solution[9 * row + (first_blank + 1) % 9]  # a neighbour's digit
        return spoiled


def run(engine: Engine, config: SearchConfig, puzzle: np.ndarray = PUZZLE,
        seed: int = 0) -> SearchPlan:
    """One search to its end on an engine no thread owns; its plan, to inspect."""
    job = Job(puzzle=puzzle, max_steps=config.max_steps, search=config, seed=seed)
    search = SearchRun(engine, TASK, puzzle, job)
    search.submit()
    assert engine.drain(30)
    return search.plan


def test_a_verified_single_pass_costs_nothing_extra() -> None:
    engine = Engine(OracleTRM(solve_from=1, max_steps=4), TASK, slots=8)
    plan = run(engine, SearchConfig(budget_steps=64, max_steps=4))
    assert plan.solved and len(plan.rounds) == 1
    assert plan.steps_used == plan.rounds[0].steps <= 4


def test_decimation_turns_a_failed_pass_into_a_verified_answer() -> None:
    engine = Engine(NeedsGivensTRM(needed=45), TASK, slots=8)
    plan = run(engine, SearchConfig(budget_steps=64, attempts=2, max_steps=4, keep_fraction=0.5))
    assert plan.solved and plan.best is not None and plan.best.answer is not None
    np.testing.assert_array_equal(plan.best.answer, SOLUTION)
    first, second = plan.rounds[:2]
    assert not first.valid and first.extra_givens == 0 and first.conflicts > 0
    assert second.valid and second.extra_givens >= 45 - np.count_nonzero(PUZZLE)
    assert plan.steps_used == sum(r.steps * r.attempts for r in plan.rounds) <= 64


def test_kept_cells_are_model_answers_that_break_no_rule() -> None:
    plan = SearchPlan(TASK, PUZZLE, SearchConfig(keep_fraction=1.0))
    anchor = SOLUTION.copy()
    anchor[2] = anchor[3]  # a clash in row 1 and the cells it involves
    plan.anchor, plan.anchor_confidence = anchor, np.linspace(1, 0, 81, dtype=np.float32)
    kept = plan._decimated()
    clashing = conflicting_cells(PUZZLE, anchor)
    added = np.flatnonzero(kept != PUZZLE)
    assert len(added) and not clashing[added].any()
    np.testing.assert_array_equal(kept[added], anchor[added])
    assert (kept[PUZZLE != 0] == PUZZLE[PUZZLE != 0]).all()


def test_keeping_no_cells_makes_rounds_plain_attempts() -> None:
    engine = Engine(NeedsGivensTRM(needed=45), TASK, slots=8)
    plan = run(engine, SearchConfig(budget_steps=40, attempts=2, max_steps=4, keep_fraction=0))
    assert len(plan.rounds) > 1 and all(r.extra_givens == 0 for r in plan.rounds)
    with pytest.raises(ValueError, match="keep_fraction must be in"):
        SearchConfig(keep_fraction=1.5)
    with pytest.raises(ValueError, match="latent_noise must be"):
        SearchConfig(latent_noise=-0.1)


@pytest.mark.parametrize("budget", [0, 4, 10, 40])
def test_the_budget_bounds_the_steps_spent(budget: int) -> None:
    engine = Engine(NeedsGivensTRM(needed=81), TASK, slots=8)
    plan = run(engine, SearchConfig(budget_steps=budget, attempts=4, max_steps=4))
    assert not plan.solved
    assert plan.steps_used <= max(budget, 4)  # the single pass is always paid
    # Search goes on while the budget left pays for one attempt of max_steps.
    assert budget - plan.steps_used < 4
    assert (len(plan.rounds) > 1) == (budget >= 8)


def test_the_same_seed_gives_the_same_search() -> None:
    def answer(seed: int) -> tuple[list[dict], bytes]:
        plan = run(Engine(tiny_model(), TASK, slots=8),
                   SearchConfig(budget_steps=24, attempts=2, max_steps=4), seed=seed)
        assert plan.best is not None and plan.best.answer is not None
        return [r.to_dict() for r in plan.rounds], plan.best.answer.tobytes()

    assert answer(3) == answer(3)


def test_many_plans_share_the_engine() -> None:
    engine = Engine(NeedsGivensTRM(needed=45), TASK, slots=4)
    rng = np.random.default_rng(0)
    puzzles = [TASK.random_symmetry(rng).apply(PUZZLE) for _ in range(5)]
    config = SearchConfig(budget_steps=32, attempts=2, max_steps=4, keep_fraction=0.5)
    results = engine.solve_batch(puzzles, max_steps=4, halting="auto", search=config, seed=0)
    assert all(result.status == "solved" and result.search for result in results)
    for result, puzzle in zip(results, puzzles, strict=True):
        assert result.answer is not None and TASK.verify(puzzle, result.answer)


def test_a_search_job_looks_like_one_job_to_its_caller() -> None:
    engine = Engine(NeedsGivensTRM(needed=45), TASK, slots=8)
    steps: list[int] = []
    results = []
    engine.submit(Job(puzzle=PUZZLE, max_steps=4, on_step=lambda u: steps.append(u.step),
                      on_done=results.append, id="one",
                      search=SearchConfig(budget_steps=64, attempts=2, keep_fraction=0.5)))
    assert engine.drain(30)
    [result] = results
    assert result.job_id == "one" and result.status == "solved" and result.valid
    assert steps == list(range(1, len(steps) + 1)) and result.steps_used == len(steps)
    assert result.search is not None and len(result.search["rounds"]) == 2
    assert result.search["rounds"][1]["extra_givens"] > 0
    assert result.search["steps_used"] == sum(r["steps"] * r["attempts"]
                                              for r in result.search["rounds"])


def test_a_cancelled_search_runs_no_further_round() -> None:
    engine = Engine(NeedsGivensTRM(needed=81), TASK, slots=8)
    results = []
    job = Job(puzzle=PUZZLE, max_steps=4, on_done=results.append,
              search=SearchConfig(budget_steps=400, attempts=2))
    job.on_step = lambda update: engine.cancel(job.id) if update.step == 6 else None
    engine.submit(job)
    assert engine.drain(30)
    [result] = results
    assert result.status == "cancelled" and result.steps_used <= 8
    assert not engine.busy and not engine.cancel(job.id)


def test_a_search_without_budget_is_the_plain_job() -> None:
    engine = Engine(NeedsGivensTRM(needed=81), TASK, slots=8)
    results = []
    engine.submit(Job(puzzle=PUZZLE, max_steps=4, on_done=results.append,
                      search=SearchConfig(budget_steps=0)))
    assert engine.drain(30)
    assert results[0].status == "unsolved" and results[0].search is None
    assert results[0].steps_used == 4
