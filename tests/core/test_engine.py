"""Engine: batching, admission, halting, attempts, cancellation, fault isolation, threading.

The real (tiny, untrained) model checks that batching never changes answers. An oracle model
that answers with the true solution checks what depends on answers being right: auto halting,
verification, attempts mapped back to the puzzle's frame.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import torch

from trm_core.config import ModelConfig
from trm_core.engine import Engine, Job, JobResult, QueueFull, StepUpdate, TickStats
from trm_core.model import TRM, State, StepOutput
from trm_core.tasks.sudoku import SudokuTask

PUZZLE_TEXT = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION_TEXT = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
PUZZLE = np.array([0 if ch == "." else int(ch) for ch in PUZZLE_TEXT], dtype=np.int8)
SOLUTION = np.array([int(ch) for ch in SOLUTION_TEXT], dtype=np.int8)
TASK = SudokuTask()


def tiny_config(max_steps: int = 4) -> ModelConfig:
    return ModelConfig(hidden_size=32, num_heads=4, recursions=2, latent_updates=2,
                       max_supervision_steps=max_steps)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> TRM:
    """A seeded untrained model whose halting head varies per puzzle (it is zero at init).

    The batching checks run it in float64: fp32 kernels round a batch of 1 and of 4 slightly
    differently, and differently on each CPU, and the recursion amplifies that past 1e-5 on
    some; in float64 the same code agrees far below it everywhere."""
    torch.manual_seed(seed)
    model = TRM(tiny_config())
    torch.nn.init.normal_(model.halt_head.weight, std=0.5)
    return model.to(dtype).eval()


def variants(count: int, seed: int = 1) -> list[np.ndarray]:
    """The example puzzle and `count - 1` random symmetric images of it."""
    rng = np.random.default_rng(seed)
    return [PUZZLE] + [TASK.random_symmetry(rng).apply(PUZZLE) for _ in range(count - 1)]


def solve_exactly(cells: np.ndarray) -> np.ndarray:
    """Backtracking with the fewest-candidates cell first; instant for the example's images."""
    grid = [int(v) for v in cells]

    def candidates(pos: int) -> set[int]:
        r, c = divmod(pos, 9)
        top, left = 3 * (r // 3), 3 * (c // 3)
        seen = {grid[9 * r + k] for k in range(9)} | {grid[9 * k + c] for k in range(9)}
        seen |= {grid[9 * (top + i) + left + j] for i in range(3) for j in range(3)}
        return set(range(1, 10)) - seen

    def search() -> bool:
        blanks = [pos for pos in range(81) if grid[pos] == 0]
        if not blanks:
            return True
        pos = min(blanks, key=lambda p: len(candidates(p)))
        for value in candidates(pos):
            grid[pos] = value
            if search():
                return True
        grid[pos] = 0
        return False

    assert search()
    return np.array(grid, dtype=np.int8)


class OracleTRM(TRM):
    """Test double: answers with the exact solution of whatever puzzle a row holds.

    The puzzle tokens ride in channel 0 of x and the row's step count in z[:, 0, 0], so every
    row behaves independently, as in the real model. Given cells get sharper logits than
    filled-in ones, so cell confidences reveal positions.
    """

    def __init__(self, solve_from: int | None = 1, halt_at: int | None = None,
                 refuse: tuple[np.ndarray, ...] = (), max_steps: int = 8) -> None:
        super().__init__(tiny_config(max_steps))
        self.solve_from, self.halt_at = solve_from, halt_at
        self.refused = {TASK.to_tokens(p).tobytes() for p in refuse}
        self.fail = False
        self._solutions: dict[bytes, np.ndarray] = {}

    def embed(self, tokens: torch.Tensor, puzzle_ids: torch.Tensor | None = None) -> torch.Tensor:
        x = super().embed(tokens, puzzle_ids).clone()
        x[..., 0] = tokens.float()
        return x

    def step(self, state: State, x: torch.Tensor) -> StepOutput:
        if self.fail:
            raise RuntimeError("injected model fault")
        tokens = x[..., 0].round().long().numpy()  # (B, 81)
        step = (state.z[:, 0, 0] - self.get_buffer("z_init")[0]).round().long() + 1  # (B,)
        z = state.z.clone()
        z[:, 0, 0] += 1
        answers = np.stack([self._answer(row, int(n)) for row, n in zip(tokens, step, strict=True)])
        given = torch.from_numpy(tokens != 1)  # (B, 81)
        scale = torch.where(given, 10.0, 3.0).unsqueeze(-1)
        logits = torch.nn.functional.one_hot(torch.from_numpy(answers), 11).float() * scale
        halt = torch.full_like(step, -5.0, dtype=torch.float32)
        if self.halt_at is not None:
            halt = torch.where(step >= self.halt_at, 5.0, -5.0)
        return StepOutput(State(state.y, z), logits, halt, -halt)

    def _answer(self, tokens: np.ndarray, step: int) -> np.ndarray:
        """Solution tokens, or the puzzle itself (blanks stay blank) when not solving yet."""
        key = tokens.tobytes()
        if self.solve_from is None or step < self.solve_from or key in self.refused:
            return tokens
        if key not in self._solutions:
            self._solutions[key] = TASK.to_tokens(solve_exactly(tokens - 1))
        return self._solutions[key]


class Recorder:
    """Collects callbacks by job id."""

    def __init__(self) -> None:
        self.updates: dict[str, list[StepUpdate]] = {}
        self.results: dict[str, JobResult] = {}
        self.ticks: list[TickStats] = []
        self.events: list[tuple[str, str]] = []  # ("step" | "done", job id) in call order

    def job(self, puzzle: np.ndarray = PUZZLE, **options: Any) -> Job:
        return Job(puzzle=puzzle, on_step=self.on_step, on_done=self.on_done, **options)

    def on_step(self, update: StepUpdate) -> None:
        self.updates.setdefault(update.job_id, []).append(update)
        self.events.append(("step", update.job_id))

    def on_done(self, result: JobResult) -> None:
        assert result.job_id not in self.results, "on_done fired twice"
        self.results[result.job_id] = result
        self.events.append(("done", result.job_id))

    def on_tick(self, stats: TickStats) -> None:
        self.ticks.append(stats)


def engine_for(model: TRM, rec: Recorder | None = None, **kwargs: Any) -> Engine:
    return Engine(model, TASK, on_tick=None if rec is None else rec.on_tick, **kwargs)


# ----------------------------------------------------------------------- real model: batching


def test_single_solve_under_never_runs_every_step() -> None:
    result = engine_for(tiny_model(), slots=2).solve(PUZZLE, max_steps=3, halting="never")
    assert result.status in ("solved", "unsolved")
    assert result.steps_used == 3 and not result.halted_early
    assert result.answer is not None and result.answer.shape == (81,)
    assert result.answer.dtype == np.int8
    assert 0.0 < result.q_halt < 1.0 and 0.0 < result.confidence <= 1.0
    assert result.total_ms >= result.compute_ms >= 0.0
    # Without max_steps, solve runs the model's own limit (4 here, not Job's default 16).
    assert engine_for(tiny_model(), slots=1).solve(PUZZLE, halting="never").steps_used == 4


def test_shared_batch_matches_each_puzzle_solved_alone() -> None:
    puzzles = variants(5)
    alone = [engine_for(tiny_model(dtype=torch.float64), slots=4).solve(
        p, max_steps=4, halting="never") for p in puzzles]
    rec = Recorder()
    shared = engine_for(tiny_model(dtype=torch.float64), rec, slots=4).solve_batch(
        puzzles, max_steps=4, halting="never")
    assert [t.batch_size for t in rec.ticks] == [4, 4, 4, 4, 1, 1, 1, 1]
    for one, many in zip(alone, shared, strict=True):
        assert one.answer is not None and many.answer is not None
        np.testing.assert_array_equal(one.answer, many.answer)
        assert one.confidence == pytest.approx(many.confidence, abs=1e-5)
        assert one.q_halt == pytest.approx(many.q_halt, abs=1e-5)


def test_job_admitted_mid_flight_joins_the_running_batch() -> None:
    first, second = variants(2)
    solo_rec = Recorder()
    solo = engine_for(tiny_model(dtype=torch.float64), slots=2)
    for name, puzzle in (("solo0", first), ("solo1", second)):
        solo.submit(solo_rec.job(puzzle, max_steps=3, halting="never", id=name))
        assert solo.drain(30.0)

    rec = Recorder()
    engine = engine_for(tiny_model(dtype=torch.float64), rec, slots=2)
    engine.submit(rec.job(first, max_steps=3, halting="never", id="a"))
    engine.tick()
    engine.submit(rec.job(second, max_steps=3, halting="never", id="b"))
    assert engine.drain(30.0)
    assert [t.batch_size for t in rec.ticks] == [1, 2, 2, 1]
    for mine, alone in (("a", "solo0"), ("b", "solo1")):
        for got, want in zip(rec.updates[mine], solo_rec.updates[alone], strict=True):
            np.testing.assert_array_equal(got.answer, want.answer)
            np.testing.assert_allclose(got.cell_confidence, want.cell_confidence, atol=1e-5)


def test_solve_batch_returns_results_in_input_order() -> None:
    puzzles = variants(3)
    results = engine_for(tiny_model(), slots=2).solve_batch(puzzles, max_steps=2, halting="never")
    alone = [engine_for(tiny_model(), slots=1).solve(p, max_steps=2, halting="never")
             for p in puzzles]
    for got, want in zip(results, alone, strict=True):
        np.testing.assert_array_equal(got.answer, want.answer)


def test_latent_noise_is_reproducible_with_a_seed() -> None:
    engine = engine_for(tiny_model(), slots=4)
    options = dict(max_steps=2, halting="never", attempts=3, latent_noise=0.5, seed=7)
    one, two = engine.solve(PUZZLE, **options), engine.solve(PUZZLE, **options)
    np.testing.assert_array_equal(one.answer, two.answer)
    assert (one.attempt, one.q_halt) == (two.attempt, two.q_halt)


def test_autocast_keeps_the_carry_in_the_model_dtype() -> None:
    engine = engine_for(tiny_model(), slots=2, autocast_dtype=torch.bfloat16)
    results = engine.solve_batch(variants(3), max_steps=2, halting="never")
    assert [r.steps_used for r in results] == [2, 2, 2]
    assert engine._pool.y.dtype == torch.float32


def test_warmup_leaves_the_engine_idle() -> None:
    engine = engine_for(tiny_model(), slots=3)
    engine.warmup()
    assert (engine.active_slots, engine.free_slots, engine.queue_depth) == (0, 3, 0)
    assert not engine.busy


# ------------------------------------------------------------------------------- admission


def test_cancel_frees_the_slot_at_the_next_tick() -> None:
    rec = Recorder()
    engine = engine_for(tiny_model(), rec, slots=1)
    for name in "abc":
        engine.submit(rec.job(id=name, max_steps=4, halting="never"))
    engine.tick()
    assert engine.cancel("a") and engine.cancel("c") and not engine.cancel("nobody")
    engine.tick()
    assert rec.results["a"].status == "cancelled" and rec.results["a"].steps_used == 1
    queued = rec.results["c"]
    assert queued.status == "cancelled" and queued.answer is None and queued.steps_used == 0
    assert [u.step for u in rec.updates["b"]] == [1]  # b took a's slot in that same tick
    assert engine.cancel("b")
    engine.tick()
    assert rec.results["b"].status == "cancelled" and not engine.busy
    assert engine.free_slots == 1 and not engine.cancel("a")


class Clock:
    """A clock that moves only when told, so deadlines never depend on how long a step takes."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadline_ends_queued_and_running_jobs_as_timeout() -> None:
    rec, clock = Recorder(), Clock()
    engine = engine_for(tiny_model(), rec, slots=1, clock=clock)
    engine.submit(rec.job(id="late", deadline=clock.now - 1.0, max_steps=4))
    engine.submit(rec.job(id="slow", deadline=clock.now + 0.3, max_steps=4, halting="never"))
    engine.tick()
    assert rec.results["late"].status == "timeout" and rec.results["late"].answer is None
    assert "slow" not in rec.results
    clock.now += 0.3
    engine.tick()
    slow = rec.results["slow"]
    assert slow.status == "timeout" and slow.steps_used == 1 and slow.answer is not None
    assert slow.error is not None and "deadline" in slow.error
    assert engine.free_slots == 1


def test_queue_full_and_duplicate_ids_are_refused() -> None:
    engine = engine_for(tiny_model(), slots=1, max_queue=2)
    engine.submit(Job(PUZZLE, max_steps=1, id="x"))
    with pytest.raises(ValueError, match="id"):
        engine.submit(Job(PUZZLE, max_steps=1, id="x"))
    engine.submit(Job(PUZZLE, max_steps=1))
    with pytest.raises(QueueFull):
        engine.submit(Job(PUZZLE, max_steps=1))
    assert engine.queue_depth == 2


@pytest.mark.parametrize(("option", "value"), [
    ("max_steps", 0), ("max_steps", 5), ("max_steps", 2.0), ("attempts", 0), ("attempts", 5),
    ("halting", "sometimes"), ("latent_noise", -0.1), ("puzzle", PUZZLE[:80]),
    ("puzzle", PUZZLE.astype(np.float32)), ("puzzle", PUZZLE.reshape(9, 9)),
])
def test_invalid_options_raise_value_error_naming_them(option: str, value: object) -> None:
    engine = engine_for(tiny_model(), slots=4)
    options: dict[str, Any] = {"puzzle": PUZZLE, "max_steps": 2, option: value}
    with pytest.raises(ValueError, match=option):
        engine.submit(Job(**options))
    assert engine.queue_depth == 0


def test_big_job_at_the_head_is_not_overtaken() -> None:
    rec = Recorder()
    engine = engine_for(tiny_model(), rec, slots=4)
    engine.submit(rec.job(id="small", max_steps=2, halting="never"))
    engine.tick()
    engine.submit(rec.job(id="big", max_steps=1, halting="never", attempts=4))
    engine.submit(rec.job(id="after", max_steps=1, halting="never"))
    engine.tick()
    assert "after" not in rec.updates  # three slots were free, but "big" is first in line
    assert engine.drain(30.0)
    assert rec.results["big"].attempts == 4
    assert rec.events.index(("step", "big")) < rec.events.index(("step", "after"))
    assert rec.events.index(("done", "small")) < rec.events.index(("step", "big"))


# --------------------------------------------------------------------- oracle: halting logic


def test_auto_stops_once_a_verified_answer_is_stable() -> None:
    rec = Recorder()
    engine = engine_for(OracleTRM(solve_from=2), rec, slots=2)
    engine.submit(rec.job(id="j", max_steps=8, halting="auto"))
    assert engine.drain(30.0)
    result = rec.results["j"]
    assert result.status == "solved" and result.valid
    assert result.steps_used == 3 and result.halted_early
    np.testing.assert_array_equal(result.answer, SOLUTION)
    updates = rec.updates["j"]
    assert [u.valid for u in updates] == [False, True, True]
    blanks = np.flatnonzero(PUZZLE == 0).tolist()
    assert [u.changed_cells for u in updates] == [[], blanks, []]
    assert updates[1].changed == len(blanks)


def test_auto_stops_when_the_head_agrees_with_a_verified_answer() -> None:
    result = engine_for(OracleTRM(solve_from=2, halt_at=2), slots=1).solve(
        PUZZLE, max_steps=8, halting="auto")
    assert result.status == "solved" and result.steps_used == 2 and result.halted_early


def test_auto_does_not_stop_on_an_answer_that_fails_the_check() -> None:
    result = engine_for(OracleTRM(solve_from=None, halt_at=2), slots=1).solve(
        PUZZLE, max_steps=8, halting="auto")
    assert result.status == "unsolved" and not result.valid
    assert result.steps_used == 8 and not result.halted_early and result.q_halt > 0.99


def test_auto_trusts_the_head_where_the_task_cannot_verify(monkeypatch) -> None:
    engine = engine_for(OracleTRM(solve_from=None, halt_at=2), slots=1)
    monkeypatch.setattr(engine.task, "can_verify", False)
    result = engine.solve(PUZZLE, max_steps=8, halting="auto")
    assert result.steps_used == 2 and result.halted_early


def test_never_ignores_halting_and_verification() -> None:
    result = engine_for(OracleTRM(solve_from=1, halt_at=1), slots=1).solve(
        PUZZLE, max_steps=6, halting="never")
    assert result.status == "solved" and result.steps_used == 6 and not result.halted_early


def test_attempts_use_their_slots_and_map_answers_back() -> None:
    rec = Recorder()
    # The oracle refuses the puzzle as given, so only a transformed attempt can solve it.
    engine = engine_for(OracleTRM(refuse=(PUZZLE,)), rec, slots=4)
    engine.submit(rec.job(id="j", attempts=4, max_steps=8, halting="auto", seed=3))
    engine.submit(rec.job(id="next", max_steps=1))
    engine.tick()
    assert engine.active_slots == 4 and engine.queue_depth == 1
    assert rec.ticks[0].batch_size == 4
    assert engine.drain(30.0)
    result = rec.results["j"]
    assert result.status == "solved" and result.attempt > 0 and result.attempts == 4
    assert result.steps_used == 2
    np.testing.assert_array_equal(result.answer, SOLUTION)
    last = rec.updates["j"][-1]
    # Givens were predicted sharper than filled cells: the map back must keep positions.
    given = PUZZLE != 0
    assert last.cell_confidence[given].min() > last.cell_confidence[~given].max()
    assert last.confidence == pytest.approx(float(last.cell_confidence[~given].mean()))


# -------------------------------------------------------------------------- fault isolation


def test_on_step_exception_fails_only_that_job() -> None:
    rec = Recorder()
    engine = engine_for(tiny_model(), rec, slots=2)

    def explode(update: StepUpdate) -> None:
        raise RuntimeError("client went away")

    engine.submit(Job(PUZZLE, max_steps=3, halting="never", id="bad", on_step=explode,
                      on_done=rec.on_done))
    engine.submit(rec.job(id="good", max_steps=3, halting="never"))
    assert engine.drain(30.0)
    bad, good = rec.results["bad"], rec.results["good"]
    assert bad.status == "failed" and bad.error is not None and "client went away" in bad.error
    assert good.status in ("solved", "unsolved") and good.steps_used == 3


def test_model_step_exception_fails_the_batch_and_the_engine_recovers() -> None:
    rec = Recorder()
    model = OracleTRM()
    engine = engine_for(model, rec, slots=2)
    engine.submit(rec.job(id="a", max_steps=4))
    engine.submit(rec.job(id="b", max_steps=4))
    model.fail = True
    assert engine.tick() == 0
    assert {rec.results[i].status for i in "ab"} == {"failed"}
    assert "injected model fault" in (rec.results["a"].error or "")
    model.fail = False
    assert engine.solve(PUZZLE, max_steps=4).status == "solved"


def test_callback_exceptions_are_contained() -> None:
    def boom(_: object) -> None:
        raise RuntimeError("callback bug")

    engine = Engine(OracleTRM(), TASK, slots=2, on_tick=boom)
    engine.submit(Job(PUZZLE, max_steps=2, on_done=boom))
    assert engine.drain(30.0)
    assert engine.solve(PUZZLE, max_steps=4).status == "solved"


def test_fail_all_ends_queued_and_running_jobs() -> None:
    rec = Recorder()
    engine = engine_for(tiny_model(), rec, slots=1)
    for name in ("a", "b"):
        engine.submit(rec.job(id=name, max_steps=4, halting="never"))
    engine.tick()
    engine.fail_all("shutting down")
    assert {r.status for r in rec.results.values()} == {"failed"}
    assert {r.error for r in rec.results.values()} == {"shutting down"}
    assert not engine.busy and engine.free_slots == 1


def test_drain_gives_up_at_its_timeout() -> None:
    engine = engine_for(tiny_model(), slots=1)
    engine.submit(Job(PUZZLE, max_steps=4, halting="never"))
    assert not engine.drain(0.0) and engine.busy


# --------------------------------------------------------------------------------- threading


def test_run_thread_serves_jobs_submitted_from_another_thread() -> None:
    rec = Recorder()
    engine = engine_for(tiny_model(), rec, slots=2)
    stop = threading.Event()
    worker = threading.Thread(target=engine.run, args=(stop, 0.01), daemon=True)
    worker.start()
    done = threading.Event()

    def on_done(result: JobResult) -> None:
        rec.on_done(result)
        if len(rec.results) == 3:
            done.set()

    for i in range(3):
        time.sleep(0.02)
        engine.submit(Job(PUZZLE, max_steps=3, halting="never", id=str(i), on_done=on_done))
    assert done.wait(30.0)
    with pytest.raises(RuntimeError, match="run"):
        engine.solve(PUZZLE)
    stop.set()
    engine.wake()
    worker.join(5.0)
    assert not worker.is_alive()
    assert all(r.steps_used == 3 for r in rec.results.values())
