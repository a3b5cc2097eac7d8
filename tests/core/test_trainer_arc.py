"""ARC training on a tiny build of the committed data slice: the group-by-group sampler, the
identifier count check, sign-SGD on the puzzle rows, checkpoints with their identifier table,
resume with the table, and `trm train` on a build folder."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from training.cli import main
from trm_core.checkpoint import load_checkpoint
from trm_core.tasks import get_task
from trm_core.tasks.arc.build import build_arc
from trm_core.tasks.arc.identifiers import load_identifiers, sidecar_path
from trm_core.tasks.arc.train_data import (
    ArcSampler,
    ArcSplit,
    eval_rows,
    fit_run_to_build,
    open_split,
)
from trm_core.train_config import load_run
from trm_core.trainer import Trainer

SOURCE = Path(__file__).resolve().parents[1] / "data" / "arc"
SLICE = {"training": 3, "evaluation": 2, "concept": 0}  # 5 tasks, 2 of them held out
IDENTIFIERS = 1 + 5 * 3  # blank, then the original and 2 versions of each task
MODEL = ["model.seq_len=900", "model.vocab_size=12", "model.hidden_size=16",
         "model.num_heads=2", "model.expansion=2", "model.num_layers=1",
         "model.token_mixer=attention", "model.position_encoding=rope", "model.recursions=1",
         "model.latent_updates=1", "model.max_supervision_steps=2", "model.swiglu_multiple=16",
         "model.puzzle_emb_len=1", "model.puzzle_emb_dim=16"]
TRAIN = ["train.task=arc", "train.batch_size=4", "train.lr=1e-2", "train.puzzle_emb_lr=1e-2",
         "train.puzzle_emb_weight_decay=0.1", "train.warmup_steps=1", "train.total_steps=6",
         "train.eval_every=3", "train.eval_puzzles=4", "train.eval_batch_size=4",
         "train.ema_rate=0.9", "train.threads=1", "train.name=trm-arc-test"]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("arc-build")
    build_arc(SOURCE, out, "arc1", augmentations=2, limit=SLICE)
    return out


def arc_trainer(build: Path, out_dir: Path, *overrides: str) -> Trainer:
    run = load_run(None, [*MODEL, *TRAIN, f"train.train_data={build}",
                          f"train.eval_data={build}", f"train.out_dir={out_dir}", *overrides])
    train_set = open_split(build, "train")
    return Trainer(fit_run_to_build(run, train_set), get_task("arc"), train_set,
                   open_split(build, "test"))


def _puzzle_of(data: ArcSplit, row: int) -> int:
    return int(np.searchsorted(data.puzzle_indices, row, side="right")) - 1


def _group_of(data: ArcSplit, puzzle: int) -> int:
    return int(np.searchsorted(data.group_indices, puzzle, side="right")) - 1


def test_an_epoch_visits_every_task_once_with_one_version(build: Path) -> None:
    data = open_split(build, "train")
    assert data.num_groups == 5 and data.num_identifiers == IDENTIFIERS
    sampler = ArcSampler(data, seed=0)
    groups = []
    for _ in range(5):
        rows = sampler._visit_next_group()
        puzzle = _puzzle_of(data, int(rows[0]))
        span = range(data.puzzle_indices[puzzle], data.puzzle_indices[puzzle + 1])
        assert sorted(rows.tolist()) == list(span)  # all the version's examples
        groups.append(_group_of(data, puzzle))
    assert sorted(groups) == list(range(5)) and sampler.epochs == 0
    sampler._visit_next_group()
    assert sampler.epochs == 1
    inputs, labels, ids = ArcSampler(data, seed=1).draw(7)
    assert inputs.shape == labels.shape == (7, 900) and inputs.dtype == np.int64
    assert ids.dtype == np.int64 and set(ids.tolist()) <= set(range(1, IDENTIFIERS))
    assert inputs.max() <= 11 and (labels == 1).any()  # colours + 2, end-of-grid markers


def test_draws_continue_a_puzzle_across_calls(build: Path) -> None:
    data = open_split(build, "train")
    a, b = ArcSampler(data, seed=3), ArcSampler(data, seed=3)
    whole = a.draw(9)
    parts = [b.draw(1) for _ in range(9)]
    for k in range(3):
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts]))


def test_eval_rows_cover_tasks_before_versions(build: Path) -> None:
    test = open_split(build, "test")
    rows = eval_rows(test, 0)
    assert sorted(rows.tolist()) == list(range(len(test)))
    puzzles = list(dict.fromkeys(_puzzle_of(test, r) for r in rows.tolist()))
    firsts = test.group_indices[:-1]  # two groups of three versions
    assert puzzles == [int(f) + k for k in range(3) for f in firsts]
    assert len(eval_rows(test, 2)) == 2


def test_identifier_count_is_filled_in_or_checked(build: Path, tmp_path: Path) -> None:
    data = open_split(build, "train")
    run = load_run(None, MODEL)
    assert fit_run_to_build(run, data).model.num_puzzle_ids == IDENTIFIERS
    wrong = load_run(None, [*MODEL, "model.num_puzzle_ids=7"])
    with pytest.raises(ValueError, match=f"num_puzzle_ids is 7 .* has {IDENTIFIERS} ident"):
        fit_run_to_build(wrong, data)
    with pytest.raises(ValueError, match=f"num_puzzle_ids is 7 .* has {IDENTIFIERS} ident"):
        Trainer(load_run(None, [*MODEL, *TRAIN, "model.num_puzzle_ids=7",
                                f"train.out_dir={tmp_path}"]), get_task("arc"), data, None)


def test_training_moves_the_used_rows_and_saves_the_identifier_table(build: Path,
                                                                     tmp_path: Path) -> None:
    trainer = arc_trainer(build, tmp_path)
    table = trainer.model.puzzle_embedding
    assert table is not None and table.num_embeddings == IDENTIFIERS
    used: set[int] = set()
    for _ in range(4):
        trainer.train_step()
        used |= set(trainer.carry.puzzle_ids.tolist())  # the rows this step trained
    moved = {r for r in range(IDENTIFIERS) if table.weight[r].abs().sum() > 0}
    assert moved and moved <= used and 0 not in moved
    report = trainer.evaluate()
    assert report["overall"]["puzzles"] == 4 and 0 <= report["overall"]["exact_accuracy"] <= 1
    stem = trainer.save_checkpoint(tmp_path / "best", report)
    loaded = load_checkpoint(stem)
    assert loaded.task == "arc" and loaded.config.num_puzzle_ids == IDENTIFIERS
    assert loaded.model.puzzle_embedding is not None
    torch.testing.assert_close(loaded.model.puzzle_embedding.weight, table.weight)
    identifiers = load_identifiers(sidecar_path(stem))
    assert identifiers.versions == load_identifiers(build / "identifiers.json").versions
    assert len(identifiers) == IDENTIFIERS


@pytest.mark.parametrize("dtype, tolerance", [("float32", 0.0), ("bfloat16", 2e-2)])
def test_resume_round_trip_keeps_the_table(build: Path, tmp_path: Path, dtype: str,
                                           tolerance: float) -> None:
    # A 0.5-1 KiB table over 200-byte shards: it must be cut into row blocks and rejoined.
    settings = (f"train.resume_state_dtype={dtype}", "train.resume_shard_mb=0.0002")
    first = arc_trainer(build, tmp_path, *settings)
    for _ in range(3):
        first.train_step()
    first.save_resume()
    shards = sorted(tmp_path.glob("resume-*.safetensors"))
    blocks = [k for p in shards for k in _keys(p) if k.startswith("model.puzzle_embedding")]
    assert len(blocks) > 1 and all("#" in k for k in blocks)
    assert not [k for p in shards for k in _keys(p) if k.startswith("ema.puzzle_embedding")]
    second = arc_trainer(build, tmp_path, *settings)
    assert second.try_resume() and second.step == 3
    assert first.model.puzzle_embedding is not None
    assert second.model.puzzle_embedding is not None and second.ema is not None
    torch.testing.assert_close(second.model.puzzle_embedding.weight,
                               first.model.puzzle_embedding.weight, rtol=tolerance, atol=1e-6)
    assert second.ema.model.puzzle_embedding.weight is second.model.puzzle_embedding.weight
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        if a.requires_grad:
            torch.testing.assert_close(a, b)
    second.train_step()
    assert second.step == 4


def _keys(path: Path) -> list[str]:
    header = path.read_bytes()
    size = int.from_bytes(header[:8], "little")
    return [k for k in json.loads(header[8:8 + size]) if k != "__metadata__"]


def test_trm_train_on_a_build_folder(build: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    sets = [*MODEL, *TRAIN, f"train.train_data={build}", f"train.eval_data={build}",
            f"train.out_dir={tmp_path / 'run'}", "train.total_steps=3"]
    args = ["train", *[a for s in sets for a in ("--set", s)]]
    assert main([*args, "--ship", str(tmp_path / "shipped" / "arc")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 3 and len(summary["curve"]) == 1
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["model"]["num_puzzle_ids"] == IDENTIFIERS  # filled in from the build
    shipped = load_checkpoint(tmp_path / "shipped" / "arc")
    assert shipped.card["data"]["train"]["identifiers"] == IDENTIFIERS
    assert len(load_identifiers(sidecar_path(tmp_path / "shipped" / "arc"))) == IDENTIFIERS
