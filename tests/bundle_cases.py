"""What the bundle equality tests share: the puzzles they check and the server's answer to one.

The server runs fp32 (`Settings(dtype="float32")`): a bundle is fp32, and a service running bf16
weights (the default on CPUs with native bf16) answers some steps differently. A request for the
single pass (`attempts: 1`, `budget_steps: 0`) is what a bundle computes.

Grids, changed cells, verification and halting must be equal at every step. Confidence and the
halting probability are compared to 1e-3: the server rounds them to 4 decimals, and fp32 kernels
of different runtimes round differently in the last bits; per-cell confidence, sent with 3
decimals, to 2e-3 (a value near a rounding boundary lands one step apart).

Every step is equal for the tiny model on every checked puzzle. The default model is deeper and
some puzzles are rounding-sensitive for it (training/conditioning.py): its own steps in float64
change when its weights move by one part in 2^20, so any two fp32 runtimes may part there, and
the server's fp32 run departs from float64 on them as often as the bundle's does. Its bundle is
checked on every puzzle that is not.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import httpx

from trm_core.data import load_puzzle_csv
from trm_core.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
PER_SET = 16
TOLERANCE = 1e-3
CELL_TOLERANCE = 2e-3
# In the viewer's page: each puzzle through BundleRunner directly, every step's event and
# the result (the browser tests and benchmarks/bundle_agreement.py).
RUN_HERE = """async ([puzzles, halting]) => {
  const runs = [];
  for (const text of puzzles) {
    const steps = [];
    let result = null;
    await BundleRunner.solve(BundleRunner.parse(text), { halting }, (name, data) => {
      if (name === "solve.step") steps.push(data);
      if (name === "solve.completed") result = data;
    }, () => false);
    runs.push({ steps, result });
  }
  return runs;
}"""


def checked_puzzles(per_set: int = PER_SET) -> list[str]:
    """The first `per_set` puzzles of each committed Sudoku test set: easy (the model's own
    range, most verify in 1-2 steps), medium (many take 5-16 steps) and hard (most never
    verify, so every step runs)."""
    task = get_task("sudoku")
    puzzles: list[str] = []
    for level in ("easy", "medium", "hard"):
        data = load_puzzle_csv(ROOT / "training" / "data" / f"sudoku-{level}-test.csv", task)
        puzzles += [task.format(cells) for cells in data.head(per_set).puzzles]
    return puzzles


def server_run(client: httpx.Client, puzzle: str, halting: str) -> dict[str, Any]:
    """The server's single-pass answer with every step (`trajectory`)."""
    response = client.post("/v1/solve/sudoku", json={
        "puzzle": puzzle, "halting": halting, "return_steps": True, "attempts": 1,
        "budget_steps": 0})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def final_answer(body: dict[str, Any]) -> str:
    """The grid a result ends on, verified (`solution`) or not (`answer`)."""
    return str(body.get("solution") or body["answer"])


def fp32_settings(stem: Path | None = None) -> Any:
    """The server a bundle is compared with: one shipped model alone (the tiny one unless
    `stem` names another), at fp32, single pass by default."""
    from shipped_models import TINY, alone

    from app.settings import Settings

    return Settings(checkpoint_dir=alone(stem or TINY), device="cpu", max_batch_size=4,
                    dtype="float32", search_budget_steps=0)


@functools.cache
def rounding_sensitive_puzzles(stem: Path, per_set: int, halting: str) -> frozenset[int]:
    """Indices into `checked_puzzles(per_set)` that are rounding-sensitive for the model."""
    from training.conditioning import rounding_sensitive
    from trm_core.checkpoint import load_checkpoint

    model = load_checkpoint(stem).model
    return frozenset(rounding_sensitive(model, get_task("sudoku"), checked_puzzles(per_set),
                                        halting, model.config.max_supervision_steps))
