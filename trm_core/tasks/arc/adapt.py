"""Test-time adaptation for ARC: fit puzzle-embedding rows for a task the checkpoint never saw.

An ARC model answers a task through its versions' embedding rows. For a new task this module
draws versions (the identity, then distinct random `ArcSymmetry` draws), places every version's
demonstration pairs as training pairs the way the dataset builder does, and fits one new row per
version with the network frozen, training as the trainer does: one optimizer step is one
supervision step over every example, the carry (y, z) persists across steps, each row restarts
once it halts (halting logit > 0) or ran `supervision_steps` steps, and the loss is
`trm_core.losses.step_loss` at every step. A step runs in micro-batches of `micro_batch`
examples whose row gradients add up to the whole batch's, so memory for activations stays
bounded while the update is the same as one pass over every example. It stops at the time
budget, the step limit, when every example's last finished run was exactly right, or when
asked to; budget and stop requests are checked before every micro-batch, and a step they cut
short is dropped (every applied update covers every example).

Only the new rows receive gradients: they are computed with `torch.autograd.grad` with respect
to the rows alone, so nothing is written to the model's parameters (no `.grad`, no change to
`requires_grad`, no swapped module attributes) and an engine thread may keep stepping the same
module meanwhile; grad mode is per thread. Rows live on the model's device; returned as numpy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch

from trm_core.losses import StepLoss, step_loss
from trm_core.model import TRM, State, StepOutput
from trm_core.sign_sgd import SignSGD
from trm_core.tasks.arc.build import DRAWS_PER_VERSION, pairs_key, place_pairs
from trm_core.tasks.arc.grids import ArcSymmetry

log = logging.getLogger(__name__)
Optimizer = Literal["adam", "sign_sgd"]
Pair = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class AdaptConfig:
    """How to fit rows. Sign-SGD at the reference's puzzle-embedding rate and decay by default:
    a row's gradient is small and flips sign as the carry moves through the supervision steps,
    so Adam's averaged first moment barely moves it, while sign-SGD takes a full step every
    time (measured: equal steps lowered the demonstration loss with sign-SGD, not with Adam at
    lr 1e-2 or 3e-2); it is also how the rows the network was trained with were fitted."""

    budget_s: float = 10.0
    max_steps: int = 300  # optimizer steps
    supervision_steps: int | None = None  # per run of an example; default the model's maximum
    optimizer: Optimizer = "sign_sgd"
    lr: float = 1e-2
    weight_decay: float = 0.1
    seed: int = 0
    stop_when_exact: bool = True
    micro_batch: int = 32  # examples per forward/backward; their gradients add up to one step

    def __post_init__(self) -> None:
        if self.budget_s <= 0 or self.max_steps < 1 or self.lr <= 0 or self.micro_batch < 1:
            raise ValueError(f"adaptation needs budget_s > 0, max_steps >= 1, lr > 0 and "
                             f"micro_batch >= 1, got {self.budget_s}, {self.max_steps}, "
                             f"{self.lr}, {self.micro_batch}")
        if self.optimizer not in ("adam", "sign_sgd"):
            raise ValueError(f"optimizer must be adam or sign_sgd, got {self.optimizer!r}")


@dataclass
class FitReport:
    steps: int  # optimizer steps taken
    seconds: float
    demo_exact: float  # fraction of examples whose last finished run was exactly right
    loss: float | None  # mean per-example loss of the last step; None before the first
    examples: int
    versions: int
    stopped: str  # budget | steps | exact | cancelled
    optimizer: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AdaptedTask:
    symmetries: list[ArcSymmetry]  # version v's symmetry; version 0 is the identity
    rows: np.ndarray  # (versions, puzzle_emb_dim) float32
    report: FitReport


# ------------------------------------------------------------------------------- versions
def draw_symmetries(demos: Sequence[Pair], tests: Sequence[np.ndarray], count: int,
                    rng: np.random.Generator) -> list[ArcSymmetry]:
    """The identity and up to `count - 1` random symmetries that change the task (its pairs and
    test inputs), distinct from each other; fewer when the draw cap hits."""
    identity = ArcSymmetry(0, list(range(10)))
    symmetries, seen = [identity], {_task_key(identity, demos, tests)}
    for _ in range(DRAWS_PER_VERSION * count):
        if len(symmetries) >= count:
            break
        symmetry = ArcSymmetry.random(rng)
        key = _task_key(symmetry, demos, tests)
        if key not in seen:
            seen.add(key)
            symmetries.append(symmetry)
    return symmetries


def _task_key(symmetry: ArcSymmetry, demos: Sequence[Pair], tests: Sequence[np.ndarray]) -> bytes:
    pairs = [(symmetry.apply_grid(i).astype(np.uint8), symmetry.apply_grid(o).astype(np.uint8))
             for i, o in [*demos, *((t, t) for t in tests)]]
    return pairs_key(pairs)


def training_examples(demos: Sequence[Pair], symmetries: Sequence[ArcSymmetry],
                      rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inputs and labels (E, 900) and the version of each example (E,): every version's
    demonstrations, placed as the builder places training pairs (random offsets, one pair of
    each version at (0, 0))."""
    inputs, labels, owners = [], [], []
    for v, symmetry in enumerate(symmetries):
        pairs = [(symmetry.apply_grid(i).astype(np.uint8), symmetry.apply_grid(o).astype(np.uint8))
                 for i, o in demos]
        placed_in, placed_out = place_pairs(pairs, True, rng)
        inputs.append(placed_in)
        labels.append(placed_out)
        owners += [v] * len(pairs)
    return np.concatenate(inputs), np.concatenate(labels), np.array(owners, dtype=np.int64)


# ------------------------------------------------------------------------------ optimizers
class _Rows:
    """The rows being fitted, (versions, dim), and their optimizer."""

    def __init__(self, versions: int, dim: int, device: torch.device, config: AdaptConfig
                 ) -> None:
        self.table = torch.zeros(versions, dim, device=device)  # the reference's zero init
        self.sign_sgd: SignSGD | None = None
        self.adam: torch.optim.Optimizer | None = None
        if config.optimizer == "sign_sgd":
            self.sign_sgd = SignSGD(self.table, config.lr, config.weight_decay)
        else:
            self.table.requires_grad_(True)
            self.adam = torch.optim.AdamW([self.table], lr=config.lr,
                                          weight_decay=config.weight_decay)

    def lookup(self, owners: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(leaf to differentiate, per-example vectors (B, dim))."""
        if self.sign_sgd is not None:
            leaf = self.sign_sgd.lookup(owners)
            return leaf, leaf
        return self.table, self.table[owners]

    def gradient(self, owners: torch.Tensor, leaf: torch.Tensor,
                 loss: torch.Tensor) -> torch.Tensor:
        """The gradient of `loss` with respect to the table, (versions, dim)."""
        (grad,) = torch.autograd.grad(loss, [leaf])
        if self.sign_sgd is None:
            return grad  # the leaf is the table
        table_grad = torch.zeros_like(self.table)
        return table_grad.index_add_(0, owners, grad.to(table_grad.dtype))

    def update(self, grad: torch.Tensor) -> None:
        """One optimizer step with the gradient of a whole pass, (versions, dim)."""
        if self.sign_sgd is not None:
            every = torch.arange(len(self.table), device=self.table.device)
            rows = self.sign_sgd.lookup(every)
            rows.grad = grad
            self.sign_sgd.step(every, rows)
        else:
            assert self.adam is not None
            self.table.grad = grad
            self.adam.step()
            self.adam.zero_grad(set_to_none=True)

    def numpy(self) -> np.ndarray:
        return self.table.detach().float().cpu().numpy()


# ------------------------------------------------------------------------------------- fit
@dataclass
class _Examples:
    """The fit's batch on the model's device and each example's running state."""

    inputs: torch.Tensor  # (E, 900) int64
    labels: torch.Tensor  # (E, 900) int64
    owners: torch.Tensor  # (E,) version index
    steps: torch.Tensor  # (E,) supervision steps of the current run
    last_exact: torch.Tensor  # (E,) bool: the last finished run was exactly right
    finished: torch.Tensor  # (E,) bool: at least one run finished


class _Cut(Exception):
    """A step cut short before one of its micro-batches: the budget ran out or a stop was
    asked for (`reason`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fit_rows(model: TRM, demos: Sequence[Pair], tests: Sequence[np.ndarray], versions: int,
             config: AdaptConfig, *, autocast_dtype: torch.dtype | None = None,
             on_progress: Callable[[dict[str, Any]], None] | None = None,
             should_stop: Callable[[], bool] | None = None,
             clock: Callable[[], float] = time.perf_counter) -> AdaptedTask:
    """Fit `versions` rows for the task of `demos` (grid pairs) and `tests` (input grids).
    The time budget is read on `clock` (tests pass one that steps on its own); it and
    `should_stop` are checked before every micro-batch, so a fit overruns either by at most
    one micro-batch."""
    if model.puzzle_embedding is None:
        raise ValueError("test-time adaptation needs a model with a puzzle embedding")
    if not demos:
        raise ValueError("test-time adaptation needs at least one demonstration pair")
    started = clock()
    symmetries = draw_symmetries(demos, tests, versions, np.random.default_rng(config.seed))
    device = next(model.parameters()).device
    batch = _batch(*training_examples(demos, symmetries, np.random.RandomState(config.seed)),
                   device)
    rows = _Rows(len(symmetries), model.config.puzzle_emb_dim, device, config)
    run_steps = config.supervision_steps or model.config.max_supervision_steps
    state = model.initial_state(len(batch.owners), device, next(model.parameters()).dtype)

    def interrupted() -> str:
        return _interruption(config, clock() - started, should_stop)

    step, loss_value, stopped = 0, 0.0, ""
    try:
        while step < config.max_steps and not stopped:
            loss_value = _train_step(model, rows, batch, state, run_steps, autocast_dtype,
                                     config.micro_batch, interrupted)
            step += 1
            stopped = _exact(config, batch) or interrupted()
            if on_progress is not None and (stopped or step % 10 == 0
                                            or step == config.max_steps):
                on_progress({"step": step, "max_steps": config.max_steps,
                             "loss": round(loss_value, 4), "demo_exact": _demo_exact(batch),
                             "elapsed_s": round(clock() - started, 3)})
    except _Cut as cut:
        stopped = cut.reason
    report = FitReport(step, round(clock() - started, 3), _demo_exact(batch),
                       round(loss_value, 4) if step else None, len(batch.owners),
                       len(symmetries), stopped or "steps", config.optimizer)
    return AdaptedTask(symmetries, rows.numpy(), report)


def _batch(inputs: np.ndarray, labels: np.ndarray, owners: np.ndarray,
           device: torch.device) -> _Examples:
    count = len(owners)
    flags = torch.zeros(count, dtype=torch.bool, device=device)
    return _Examples(torch.from_numpy(inputs.astype(np.int64)).to(device),
                     torch.from_numpy(labels.astype(np.int64)).to(device),
                     torch.from_numpy(owners).to(device),
                     torch.zeros(count, dtype=torch.long, device=device), flags, flags.clone())


def _train_step(model: TRM, rows: _Rows, batch: _Examples, state: State, run_steps: int,
                autocast_dtype: torch.dtype | None, micro_batch: int,
                interrupted: Callable[[], str]) -> float:
    """One supervision step over every example, `micro_batch` examples at a time, then one
    update of the rows with the summed gradient; advances the carry `state` in place and
    restarts the examples whose run ended. Returns the mean per-example loss; raises `_Cut`
    when `interrupted` gives a reason before a micro-batch (nothing is updated then)."""
    count = len(batch.owners)
    grad = torch.zeros_like(rows.table)  # (versions, dim)
    total = torch.zeros((), device=batch.inputs.device)
    ended, exact = [], []
    for start in range(0, count, micro_batch):
        reason = interrupted()
        if reason:
            raise _Cut(reason)
        part = slice(start, start + micro_batch)
        part_grad, loss, out = _micro_step(model, rows, batch, state, part, count,
                                           autocast_dtype)
        grad += part_grad
        total += loss.total.detach()
        part_ended = (batch.steps[part] + 1 >= run_steps) | (out.halt_logits.detach() > 0)
        restarted = model.reset_rows(out.state, part_ended)
        state.y[part], state.z[part] = restarted.y, restarted.z  # (B, L, D) each
        ended.append(part_ended)
        exact.append(loss.exact)
    rows.update(grad)
    _record_runs(batch, torch.cat(ended), torch.cat(exact))
    return float(total) / count


def _micro_step(model: TRM, rows: _Rows, batch: _Examples, state: State, part: slice,
                count: int, autocast_dtype: torch.dtype | None
                ) -> tuple[torch.Tensor, StepLoss, StepOutput]:
    """One supervision step of the examples in `part`: the rows' gradient of their share of
    the mean loss over all `count` examples, (versions, dim), the loss and the step's output
    (its carry detached)."""
    device = batch.inputs.device
    with torch.enable_grad(), _autocast(device, autocast_dtype):
        owners = batch.owners[part]
        leaf, vectors = rows.lookup(owners)
        x = model.embed(batch.inputs[part], puzzle_vectors=vectors)  # (B, L, D)
        out = model.step(State(state.y[part], state.z[part]), x)
        loss = step_loss(out.logits, out.halt_logits, batch.labels[part])
        grad = rows.gradient(owners, leaf, loss.total / count)
    return grad, loss, out


def _record_runs(batch: _Examples, ended: torch.Tensor, exact: torch.Tensor) -> None:
    """Count the step into every example's run; runs that `ended` (E,) note whether they
    were `exact` (E,) and start again."""
    batch.steps += 1
    batch.last_exact = torch.where(ended, exact, batch.last_exact)
    batch.finished |= ended
    batch.steps = torch.where(ended, 0, batch.steps)


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def _demo_exact(batch: _Examples) -> float:
    return round(float(batch.last_exact.float().mean()), 4)


def _exact(config: AdaptConfig, batch: _Examples) -> str:
    """"exact" when every example's last finished run was exactly right (and that stops)."""
    if config.stop_when_exact and bool(batch.finished.all()) and bool(batch.last_exact.all()):
        return "exact"
    return ""


def _interruption(config: AdaptConfig, elapsed_s: float,
                  should_stop: Callable[[], bool] | None) -> str:
    """Why to stop now, or "" to go on: asked to ("cancelled") or out of time ("budget")."""
    if should_stop is not None and should_stop():
        return "cancelled"
    if elapsed_s >= config.budget_s:
        return "budget"
    return ""
