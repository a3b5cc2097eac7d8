"""The CPU fast path (bf16 weights) gives the plain fp32 path's outputs to bf16 tolerance, and
the engine's answers with it are the same."""

import copy
from pathlib import Path

import pytest
import torch

from trm_core.checkpoint import load_checkpoint
from trm_core.config import ModelConfig
from trm_core.data import load_puzzle_csv
from trm_core.engine import Engine
from trm_core.inference import cpu_has_native_bf16, prepare_for_inference, resolve_dtype
from trm_core.model import TRM
from trm_core.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


def test_bf16_logits_match_fp32_to_bf16_tolerance() -> None:
    # One recursion (two passes): an untrained network is chaotic enough that bf16 rounding
    # grows over many passes; the trained model's answers are compared over 16 full steps below.
    torch.manual_seed(0)
    model = TRM(ModelConfig(hidden_size=64, num_heads=4, recursions=1, latent_updates=1))
    fast, autocast = prepare_for_inference(copy.deepcopy(model), "cpu", "bfloat16")
    assert autocast is None and fast.answer_head.weight.dtype == torch.bfloat16
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
        model, autocast = prepare_for_inference(checkpoint.model, "cpu", dtype)  # type: ignore[arg-type]
        engine = Engine(model, task, slots=48, autocast_dtype=autocast)
        results[dtype] = engine.solve_batch(list(data.puzzles), halting="never")
    for a, b in zip(results["float32"], results["bfloat16"], strict=True):
        assert a.valid == b.valid
        assert (a.answer == b.answer).all()


def test_auto_picks_bf16_only_where_the_cpu_has_it(tmp_path: Path) -> None:
    flags = tmp_path / "cpuinfo"
    flags.write_text("flags : fpu avx2 avx512f\n")
    assert not cpu_has_native_bf16(flags)
    flags.write_text("flags : fpu avx512f avx512_bf16\n")
    assert cpu_has_native_bf16(flags)
    assert resolve_dtype("float32", torch.device("cpu")) == "float32"
    expected = "bfloat16" if cpu_has_native_bf16() else "float32"
    assert resolve_dtype("auto", torch.device("cpu")) == expected


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_keeps_fp32_weights_under_autocast() -> None:
    model, autocast = prepare_for_inference(TRM(ModelConfig(hidden_size=16, num_heads=2)),
                                            "cuda", "auto")
    assert autocast is torch.bfloat16 and model.answer_head.weight.dtype == torch.float32
