"""A data-defined task whose spec declares a rules check (4x4 mini Sudoku: rows, columns and
2x2 boxes each hold 1-4 once, givens kept), served over real HTTP from its checkpoint card:
answers verify or come back unverified with the cells that break a rule, and the verified
search runs. The model is seeded and untrained; tests check the contract, not answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch
from in_thread import RunningServer, serve_in_thread

from app.settings import Settings
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.tasks import TASKS, unregister
from trm_core.tasks.defined import DataTask, spec_from_dict

SPEC = {"name": "mini", "alphabet": [".", "1", "2", "3", "4"], "keep": ["1", "2", "3", "4"],
        "symmetries": ["dihedral"], "input": {"kind": "grid", "shape": [4, 4]},
        "output": {"kind": "grid", "shape": [4, 4]},
        "check": {"units": ["rows", "columns", "boxes"], "box": [2, 2],
                  "values": ["1", "2", "3", "4"]}}
PUZZLE = "1...\n...2\n....\n...1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root: Path = tmp_path_factory.mktemp("checkpoints")
    task = DataTask(spec_from_dict(SPEC))
    torch.manual_seed(0)
    model = TRM(ModelConfig(seq_len=task.seq_len, vocab_size=task.vocab_size, hidden_size=16,
                            num_heads=2, recursions=1, latent_updates=1,
                            max_supervision_steps=2, swiglu_multiple=16))
    save_checkpoint(root / "mini" / "tiny", model,
                    {"name": "trm-mini", "task": "mini", **task.card_fields()})
    assert "mini" not in TASKS
    try:
        with serve_in_thread(Settings(checkpoint_dir=root, device="cpu")) as running:
            yield running
    finally:
        unregister("mini")


def test_answers_are_checked_and_broken_cells_named(server: RunningServer) -> None:
    reply = httpx.post(server.base_url + "/v1/solve/mini", json={"puzzle": PUZZLE}, timeout=30)
    body = reply.json()
    assert reply.status_code == 200, body
    assert body["status"] == "unsolved" and body["unverified"] is True  # an untrained model
    assert body["conflicts"] and all(0 <= r < 4 and 0 <= c < 4 for r, c in body["conflicts"])
    assert [0, 0] not in body["conflicts"]  # a kept given breaks no rule
    kept = body["answer"]
    assert kept[0] == "1" and kept[7] == "2" and kept[15] == "1"  # givens kept


def test_the_verified_search_runs(server: RunningServer) -> None:
    reply = httpx.post(server.base_url + "/v1/solve/mini",
                       json={"puzzle": PUZZLE, "budget_steps": 8, "seed": 1}, timeout=30)
    body = reply.json()
    assert reply.status_code == 200, body
    assert body["search"]["budget_steps"] == 8 and body["search"]["steps_used"] == 8
    assert [r["attempts"] for r in body["search"]["rounds"]] == [1, 3]


def test_the_tool_says_answers_are_checked(server: RunningServer) -> None:
    text = str(httpx.get(server.base_url + "/v1/tools").json())
    assert "Answers are checked: every rows and columns and boxes holds each of '1', '2'" in text
