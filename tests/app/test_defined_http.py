"""A task defined by data served from its checkpoint card alone (nothing registered it in this
process): the service names it among the tasks it serves, lists its held-out examples and
answers it, unverified. The model is seeded and untrained; tests check routes, not answers."""

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

SPEC = {"name": "flip", "description": "Swap the two symbols", "alphabet": ["a", "b"],
        "input": {"kind": "grid", "shape": [2, 3]}, "output": {"kind": "grid", "shape": [2, 3]},
        "examples": [{"name": "line 1", "puzzle": "aabbab", "solution": "bbaaba"}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root: Path = tmp_path_factory.mktemp("checkpoints")
    task = DataTask(spec_from_dict(SPEC))
    torch.manual_seed(0)
    model = TRM(ModelConfig(seq_len=task.seq_len, vocab_size=task.vocab_size, hidden_size=16,
                            num_heads=2, recursions=1, latent_updates=1,
                            max_supervision_steps=2, swiglu_multiple=16))
    save_checkpoint(root / "flip" / "tiny", model,
                    {"name": "trm-flip", "task": "flip", **task.card_fields()})
    assert "flip" not in TASKS
    with serve_in_thread(Settings(checkpoint_dir=root, device="cpu")) as running:
        yield running
    unregister("flip")


def test_a_task_known_from_its_card_alone_is_served(server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url) as http:
        models = http.get("/v1/models").json()["data"]
        assert models[0]["task_spec"]["description"] == "Swap the two symbols"
        examples = http.get("/v1/examples/flip").json()["data"]
        assert examples == SPEC["examples"]
        result = http.post("/v1/solve/flip", json={"puzzle": "aab\nbab"}).json()
    assert result["status"] == "answered" and result["valid"] is False
    assert len(result["output"]) == 2 and all(len(row) == 3 for row in result["output"])
