"""Adding a task is one package and one registration: the toy Latin-square task in
`tests/tasks/latin/`, registered at runtime, is listed, parsed, generated, trained, evaluated
and solved by the generic CLI, engine and example service code without an edit to any of them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from app.agents import tool_description
from app.examples import example_tasks, examples, generate
from app.task_apis import openai_tools
from tests.tasks.latin import LatinTask
from training.cli import main
from training.datasets import generating_tasks
from trm_core.checkpoint import load_checkpoint
from trm_core.config import ModelConfig
from trm_core.engine import Engine
from trm_core.model import TRM
from trm_core.solve import solve
from trm_core.tasks import TASKS, get_task, register, unregister
from trm_core.tasks.base import PuzzleError

TINY = ["model.seq_len=9", "model.vocab_size=5", "model.hidden_size=32", "model.num_heads=4",
        "model.recursions=1", "model.latent_updates=1", "model.max_supervision_steps=2",
        "model.swiglu_multiple=32", "train.task=latin", "train.batch_size=8",
        "train.total_steps=2", "train.eval_every=2", "train.eval_batch_size=8",
        "train.warmup_steps=1"]


@pytest.fixture
def latin() -> Iterator[LatinTask]:
    task = register(LatinTask())
    yield task
    unregister(task.name)


def test_a_registered_task_is_listed_everywhere(latin: LatinTask) -> None:
    assert TASKS["latin"] is latin and get_task("latin") is latin
    assert "latin" in generating_tasks() and "latin" in example_tasks()
    assert examples("latin")[0]["solution"] == "123231312"
    assert "9 characters row by row" in tool_description("latin")
    assert openai_tools(["latin"])[0]["name"] == "solve_latin"
    fresh = generate("latin", "easy", 3)
    assert latin.verify(latin.parse(fresh["puzzle"]), latin.parse(fresh["solution"]))


def test_a_registered_name_is_held(latin: LatinTask) -> None:
    with pytest.raises(ValueError, match="'latin' is already registered"):
        register(LatinTask())
    unregister("latin")
    assert "latin" not in TASKS


def test_puzzles_parse_and_answers_verify(latin: LatinTask) -> None:
    puzzle = latin.parse("123231...")
    assert latin.verify(puzzle, latin.parse("123231312"))
    assert not latin.verify(puzzle, latin.parse("123231321"))
    with pytest.raises(PuzzleError):
        latin.parse("1234")


def test_a_tiny_random_model_solves_through_the_engine(latin: LatinTask) -> None:
    torch.manual_seed(0)
    model = TRM(ModelConfig(seq_len=9, vocab_size=5, hidden_size=32, num_heads=4,
                            recursions=1, latent_updates=1, max_supervision_steps=3)).eval()
    puzzle = latin.parse("123231...")
    result = Engine(model, latin, slots=2).solve(puzzle, max_steps=3, halting="never",
                                                 attempts=2)
    assert result.status in ("solved", "unsolved") and result.steps_used == 3
    assert result.answer is not None and (result.answer[:6] == puzzle[:6]).all()
    steps = list(solve(model, latin, puzzle[None], 3))
    assert len(steps) == 3 and steps[-1].answers.shape == (1, 9)


def test_the_cli_builds_data_trains_and_evaluates(latin: LatinTask, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    assert main(["data", "latin", "--out", str(data), "--train", "6", "--val", "2", "--test",
                 "2", "--workers", "1"]) == 0
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["splits"] == {"test": 2, "val": 2, "train": 6}
    sets = [f"train.train_data={data / 'train.csv'}", f"train.eval_data={data / 'val.csv'}",
            f"train.out_dir={tmp_path / 'run'}", "train.name=trm-latin-test"]
    shipped = tmp_path / "shipped" / "latin"
    args = [arg for override in TINY + sets for arg in ("--set", override)]
    assert main(["train", *args, "--ship", str(shipped)]) == 0
    assert load_checkpoint(shipped).task == "latin"
    assert main(["eval", str(shipped), "--data", str(data / "test.csv"), "--json",
                 str(tmp_path / "report.json")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["overall"]["puzzles"] == 2
    assert np.isfinite(report["overall"]["cell_accuracy"])
