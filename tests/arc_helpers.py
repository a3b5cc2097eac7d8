"""A tiny ARC checkpoint that knows one task, and ARC tasks from the committed test data: for
the ARC HTTP tests (tests/app) and the broker-mode ARC tests (tests/broker).

The attention model is untrained: tests check structure, counts and statuses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.tasks.arc.identifiers import (
    IdentifierMap,
    VersionRef,
    demos_digest,
    save_identifiers,
    sidecar_path,
)

DATA = Path(__file__).resolve().parent / "data" / "arc"
KNOWN_ID = "017c7c7b"  # 3 demonstrations, 1 test input
VERSIONS = [(0, "0123456789"), (1, "0213456789"), (4, "0987654321")]
MAX_STEPS = 2


def load_task(subset: str, task_id: str) -> dict[str, Any]:
    tasks = json.loads((DATA / f"arc-agi_{subset}_challenges.json").read_text())
    return {"train": tasks[task_id]["train"], "test": tasks[task_id]["test"]}


KNOWN = load_task("training", KNOWN_ID)
UNSEEN = load_task("evaluation", "00576224")  # 2 demonstrations of 2x2 -> 6x6, 1 test input
# 16 demonstration pairs in 16 versions: 256 examples, the most a fit may take by default; one
# fit step over them takes seconds with the tiny model.
BIG = {"train": UNSEEN["train"] * 8, "test": UNSEEN["test"], "versions": 16}


def save_tiny_arc_checkpoint(root: Path) -> Path:
    """A tiny ARC checkpoint below `root` whose sidecar names three versions of one known
    task; returns `root`."""
    torch.manual_seed(0)
    config = ModelConfig(seq_len=900, vocab_size=12, hidden_size=16, num_heads=1, num_layers=1,
                         token_mixer="attention", position_encoding="rope", recursions=1,
                         latent_updates=1, max_supervision_steps=MAX_STEPS, puzzle_emb_len=1,
                         puzzle_emb_dim=16, num_puzzle_ids=len(VERSIONS) + 1, swiglu_multiple=16)
    model = TRM(config)
    torch.nn.init.normal_(model.halt_head.weight, std=0.5)
    stem = save_checkpoint(root / "arc" / "tiny", model, {"name": "trm-arc-tiny", "task": "arc"})
    demos = [(p["input"], p["output"]) for p in KNOWN["train"]]
    refs = [VersionRef(KNOWN_ID, n, d, colours) for n, (d, colours) in enumerate(VERSIONS)]
    save_identifiers(sidecar_path(stem), IdentifierMap([None, *refs],
                                                       {KNOWN_ID: demos_digest(demos)}))
    return root
