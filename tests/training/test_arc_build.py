"""The ARC-AGI dataset builder on a committed slice of the real data (`tests/data/arc`: a few
tasks of each file, three ARC-1 evaluation tasks among them that ARC-2's training set also
holds), on synthetic tasks, and, where the full data sits beside the repository, on all of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.cli import main
from trm_core.tasks.arc.build import Version, build_arc, draw_versions, load_subset
from trm_core.tasks.arc.grids import decode, locate
from trm_core.tasks.arc.identifiers import demos_digest, load_identifiers

SOURCE = Path(__file__).resolve().parents[1] / "data" / "arc"
FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "arc"
needs_full_data = pytest.mark.skipif(not FULL.exists(), reason="full ARC data not present")
SLICE = {"training": 5, "evaluation": 3, "concept": 0}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("arc")
    return out, build_arc(SOURCE, out, "arc1", augmentations=4, limit=SLICE)


def _split(out: Path, split: str) -> dict[str, np.ndarray]:
    names = ("inputs", "labels", "puzzle_ids", "puzzle_indices", "group_indices",
             "puzzle_identifiers")
    return {n: np.load(out / split / f"{n}.npy", mmap_mode="r") for n in names}


def _version(entry: list[Any]) -> Version:
    return Version(entry[2], np.array([int(c) for c in entry[3]], dtype=np.uint8))


def test_every_version_has_its_own_identifier(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifests = built
    identifiers = json.loads((out / "identifiers.json").read_text())["identifiers"]
    assert identifiers[0] is None
    keys = [(task, number) for task, number, _, _ in identifiers[1:]]
    assert len(keys) == len(set(keys)) == 8 * 5  # 8 tasks, original + 4 versions each
    maps = {(d, m) for task, _, d, m in identifiers[1:] if task == identifiers[1][0]}
    assert len(maps) == 5 and all(m[0] == "0" for _, m in maps)
    table = load_identifiers(out / "identifiers.json")
    tasks = {t.task_id: t for s in ("training", "evaluation") for t in load_subset(SOURCE, s)}
    assert table.task_digests == {k: demos_digest(tasks[k].demos) for k in table.rows_of()}
    train = _split(out, "train")
    assert train["puzzle_identifiers"].tolist() == list(range(1, 41))
    assert manifests["train"]["groups"] == 8 and manifests["test"]["groups"] == 3
    starts = train["puzzle_indices"]
    for p, identifier in enumerate(train["puzzle_identifiers"].tolist()):
        assert set(train["puzzle_ids"][starts[p] : starts[p + 1]].tolist()) == {identifier}
    assert train["inputs"].dtype == np.uint8 and train["inputs"].shape[1] == 900


def test_routing_and_placement(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    identifiers = json.loads((out / "identifiers.json").read_text())["identifiers"]
    tasks = {t.task_id: t for s in ("training", "evaluation")
             for t in load_subset(SOURCE, s)[: SLICE[s]]}
    train, test = _split(out, "train"), _split(out, "test")
    test_by_id = {int(i): k for k, i in enumerate(test["puzzle_identifiers"].tolist())}
    for p, identifier in enumerate(train["puzzle_identifiers"].tolist()):
        entry = identifiers[identifier]
        task, version = tasks[entry[0]], _version(entry)
        held_out = task.subset == "evaluation"
        expected = version.pairs(task.demos if held_out else task.demos + task.tests)
        rows = range(train["puzzle_indices"][p], train["puzzle_indices"][p + 1])
        offsets = []
        for k, row in zip(range(len(expected)), rows, strict=True):
            r, c, grid_in = locate(train["inputs"][row])
            assert locate(train["labels"][row])[:2] == (r, c)
            assert grid_in.tolist() == expected[k][0].tolist()
            assert locate(train["labels"][row])[2].tolist() == expected[k][1].tolist()
            offsets.append((r, c))
        assert (0, 0) in offsets  # one pair per version stays at the origin
        assert (identifier in test_by_id) == held_out
        if held_out:
            q = test_by_id[identifier]
            tests = version.pairs(task.tests)
            span = range(test["puzzle_indices"][q], test["puzzle_indices"][q + 1])
            for (grid_in, grid_out), row in zip(tests, span, strict=True):
                assert decode(test["inputs"][row]) == grid_in.tolist()
                assert decode(test["labels"][row]) == grid_out.tolist()


def test_evaluation_test_inputs_are_never_trained_on(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifests = built
    train = _split(out, "train")
    seen = {locate(row)[2].tobytes() + bytes(locate(row)[2].shape) for row in train["inputs"]}
    for task in load_subset(SOURCE, "evaluation")[:3]:
        for grid_in, _ in task.tests:
            key = grid_in.astype(np.int64).tobytes() + bytes(grid_in.shape)
            assert key not in seen
    assert manifests["test"]["examples"] == 5 * sum(
        len(t.tests) for t in load_subset(SOURCE, "evaluation")[:3])


def _write_source(folder: Path, tasks: dict[str, tuple[list[Any], list[Any]]]) -> Path:
    """A subset 'toy' (and an empty 'toytest') in the JSON layout."""
    challenges = {k: {"train": [{"input": i, "output": o} for i, o in demos],
                      "test": [{"input": i} for i, _ in tests]}
                  for k, (demos, tests) in tasks.items()}
    solutions = {k: [o for _, o in tests] for k, (_, tests) in tasks.items()}
    for subset, body, sol in (("toy", challenges, solutions), ("toytest", {}, {})):
        (folder / f"arc-agi_{subset}_challenges.json").write_text(json.dumps(body))
        (folder / f"arc-agi_{subset}_solutions.json").write_text(json.dumps(sol))
    return folder


def test_duplicates_are_rejected_and_draws_are_capped(tmp_path: Path) -> None:
    source = _write_source(tmp_path, {
        "black": ([([[0]], [[0]])], [([[0]], [[0]])]),  # every draw reproduces the original
        "one": ([([[1]], [[1]])], [([[1]], [[1]])]),  # only the colour matters: 9 versions
    })
    tasks = load_subset(source, "toy")
    rng = np.random.RandomState(42)
    assert len(draw_versions(tasks[0], 20, rng)) == 1
    assert len(draw_versions(tasks[1], 20, rng)) == 9
    manifests = build_arc(source, tmp_path / "out", subsets=("toy", "toytest"),
                          test_subset="toytest", augmentations=20)
    assert manifests["train"]["puzzles"] == 10 and manifests["train"]["examples"] == 20
    assert manifests["train"]["tasks_with_fewer_versions"] == 2


@pytest.mark.parametrize("source, overlap", [
    (SOURCE, 3), pytest.param(FULL, 376, marks=needs_full_data)])
def test_mixing_arc2_training_with_arc1_evaluation_is_refused(tmp_path: Path, source: Path,
                                                              overlap: int) -> None:
    with pytest.raises(ValueError, match=f"{overlap} tasks of training subset 'training2'"):
        build_arc(source, tmp_path, subsets=("training2", "evaluation", "concept"),
                  test_subset="evaluation", augmentations=1)
    assert not (tmp_path / "train").exists()


@pytest.mark.parametrize("source, test_groups, train_groups", [
    (SOURCE, 2, 10), pytest.param(FULL, 120, 1280, marks=needs_full_data)])
def test_cli_builds_without_augmentation(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         source: Path, test_groups: int,
                                         train_groups: int) -> None:
    code = main(["data-arc", "--build", "arc2", "--augmentations", "0", "--out",
                 str(tmp_path), "--source", str(source)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test"]["groups"] == test_groups
    assert report["train"]["groups"] == train_groups
    assert report["train"]["identifiers"] == train_groups + 1
