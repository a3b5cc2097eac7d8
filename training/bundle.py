"""A portable bundle of a checkpoint: one folder that solves its puzzles without torch or this
package, answer for answer as the service does at fp32 with one attempt and no search.

    step.onnx      one supervision step, (y, z, tokens) -> (y_next, z_next, logits, halt_logits,
                   continue_logits), fp32, batch dynamic (training/export.py, `from_tokens`)
    manifest.json  task, tokenisation, shapes, initial carry, recursion settings, readout,
                   halting rule, versions, and each file's size and sha256
    solve.py       the reference loop, numpy and onnxruntime only (training/bundle_solve.py)

    trm export checkpoints/sudoku/trm-sudoku-tiny --bundle bundle/
    python bundle/solve.py PUZZLE      # Sudoku: 81 characters, '.' for a blank

The manifest writes down, as data, what the engine's single pass does around the network
(`trm_core.engine_slots.JobRecord.record`): embed, step, read the answer, keep the givens, verify,
decide to halt. The service offers the same bundle at `/v1/models/{id}/bundle` (app/bundles.py)
and the viewer runs it in the browser (app/static/bundle-runner.js). Needs the `onnx` extra.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

import trm_core
from trm_core.checkpoint import Checkpoint
from trm_core.config import ModelConfig
from trm_core.model import count_parameters
from trm_core.tasks import TASKS, task_of_card
from trm_core.tasks.base import Task

FORMAT = "trm-bundle/1"
STEP_FILE, MANIFEST_FILE, SOLVER_FILE = "step.onnx", "manifest.json", "solve.py"
SOLVER_SOURCE = Path(__file__).with_name("bundle_solve.py")
FILES = (MANIFEST_FILE, STEP_FILE, SOLVER_FILE)


class NotBundleable(ValueError):
    """The checkpoint's task cannot be written down as a bundle; the message says why."""


def task_rules(task: Task) -> dict[str, Any]:
    """The task's portable rules; NotBundleable naming the task when it has none."""
    rules = task.portable_rules()
    if rules is None:
        carried = sorted(name for name, known in TASKS.items()
                         if known.portable_rules() is not None)
        raise NotBundleable(f"task {task.name!r} has no portable rules (its parsing and rules "
                            f"are not written down as data a bundle can carry); bundles exist "
                            f"for {', '.join(carried)}")
    return rules


def write_bundle(checkpoint: Checkpoint, folder: Path) -> dict[str, Any]:
    """Write the bundle of `checkpoint` into `folder` (created); returns the manifest. The
    checkpoint's model is cast to fp32 in place."""
    from training.export import export_step  # needs the [onnx] extra

    task = task_of_card(checkpoint.card)
    rules = task_rules(task)
    folder.mkdir(parents=True, exist_ok=True)
    export_step(checkpoint.model, folder / STEP_FILE, from_tokens=True)
    shutil.copyfile(SOLVER_SOURCE, folder / SOLVER_FILE)
    manifest = build_manifest(checkpoint, task, rules, folder)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def build_manifest(checkpoint: Checkpoint, task: Task, rules: dict[str, Any],
                   folder: Path) -> dict[str, Any]:
    """The manifest of a bundle whose step graph and solver are already in `folder`."""
    config, model = checkpoint.config, checkpoint.model
    return {
        "format": FORMAT,
        "model": {"id": checkpoint.id, "name": checkpoint.name, "version": checkpoint.version,
                  "checkpoint_sha256": checkpoint.sha256,
                  "parameters": count_parameters(model),
                  "config": dataclasses.asdict(config)},
        "task": {"name": task.name, "seq_len": task.seq_len, "grid_shape": list(task.grid_shape),
                 "vocab_size": task.vocab_size, **rules},
        "tokens": tokenisation(task),
        "graph": _graph(config),
        # y and z start as these (hidden_size,) vectors at every one of the carry's positions.
        "initial_carry": {"y": model.y_init.float().tolist(), "z": model.z_init.float().tolist()},
        "recursion": {"recursions": config.recursions, "latent_updates": config.latent_updates,
                      "max_supervision_steps": config.max_supervision_steps,
                      "note": "one run of the graph is one supervision step: `recursions` "
                              "recursions of `latent_updates` latent updates and one answer "
                              "update; the loop carries y and z from one run to the next"},
        "readout": READOUT,
        "halting": halting_rule(task, config),
        "files": {name: _describe(folder / name) for name in (STEP_FILE, SOLVER_FILE)},
        "created_by": {"trm_serve": trm_core.__version__, "torch": torch.__version__},
    }


def tokenisation(task: Task) -> dict[str, list[int]]:
    """Lookup tables both ways: token_of_cell[cell value] and cell_of_token[token] (a token
    with no cell meaning reads as 0)."""
    cell_of_token = task.from_tokens(np.arange(task.vocab_size)).astype(int).tolist()
    token_of_cell = task.to_tokens(np.arange(max(cell_of_token) + 1)).astype(int).tolist()
    return {"token_of_cell": token_of_cell, "cell_of_token": cell_of_token}


def _graph(config: ModelConfig) -> dict[str, Any]:
    carry = ["batch", config.total_len, config.hidden_size]
    return {
        "file": STEP_FILE, "precision": "float32",
        "inputs": {"y": {"shape": carry, "dtype": "float32"},
                   "z": {"shape": carry, "dtype": "float32"},
                   "tokens": {"shape": ["batch", config.seq_len], "dtype": "int64"}},
        "outputs": {"y_next": {"shape": carry, "dtype": "float32"},
                    "z_next": {"shape": carry, "dtype": "float32"},
                    "logits": {"shape": ["batch", config.seq_len, config.vocab_size],
                               "dtype": "float32"},
                    "halt_logits": {"shape": ["batch"], "dtype": "float32"},
                    "continue_logits": {"shape": ["batch"], "dtype": "float32"}},
    }


READOUT = {
    "answer": "argmax of logits over the vocabulary (the first on ties), mapped through "
              "tokens.cell_of_token, then the puzzle's givens kept (task.keep_givens)",
    "cell_confidence": "the top softmax probability of each cell's logits",
    "confidence": "mean cell_confidence over the puzzle's blank cells (every cell when it has "
                  "none)",
    "q_halt": "sigmoid(halt_logits)",
    "changed_cells": "positions whose answer differs from the previous step's (step 1: from the "
                     "puzzle)",
    "valid": "the answer verifies by task.verify",
}


def halting_rule(task: Task, config: ModelConfig) -> dict[str, Any]:
    """The engine's stopping rule (`JobRecord._should_stop`) as data."""
    checked = task.can_verify
    return {
        "modes": ["auto", "never"], "default": "auto",
        "max_steps": config.max_supervision_steps,
        "auto": {"needs_verified": checked, "halt_logit_above": 0.0, "or_unchanged": checked},
        "rule": "stop after step s when s = max_steps; with auto also when "
                + ("the answer verifies and either its halt logit is above 0 or it equals the "
                   "answer of step s - 1 (never at step 1)" if checked
                   else "the halt logit is above 0"),
    }


def _describe(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
