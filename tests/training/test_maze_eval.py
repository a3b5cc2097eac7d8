"""Maze evaluation by path-length bucket with one command, for a checkpoint (`trm eval CKPT`) and
through a running service (`trm eval --url`), on a small generated file in the public Maze-Hard
layout (`source,question,answer,rating`, 900-character rows); CSV layouts and their errors.

The checkpoint is tiny, seeded and untrained: in fp32 it answers every cell "open", so exact
accuracy is 0 and cell accuracy (on the puzzle's open cells) is known in closed form. The
checkpoint and the service agree when both run the same precision (`--dtype` and `TRM_DTYPE`,
one policy in `trm_core/inference.py`), fp32 weights or bf16 ones.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.cli import main
from trm_core import inference
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.data import load_puzzle_csv
from trm_core.model import TRM
from trm_core.tasks import get_task
from trm_core.tasks.maze import OPEN, PATH, path_bucket
from trm_core.tasks.maze_generate import generate

TASK = get_task("maze")
STEPS = 2


@pytest.fixture(scope="module")
def mazes() -> list[tuple[str, str, int, str]]:
    return generate(2, "easy", seed=11, workers=1) + generate(4, "hard", seed=11, workers=1)


@pytest.fixture(scope="module")
def official_file(tmp_path_factory: pytest.TempPathFactory,
                  mazes: list[tuple[str, str, int, str]]) -> Path:
    """The mazes as the public Maze-Hard CSV lays them out (no bucket column)."""
    path = tmp_path_factory.mktemp("data") / "maze-hard-test.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["source", "question", "answer", "rating"])
        writer.writerows([f"gen-{i}", q, a, steps] for i, (q, a, steps, _) in enumerate(mazes))
    return path


@pytest.fixture(scope="module")
def checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    config = ModelConfig(seq_len=900, vocab_size=6, hidden_size=32, num_heads=2, expansion=2.0,
                         token_mixer="attention", position_encoding="rope", recursions=1,
                         latent_updates=1, max_supervision_steps=STEPS, swiglu_multiple=32)
    save_checkpoint(root / "maze" / "tiny", TRM(config), {"name": "trm-maze-tiny",
                                                           "task": "maze"})
    return root


def _expected_buckets(mazes: list[tuple[str, str, int, str]]) -> dict[str, tuple[int, float]]:
    """Puzzles and cell accuracy per bucket for a model that answers every cell "open"."""
    groups: dict[str, list[float]] = {}
    for maze, solution, steps, _ in mazes:
        open_cells = maze.count(" ")
        groups.setdefault(path_bucket(TASK.parse_solution(solution)), []).append(
            (open_cells - (steps - 1)) / open_cells)
    return {name: (len(acc), round(float(np.mean(acc)), 4)) for name, acc in groups.items()}


def _report(tmp_path: Path, name: str, args: list[str]) -> dict:
    out = tmp_path / f"{name}.json"
    assert main(["eval", *args, "--json", str(out)]) == 0
    return dict(json.loads(out.read_text()))


def _skip_bf16_without_native_support(dtype: str) -> None:
    if dtype == "bfloat16" and not inference.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16/AMX): the service's policy never "
                    "picks bf16 weights here, and emulated bf16 is slow")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_checkpoint_and_service_agree_per_path_length_bucket(
        official_file: Path, checkpoint_dir: Path, mazes: list[tuple[str, str, int, str]],
        tmp_path: Path, capsys: pytest.CaptureFixture, dtype: str) -> None:
    from in_thread import serve_in_thread

    from app.settings import Settings

    _skip_bf16_without_native_support(dtype)
    args = ["--data", str(official_file), "--halting", "never", "--batch-size", "4"]
    local = _report(tmp_path, "local", [str(checkpoint_dir / "maze" / "tiny"), *args,
                                        "--dtype", dtype])
    settings = Settings(checkpoint_dir=checkpoint_dir, device="cpu", max_batch_size=4,
                        dtype=dtype)  # type: ignore[arg-type]
    with serve_in_thread(settings) as running:  # the task comes from the service's models
        remote = _report(tmp_path, "remote", ["--url", running.base_url, *args,
                                               "--concurrency", "4"])
    table = capsys.readouterr().out
    assert local["settings"]["precision"] == remote["settings"]["precision"] == dtype
    assert local["buckets"] == remote["buckets"] and local["overall"] == remote["overall"]
    expected = _expected_buckets(mazes)
    assert set(expected) >= {"1-110"} and len(expected) >= 2
    assert set(local["buckets"]) == set(expected)
    for name, (count, cell_accuracy) in expected.items():
        row = local["buckets"][name]
        assert row["puzzles"] == count
        assert row["exact_accuracy"] == 0.0 and row["mean_steps"] == STEPS
        if dtype == "float32":  # bf16 rounding moves a few near-tied cells off "open"
            assert row["cell_accuracy"] == cell_accuracy
    assert local["overall"]["puzzles"] == len(mazes)
    for report in (local, remote):
        assert report["settings"]["data"]["path"] == str(official_file)
    assert remote["settings"]["models"] == ["trm-maze-tiny@1"]
    assert all(name in table for name in expected)


def test_layouts_and_bucket_choice(tmp_path: Path, official_file: Path,
                                   mazes: list[tuple[str, str, int, str]]) -> None:
    official = load_puzzle_csv(official_file, TASK)
    assert official.puzzles.shape == (len(mazes), 900)
    assert not np.any(official.puzzles == PATH) and np.any(official.solutions == PATH)
    ours = tmp_path / "ours.csv"
    with ours.open("w", newline="") as handle:
        csv.writer(handle).writerows([["puzzle", "solution", "path_length", "bucket"],
                                      *[list(row) for row in mazes]])
    assert sorted(set(load_puzzle_csv(ours, TASK).buckets)) == ["easy", "hard"]
    derived = load_puzzle_csv(ours, TASK, bucket_by="derived")
    assert derived.buckets.tolist() == official.buckets.tolist()
    with pytest.raises(ValueError, match="no bucket column"):
        load_puzzle_csv(official_file, TASK, bucket_by="column")
    assert np.array_equal(TASK.scored_cells(official.puzzles), official.puzzles == OPEN)


def test_layout_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("maze,route\n#,#\n")
    with pytest.raises(ValueError, match="unrecognised header 'maze,route'; expected columns "
                                         "puzzle,solution"):
        load_puzzle_csv(odd, TASK)
    empty = tmp_path / "empty.csv"
    empty.write_text("question,answer\n")
    with pytest.raises(ValueError, match="no puzzles after the header"):
        load_puzzle_csv(empty, TASK)
    drawn = tmp_path / "drawn.csv"
    _, solution, _, _ = generate(1, "easy", seed=2, workers=1)[0]
    drawn.write_text(f"question,answer\n{solution},{solution}\n")
    with pytest.raises(ValueError, match=r"drawn.csv:2: path cells 'o' are already in the maze"):
        load_puzzle_csv(drawn, TASK)
    assert main(["eval", "--url", "http://127.0.0.1:9", "--task", "maze",
                 "--data", str(odd)]) == 2
    assert "unrecognised header" in capsys.readouterr().err


def test_sudoku_reads_the_official_layout_too(tmp_path: Path) -> None:
    sudoku = get_task("sudoku")
    path = tmp_path / "sudoku-extreme.csv"
    puzzle = "..3.2.6..9..3.5..1..18.64....81.29..7.......8..67.82....26.95..8..2.3..9..5.1.3.."
    solution = "483921657967345821251876493548132976729564138136798245372689514814253769695417382"
    path.write_text(f"source,question,answer,rating\nx,{puzzle},{solution},3\n")
    loaded = load_puzzle_csv(path, sudoku)
    assert loaded.buckets.tolist() == ["all"] and sudoku.verify(loaded.puzzles[0],
                                                                loaded.solutions[0])
