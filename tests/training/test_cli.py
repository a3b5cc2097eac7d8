"""The `trm` command end to end on tiny data: data, train, eval, import-official."""

import json
from pathlib import Path

import pytest
from shipped_models import tiny_only

from training.cli import main
from training.datasets import splits_disjoint
from trm_core.checkpoint import load_checkpoint

VECTORS = Path(__file__).resolve().parents[1] / "data" / "official-vectors"
TINY = ["model.hidden_size=32", "model.num_heads=4", "model.recursions=1",
        "model.latent_updates=1", "model.max_supervision_steps=2", "model.swiglu_multiple=32",
        "train.batch_size=8", "train.total_steps=4", "train.eval_every=2",
        "train.eval_batch_size=8", "train.warmup_steps=1", "train.task=sudoku"]


def with_sets(overrides: list[str]) -> list[str]:
    return [arg for override in overrides for arg in ("--set", override)]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data")
    assert main(["data", "sudoku", "--out", str(out), "--train", "24", "--val", "8",
                 "--test", "8", "--workers", "1", "--seed", "3"]) == 0
    return out


def test_data_splits_are_disjoint_under_symmetry(data_dir: Path) -> None:
    manifest = json.loads((data_dir / "manifest.json").read_text())
    assert manifest["splits"] == {"test": 8, "val": 8, "train": 24}
    assert splits_disjoint([data_dir / f"{s}.csv" for s in ("train", "val", "test")], "sudoku",
                           workers=1)


def test_exclude_keeps_symmetric_images_out(data_dir: Path, tmp_path: Path) -> None:
    assert main(["data", "sudoku", "--out", str(tmp_path), "--train", "8", "--val", "0",
                 "--exclude", str(data_dir / "test.csv"), "--workers", "1", "--seed", "3"]) == 0
    assert splits_disjoint([tmp_path / "train.csv", data_dir / "test.csv"], "sudoku", workers=1)


def test_train_then_eval(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    sets = [f"train.train_data={data_dir / 'train.csv'}", f"train.eval_data={data_dir / 'val.csv'}",
            f"train.out_dir={run_dir}", "train.name=trm-cli-test"]
    args = ["train", *with_sets(TINY + sets)]
    assert main([*args, "--ship", str(tmp_path / "shipped" / "tiny"),
                 "--keep-latest", str(tmp_path / "latest" / "tiny")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and len(summary["curve"]) == 2
    latest = load_checkpoint(tmp_path / "latest" / "tiny")  # where a next session goes on
    assert latest.card["step"] == 4 and len(latest.card["curve"]) == 2
    shipped = load_checkpoint(tmp_path / "shipped" / "tiny")
    assert shipped.card["data"]["train"]["rows"] == 24
    assert main(["eval", str(tmp_path / "shipped" / "tiny"), "--data",
                 str(data_dir / "test.csv"), "--json", str(tmp_path / "r.json"),
                 "--record"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["overall"]["puzzles"] == 8
    assert "test/never/k1" in load_checkpoint(tmp_path / "shipped" / "tiny").card["evaluations"]


def test_train_resumes(data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sets = [f"train.train_data={data_dir / 'train.csv'}", f"train.eval_data={data_dir / 'val.csv'}",
            f"train.out_dir={tmp_path}"]
    base = ["train", *with_sets(TINY + sets)]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--set", "train.total_steps=6"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == 6


def test_bad_override_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--set", "model.hidden_size=big"]) == 2
    assert "model.hidden_size expects int, got 'big'" in capsys.readouterr().err


def test_import_official(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["import-official", str(VECTORS / "mlp_t_no_puzzle.safetensors"),
                 "--config", str(VECTORS / "mlp_t_no_puzzle.json"), "--task", "sudoku",
                 "--out", str(tmp_path / "imported")]) == 0
    assert load_checkpoint(tmp_path / "imported").config.hidden_size == 64


def test_eval_against_a_running_service(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`trm eval --url` scores the service's answers like a checkpoint's: the shipped model
    served over HTTP gets the same exact accuracy as evaluated in process."""
    from in_thread import serve_in_thread

    from app.settings import Settings

    root = Path(__file__).resolve().parents[2]
    test_set = root / "training" / "data" / "sudoku-easy-test.csv"
    args = ["--data", str(test_set), "--limit", "24", "--halting", "auto"]
    assert main(["eval", str(root / "checkpoints" / "sudoku" / "trm-sudoku-tiny"), *args,
                 "--json", str(tmp_path / "local.json")]) == 0
    settings = Settings(checkpoint_dir=tiny_only(), device="cpu")
    with serve_in_thread(settings) as running:
        assert main(["eval", "--url", running.base_url, *args, "--concurrency", "8",
                     "--json", str(tmp_path / "remote.json")]) == 0
    capsys.readouterr()
    local = json.loads((tmp_path / "local.json").read_text())
    remote = json.loads((tmp_path / "remote.json").read_text())
    assert remote["overall"]["exact_accuracy"] == local["overall"]["exact_accuracy"]
    assert remote["settings"]["models"] == ["trm-sudoku-tiny@1"]
    # the same default choice (--dtype auto, TRM_DTYPE=auto) is the same arithmetic
    assert remote["settings"]["precision"] == local["settings"]["precision"]


def test_eval_needs_a_checkpoint_or_url(capsys: pytest.CaptureFixture) -> None:
    assert main(["eval", "--data", "x.csv"]) == 2
    assert "name a checkpoint, or a service with --url" in capsys.readouterr().err


def test_service_answers_that_break_the_rules_are_scored_not_rejected() -> None:
    from training.remote_eval import _as_result
    from trm_core.tasks import get_task

    reply = {"id": "slv_1", "status": "unsolved", "unverified": True, "answer": "1" * 81,
             "answer_grid": [[1] * 9] * 9, "valid": False, "steps_used": 16}
    result = _as_result(get_task("sudoku"), reply)
    assert result.answer is not None and int(result.answer.sum()) == 81 and not result.valid
