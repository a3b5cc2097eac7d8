"""Data-parallel training: two CPU ranks (gloo) launched by torchrun run the real `trm train` on
a tiny ARC build with a sign-SGD puzzle table, end with identical weights, and only rank 0
writes; their averaged gradient equals one process's on the same global batch.

Run as a script under torchrun this file is the worker:

    python -m torch.distributed.run --standalone --nproc_per_node 2 \
        tests/training/test_ddp.py OUT_DIR trm-train-arguments...
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "data" / "arc"
PUZZLE = "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79"
SOLUTION = "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
# One puzzle in every row and no augmentation or exploration: every rank sees the same rows,
# so the averaged gradient over 2 ranks of 2 rows must equal one process's over 4.
GRAD_RUN = ["model.hidden_size=16", "model.num_heads=2", "model.recursions=1",
            "model.latent_updates=1", "model.max_supervision_steps=2",
            "model.swiglu_multiple=16", "train.batch_size=4", "train.augment=false",
            "train.halt_exploration_prob=0", "train.device=cpu", "train.threads=1"]
ARC_RUN = ["model.seq_len=900", "model.vocab_size=12", "model.hidden_size=16",
           "model.num_heads=2", "model.expansion=2", "model.num_layers=1",
           "model.token_mixer=attention", "model.position_encoding=rope", "model.recursions=1",
           "model.latent_updates=1", "model.max_supervision_steps=2", "model.swiglu_multiple=16",
           "model.puzzle_emb_len=1", "model.puzzle_emb_dim=16", "train.task=arc",
           "train.batch_size=4", "train.lr=1e-2", "train.puzzle_emb_lr=1e-2",
           "train.warmup_steps=1", "train.total_steps=4", "train.eval_every=2",
           "train.eval_puzzles=2", "train.eval_batch_size=2", "train.ema_rate=0.9",
           "train.device=cpu", "train.threads=1", "train.time_limit_s=600",
           "train.name=trm-ddp-test"]


def grad_trainer(out_dir: Path) -> Any:
    """A trainer whose model is built in float64: fp32 kernels round differently for a batch
    of 2 and of 4, and differently on each CPU, by more than any useful bound on gradients this
    small; in float64 the two gradients agree to about 1e-16 on any machine."""
    from trm_core.data import PuzzleSet
    from trm_core.tasks import get_task
    from trm_core.train_config import load_run
    from trm_core.trainer import Trainer

    task = get_task("sudoku")
    one = PuzzleSet(np.stack([task.parse(PUZZLE)] * 4), np.stack([task.parse(SOLUTION)] * 4),
                    np.array(["easy"] * 4))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return Trainer(load_run(None, [*GRAD_RUN, f"train.out_dir={out_dir}"]), task, one, None)
    finally:
        torch.set_default_dtype(previous)


def gradients(trainer: Any) -> dict[str, torch.Tensor]:
    trainer.forward_backward()
    return {n: p.grad.detach().clone() for n, p in trainer.model.named_parameters()
            if p.grad is not None}


def digest(trainer: Any) -> dict[str, str]:
    """sha256 of every tensor of the model and its EMA (the puzzle table included)."""
    states = {"model": trainer.model.state_dict(), "ema": trainer.ema.model.state_dict()}
    return {f"{kind}.{name}": hashlib.sha256(t.detach().cpu().numpy().tobytes()).hexdigest()
            for kind, state in states.items() for name, t in state.items()}


# ------------------------------------------------------------------------------ the worker
def worker(out: Path, argv: list[str]) -> None:
    """One rank: dump its gradient for the scaling check, then run `trm train` with fit and
    the writers wrapped to record what this rank ended with and what it wrote."""
    from training.cli import main
    from trm_core import distributed
    from trm_core.trainer import Trainer

    ranks = distributed.start("cpu")
    save_file(gradients(grad_trainer(out / f"grad-run-{ranks.rank}")),
              str(out / f"grads-{ranks.rank}.safetensors"))
    writes = out / f"writes-{ranks.rank}.txt"
    writes.touch()

    def recorded(method: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            with writes.open("a") as handle:
                handle.write(method.__name__ + "\n")
            return method(self, *args, **kwargs)
        return wrapper

    fit = Trainer.fit

    def fit_and_digest(self: Any, *args: Any, **kwargs: Any) -> Any:
        report = fit(self, *args, **kwargs)
        table = self.model.puzzle_embedding.weight
        result = {"digest": digest(self), "table_moved": bool(table.abs().sum() > 0),
                  "step": self.step, "local_batch": self.local_batch}
        (out / f"final-{self.ranks.rank}.json").write_text(json.dumps(result))
        return report

    Trainer.fit = fit_and_digest  # type: ignore[method-assign]
    Trainer.save_checkpoint = recorded(Trainer.save_checkpoint)  # type: ignore[method-assign]
    Trainer.save_resume = recorded(Trainer.save_resume)  # type: ignore[method-assign]
    sys.exit(main(argv))


# ------------------------------------------------------------------------------- the test
@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trm_core.tasks.arc.build import build_arc

    out = tmp_path_factory.mktemp("ddp")
    build = out / "build"
    build_arc(SOURCE, build, "arc1", augmentations=2,
              limit={"training": 3, "evaluation": 2, "concept": 0})
    sets = [*ARC_RUN, f"train.train_data={build}", f"train.eval_data={build}",
            f"train.out_dir={out / 'run'}"]
    argv = ["train", *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", __file__, str(out), *argv]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


def test_replicas_end_identical_and_only_rank_0_writes(two_ranks: Path) -> None:
    finals = [json.loads((two_ranks / f"final-{r}.json").read_text()) for r in (0, 1)]
    assert finals[0]["step"] == finals[1]["step"] == 4
    assert finals[0]["local_batch"] == 2  # the global batch of 4 split over 2 ranks
    assert finals[0]["table_moved"]
    assert any(k.startswith("model.puzzle_embedding") for k in finals[0]["digest"])
    assert finals[0]["digest"] == finals[1]["digest"]
    assert (two_ranks / "writes-1.txt").read_text() == ""
    written = (two_ranks / "writes-0.txt").read_text().split()
    assert "save_checkpoint" in written and "save_resume" in written
    run = two_ranks / "run"
    assert (run / "best.safetensors").exists() and (run / "best.identifiers.json").exists()
    assert (run / "resume.json").exists()


def test_two_ranks_average_to_one_process_gradient(two_ranks: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    single = gradients(grad_trainer(tmp_path))
    for rank in (0, 1):
        ranked = load_file(str(two_ranks / f"grads-{rank}.safetensors"))
        assert ranked.keys() == single.keys()
        for name, grad in single.items():
            assert grad.dtype == torch.float64
            torch.testing.assert_close(ranked[name], grad, rtol=1e-9, atol=1e-12, msg=name)


def test_a_batch_that_does_not_split_over_the_ranks_is_refused() -> None:
    from trm_core.trainer import local_batch_size

    assert local_batch_size(768, 8) == 96
    with pytest.raises(ValueError, match="batch_size 10 is not divisible by the 4 ranks"):
        local_batch_size(10, 4)


def test_ranks_come_from_torchrun_environment() -> None:
    from trm_core.distributed import Ranks, ranks_from_env, resolve_device

    assert ranks_from_env({}) == Ranks()
    ranks = ranks_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert ranks == Ranks(3, 1, 4) and ranks.distributed and not ranks.is_main
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)
    assert resolve_device("cpu", 1) == torch.device("cpu")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    worker(Path(sys.argv[1]), sys.argv[2:])
