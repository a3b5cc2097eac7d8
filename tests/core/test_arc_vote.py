"""ARC voting and pass@K: candidates ranked by votes then mean halting probability, identical
answers of different versions pooled after mapping back, the crop rules, pass@K arithmetic on
tasks with several test inputs, and the evaluation over a real (tiny) build's test split."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from training.cli import main
from trm_core.checkpoint import save_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.tasks.arc.build import build_arc
from trm_core.tasks.arc.grids import EOS, ArcSymmetry, encode
from trm_core.tasks.arc.vote import (
    Ballot,
    Candidate,
    TaskPlan,
    _score_task,
    evaluate_arc,
    format_table,
    load_test_split,
    solved,
    task_scores,
)

SOURCE = Path(__file__).resolve().parents[1] / "data" / "arc"
A = np.array([[1, 2], [3, 4]])
B = np.array([[5]])
C = np.array([[0, 7, 7]])


def test_votes_rank_first_then_mean_halting_probability() -> None:
    ballot = Ballot()
    for grid, q in [(A, 0.1), (B, 0.9), (A, 0.3), (C, 0.5), (C, 0.7)]:
        ballot.add(grid, q)
    ranked = ballot.ranked()
    # A and C both have 2 votes; C's mean halting probability (0.6) beats A's (0.2).
    assert [c.votes for c in ranked] == [2, 2, 1]
    assert np.array_equal(ranked[0].grid, C) and ranked[0].confidence == pytest.approx(0.6)
    assert np.array_equal(ranked[1].grid, A) and ranked[1].confidence == pytest.approx(0.2)
    assert ballot.predictions == 5 and ballot.abstained == 0


def test_full_ties_keep_first_seen_order() -> None:
    ballot = Ballot()
    ballot.add(B, 0.5)
    ballot.add(A, 0.5)
    assert [c.grid.tolist() for c in ballot.ranked()] == [B.tolist(), A.tolist()]


def test_same_answer_from_different_versions_is_pooled_after_mapping_back() -> None:
    ballot = Ballot()
    rng = np.random.default_rng(0)
    symmetries = [ArcSymmetry(0, list(range(10)))] + [ArcSymmetry.random(rng) for _ in range(4)]
    for symmetry in symmetries:
        ballot.add_canvas(encode(symmetry.apply_grid(A)), symmetry, 0.5)  # each in its frame
    ballot.add_canvas(encode(B), None, 0.9)
    ranked = ballot.ranked()
    assert len(ranked) == 2 and ranked[0].votes == 5 and np.array_equal(ranked[0].grid, A)


def test_crop_rules_apply_to_predictions() -> None:
    canvas = encode(A).astype(np.int64).reshape(30, 30)
    canvas[0, 2] = 5  # a colour beyond the end-of-grid column: the row is now 3 wide...
    canvas[1, 2] = EOS  # ...but row 2 stops at 2, so the rectangle stays 2x2
    ballot = Ballot()
    ballot.add_canvas(canvas.reshape(-1), None, 0.5)
    assert np.array_equal(ballot.ranked()[0].grid, A)
    empty = np.zeros(900, dtype=np.int64)  # nothing decodes: the top-left cell is PAD
    ballot.add_canvas(empty, None, 0.9)
    assert ballot.predictions == 2 and ballot.abstained == 1 and len(ballot.ranked()) == 1
    official = Ballot(keep_empty=True)
    official.add_canvas(empty, None, 0.9)
    assert official.ranked()[0].grid.shape == (0, 0) and official.abstained == 0


def test_pass_at_k_over_several_test_inputs() -> None:
    def cands(*grids: np.ndarray) -> list[Candidate]:
        return [Candidate(g, 1, 0.5) for g in grids]

    ranked = [cands(A, B), cands(C, A), cands(B, C)]
    expected = [A, A, A]  # first attempt, second attempt, never
    assert task_scores(ranked, expected) == {1: pytest.approx(1 / 3), 2: pytest.approx(2 / 3)}
    assert solved(cands(B, C, A), A, 3) and not solved(cands(B, C, A), A, 2)
    assert not solved(cands(np.array([[1, 2, 3, 4]])), A.reshape(1, 4).T, 1)  # shape counts
    with pytest.raises(ValueError, match="ballots"):
        task_scores(ranked, expected[:2])


# ------------------------------------------------------------------------ over a real build
def tiny_model(rows: int) -> TRM:
    torch.manual_seed(0)
    config = ModelConfig(seq_len=900, vocab_size=12, hidden_size=16, num_heads=1, num_layers=1,
                         token_mixer="attention", position_encoding="rope", recursions=1,
                         latent_updates=1, max_supervision_steps=2, puzzle_emb_len=1,
                         puzzle_emb_dim=16, num_puzzle_ids=rows, swiglu_multiple=16)
    return TRM(config).eval()


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Concept tasks (3 test inputs each) held out, 2 augmentations per task."""
    out = tmp_path_factory.mktemp("arc-build")
    build_arc(SOURCE, out, subsets=("training", "concept"), test_subset="concept",
              augmentations=2, limit={"training": 1})
    return out


def test_right_answers_score_one_and_wrong_ones_zero(build: Path) -> None:
    data = load_test_split(build)
    task_id, rows = data.task_rows(0)
    plan = TaskPlan(task_id, rows)
    assert plan.tests == 3 and len(rows) == 9  # 3 versions x 3 test inputs
    right = {row: SimpleNamespace(answer=np.asarray(data.labels[row]), q_halt=0.5)
             for row, _ in rows}
    report = _score_task(data, plan, right, (1, 2))
    assert report["pass@1"] == 1.0 and report["versions"] == 3
    assert all(a[0]["votes"] == 3 and a[0]["correct"] for a in report["attempts"])
    # Test input 1 answered wrongly by every version: 2 of 3 solved.
    wrong = {row: SimpleNamespace(answer=encode(B) if j == 1 else right[row].answer,
                                  q_halt=0.5) for row, j in rows}
    assert _score_task(data, plan, wrong, (1, 2))["pass@2"] == pytest.approx(2 / 3)


def test_evaluate_arc_structure(build: Path) -> None:
    torch.set_num_threads(1)
    data = load_test_split(build)
    seen: list[str] = []
    report = evaluate_arc(tiny_model(len(data.identifiers)), data, batch_size=8,
                          on_task=lambda t: seen.append(t["task_id"]))
    overall = report["overall"]
    assert overall["tasks"] == 2 and overall["test_inputs"] == 6 and len(seen) == 2
    assert 0.0 <= overall["pass@1"] <= overall["pass@2"] <= 1.0
    assert all(len(a) <= 2 for t in report["tasks"] for a in t["attempts"])
    assert "pass@2" in format_table(report)


def test_eval_arc_command(build: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    data = load_test_split(build)
    stem = save_checkpoint(tmp_path / "arc", tiny_model(len(data.identifiers)),
                           {"name": "arc-tiny", "task": "arc"})
    out = tmp_path / "report.json"
    assert main(["eval-arc", str(stem), "--data", str(build), "--tasks", "1", "--json",
                 str(out), "--device", "cpu", "--batch-size", "8"]) == 0
    assert "pass@1" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["overall"]["tasks"] == 1 and report["tasks"][0]["test_inputs"] == 3
