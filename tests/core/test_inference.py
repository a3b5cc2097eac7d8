"""The precision policy: what each choice resolves to on every kind of device (the CPU probe
stood in for, so both kinds of CPU are checked on any machine); the CPU fast path (bf16
weights) gives the plain fp32 path's outputs to bf16 tolerance, and the engine's answers with
it are the same."""

import copy
from pathlib import Path

import pytest
import torch

from trm_core.checkpoint import load_checkpoint
from trm_core.config import ModelConfig
from trm_core.data import load_puzzle_csv
from trm_core.engine import Engine
from trm_core.inference import (
    Precision,
    cpu_has_native_bf16,
    prepare_for_inference,
    resolve_dtype,
    resolve_precision,
)
from trm_core.model import TRM
from trm_core.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


def test_bf16_logits_match_fp32_to_bf16_tolerance() -> None:
    # One recursion (two passes): an untrained network is chaotic enough that bf16 rounding
    # grows over many passes; the trained model's answers are compared over 16 full steps below.
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=64, num_heads=4, recursions=1, latent_updates=1))
    fast, precision = prepare_for_inference(copy.deepcopy(model), "cpu", "bfloat16")
    assert precision == Precision(torch.bfloat16)
    assert fast.answer_head.weight.dtype == torch.bfloat16
    tokens = torch.randint(1, 11, (4, 81))
    with torch.inference_mode():
        ref, out = model(model.initial_state(4), tokens), fast(fast.initial_state(4), tokens)
    scale = ref.logits.abs().max()
    assert (out.logits.float() - ref.logits).abs().max() / scale < 3e-2
    assert out.halt_logits.dtype == torch.float32


def test_engine_answers_are_the_same_with_the_fast_path() -> None:
    task = get_task("sudoku")
    data = load_puzzle_csv(ROOT / "training" / "data" / "sudoku-easy-test.csv", task).head(48)
    results = {}
    for dtype in ("float32", "bfloat16"):
        checkpoint = load_checkpoint(ROOT / "checkpoints" / "sudoku" / "trm-sudoku-tiny")
        model, precision = prepare_for_inference(checkpoint.model, "cpu", dtype)  # type: ignore[arg-type]
        engine = Engine(model, task, slots=48, autocast_dtype=precision.autocast)
        results[dtype] = engine.solve_batch(list(data.puzzles), halting="never")
    for a, b in zip(results["float32"], results["bfloat16"], strict=True):
        assert a.valid == b.valid
        assert (a.answer == b.answer).all()


def test_cpu_probe_reads_the_bf16_flags(tmp_path: Path) -> None:
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags : fpu avx2 avx512f\n")
    assert not cpu_has_native_bf16(flags)
    flags.write_text("flags : fpu avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(flags)
    flags.write_text("flags : fpu amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16(flags)
    assert not cpu_has_native_bf16(tmp_path / "missing")


@pytest.mark.parametrize("native_bf16", [True, False])
def test_one_policy_for_every_device(native_bf16: bool) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto_cpu = resolve_precision("auto", cpu, native_bf16=native_bf16)
    assert auto_cpu == Precision(torch.bfloat16 if native_bf16 else torch.float32)
    assert resolve_dtype("auto", cpu, native_bf16) == ("bfloat16" if native_bf16 else "float32")
    assert resolve_precision("float32", cpu, native_bf16=native_bf16) == Precision(torch.float32)
    assert resolve_precision("bfloat16", cpu, native_bf16=native_bf16) == Precision(
        torch.bfloat16)
    # CUDA: fp32 weights under bf16 autocast, whatever the CPU
    assert resolve_precision("auto", cuda, native_bf16=native_bf16) == Precision(
        torch.float32, torch.bfloat16)
    assert resolve_precision("bfloat16", cuda, native_bf16=native_bf16) == Precision(
        torch.bfloat16)
    forced = resolve_precision("auto", cpu, "float16", native_bf16=native_bf16)
    assert forced.autocast is torch.float16


def test_precision_names_and_bad_choices() -> None:
    assert Precision(torch.bfloat16).name == "bfloat16"
    assert Precision(torch.float32, torch.bfloat16).name == "float32+autocast-bfloat16"
    with pytest.raises(ValueError, match="dtype must be one of auto, float32, bfloat16, got 'f16'"):
        resolve_precision("f16", "cpu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="autocast must be one of off, bfloat16, float16"):
        resolve_precision("auto", "cpu", "on")  # type: ignore[arg-type]


def test_prepare_uses_the_policy() -> None:
    model = TRM(ModelConfig(hidden_size=16, num_heads=2))
    for native_bf16, weights in ((True, torch.bfloat16), (False, torch.float32)):
        prepared, precision = prepare_for_inference(model, "cpu", native_bf16=native_bf16)
        assert precision == Precision(weights) and not prepared.training
        assert {p.dtype for p in prepared.parameters()} == {weights}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_keeps_fp32_weights_under_autocast() -> None:
    model, precision = prepare_for_inference(TRM(ModelConfig(hidden_size=16, num_heads=2)),
                                             "cuda", "auto")
    assert precision.autocast is torch.bfloat16
    assert model.answer_head.weight.dtype == torch.float32
