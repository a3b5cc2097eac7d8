"""`trm import-official` on an ARC checkpoint in the official layout, made from our own weights:
the torch file is read weights-only and mapped, the weights come back exactly, the identifier
names become the sidecar with demonstration digests, and the puzzle table is streamed rather
than copied."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from training.cli import main
from trm_core.checkpoint import load_checkpoint
from trm_core.config import ModelConfig
from trm_core.model import TRM
from trm_core.official import to_official
from trm_core.tasks.arc.identifiers import demos_digest, load_identifiers, sidecar_path

ARC_DATA = Path(__file__).resolve().parents[1] / "data" / "arc"
ARCH_YAML = """\
arch:
  name: recursive_reasoning.trm@TinyRecursiveReasoningModel_ACTV1
  H_cycles: 2
  L_cycles: 2
  H_layers: 0
  L_layers: 2
  hidden_size: 32
  num_heads: 4
  expansion: 4
  halt_max_steps: 4
  halt_exploration_prob: 0.1
  pos_encodings: rope
  puzzle_emb_ndim: 32
  puzzle_emb_len: 2
  forward_dtype: bfloat16
  mlp_t: false
"""


def official_files(folder: Path, rows: int) -> tuple[TRM, Path]:
    """Our tiny ARC model saved as the official trainer would, with its identifiers.json."""
    torch.manual_seed(0)
    model = TRM(ModelConfig(seq_len=900, vocab_size=12, hidden_size=32, num_heads=4,
                            token_mixer="attention", position_encoding="rope", recursions=2,
                            latent_updates=2, max_supervision_steps=4, puzzle_emb_len=2,
                            puzzle_emb_dim=32, num_puzzle_ids=rows, swiglu_multiple=256))
    torch.nn.init.normal_(model.puzzle_embedding.weight)  # type: ignore[union-attr]
    state = to_official(model.state_dict(), num_layers=2)
    state["_orig_mod.model.inner.puzzle_emb.weights"] = state.pop(
        "_orig_mod.model.inner.puzzle_emb.weights")
    torch.save(state, folder / "step_100")
    names = ["<blank>", "007bbfb7", "007bbfb7|||t3|||0213456789", "00d62c1b",
             "00d62c1b|||t6|||0987654321", "not-in-the-data"]
    (folder / "identifiers.json").write_text(json.dumps(names + ["zz"] * (rows - len(names))))
    (folder / "all_config.yaml").write_text(ARCH_YAML)
    return model, folder


def test_round_trip_with_identifiers(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model, folder = official_files(tmp_path, rows=6)
    out = tmp_path / "ours" / "arc"
    assert main(["import-official", str(folder / "step_100"), "--config",
                 str(folder / "all_config.yaml"), "--task", "arc", "--identifiers",
                 str(folder / "identifiers.json"), "--arc-data", str(ARC_DATA),
                 "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["tasks"] == 3 and summary["tasks_recognisable"] == 2

    loaded = load_checkpoint(out)
    assert loaded.config == model.config
    for key, tensor in model.state_dict().items():
        expected = tensor.bfloat16().float() if key in ("y_init", "z_init") else tensor
        assert torch.equal(loaded.model.state_dict()[key], expected), key

    table = load_identifiers(sidecar_path(out))
    assert table.rows_of() == {"007bbfb7": [1, 2], "00d62c1b": [3, 4], "not-in-the-data": [5]}
    assert table.versions[2] is not None and table.versions[2].dihedral_id == 3
    demos = json.loads((ARC_DATA / "arc-agi_training_challenges.json").read_text())["007bbfb7"]
    assert table.task_digests["007bbfb7"] == demos_digest(
        [(p["input"], p["output"]) for p in demos["train"]])


def test_identifier_count_must_match(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _, folder = official_files(tmp_path, rows=6)
    (folder / "identifiers.json").write_text(json.dumps(["<blank>", "007bbfb7"]))
    assert main(["import-official", str(folder / "step_100"), "--config",
                 str(folder / "all_config.yaml"), "--task", "arc", "--identifiers",
                 str(folder / "identifiers.json"), "--out", str(tmp_path / "x")]) == 2
    assert "lists 2 identifiers but the checkpoint's puzzle table has 6 rows" in (
        capsys.readouterr().err)


PEAK_SCRIPT = """
import sys
from pathlib import Path
from trm_core.official_stream import load_official_mapped, write_safetensors

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)

folder, how = Path(sys.argv[1]), sys.argv[2]
state = load_official_mapped(folder / "big")
float(state["table"].sum())  # every mapped page resident (file-backed) before the baseline
try:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # the peak restarts from the current resident size
    before = status_kib("VmRSS")
except OSError:
    before = status_kib("VmHWM")
tensors = state if how == "streamed" else {"table": state["table"].clone()}
write_safetensors(folder / f"{how}.safetensors", tensors, state["table"].dtype)
print(status_kib("VmHWM") - before)
"""


def _peak_growth_mib(folder: Path, how: str) -> float:
    """How far converting the mapped table raised the peak resident memory of a fresh process.

    VmHWM is the kernel's own high-water mark of this process's resident memory, so it cannot
    miss a short-lived peak as sampling can (ru_maxrss is the same mark, but a child's also
    carries its parent's peak over exec). The mapped pages are made resident first, so the
    growth is what the conversion itself allocates."""
    run = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(folder), how], check=True,
                         capture_output=True, text=True, timeout=120)
    return int(run.stdout.split()[-1]) / 1024


def test_the_table_is_streamed_not_copied(tmp_path: Path) -> None:
    """Converting a 64 MiB table raises peak memory by far less than the table, where a whole
    copy (the measurement's control) raises it by the table's size."""
    table = torch.randn(16384, 1024)
    torch.save({"table": table}, tmp_path / "big")
    del table
    streamed = _peak_growth_mib(tmp_path, "streamed")
    assert streamed < 24, f"peak memory grew {streamed:.0f} MiB for a 64 MiB table"
    copied = _peak_growth_mib(tmp_path, "copied")
    assert copied > 56, f"a whole copy raised the peak by only {copied:.0f} MiB"
    from safetensors.torch import load_file

    assert torch.equal(load_file(str(tmp_path / "streamed.safetensors"))["table"],
                       torch.load(tmp_path / "big", weights_only=True)["table"])
