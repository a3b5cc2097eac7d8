"""ONNX export of one supervision step: (y, z, x) -> (y', z', logits, halt, continue), batch
dynamic. The embedding and the carry stay with the caller, exactly as the engine drives
`TRM.step`, so an ONNX runtime can replace the network without changing the loop. With
`from_tokens` the graph embeds the puzzle itself, (y, z, tokens) -> the same outputs: what a
portable bundle (training/bundle.py) ships, so its runner needs no embedding table.

Needs the `onnx` extra (onnx, onnxscript; onnxruntime to check the result).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trm_core.model import TRM, State
from trm_core.solve import start

INPUTS = ("y", "z", "x")
TOKEN_INPUTS = ("y", "z", "tokens")
OUTPUTS = ("y_next", "z_next", "logits", "halt_logits", "continue_logits")


class StepGraph(nn.Module):
    """`TRM.step` with plain tensors in and out, as ONNX wants; with `from_tokens` the third
    input is the puzzle's tokens (B, seq_len) int64, embedded inside the graph."""

    def __init__(self, model: TRM, from_tokens: bool = False) -> None:
        super().__init__()
        self.model = model
        self.from_tokens = from_tokens

    def forward(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        if self.from_tokens:
            x = self.model.embed(x)  # (B, seq_len) tokens -> (B, L, D)
        out = self.model.step(State(y, z), x)
        return out.state.y, out.state.z, out.logits, out.halt_logits, out.continue_logits


def example_inputs(model: TRM, batch: int = 2, from_tokens: bool = False
                   ) -> tuple[torch.Tensor, ...]:
    state = model.initial_state(batch)
    tokens = torch.ones(batch, model.config.seq_len, dtype=torch.long)
    if from_tokens:
        return state.y, state.z, tokens
    with torch.no_grad():
        return state.y, state.z, model.embed(tokens)


def export_step(model: TRM, path: Path, from_tokens: bool = False) -> Path:
    """Write the ONNX graph of one supervision step (fp32) to `path`; the model is cast to
    fp32 in place."""
    model = model.float().eval()
    names = TOKEN_INPUTS if from_tokens else INPUTS
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = [{0: batch}] * len(names)  # by position: forward's third argument is `x`
    path.parent.mkdir(parents=True, exist_ok=True)
    for name in ("onnxscript", "onnx_ir"):  # a line per folded or merged node otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    program = torch.onnx.export(StepGraph(model, from_tokens).eval(),
                                example_inputs(model, from_tokens=from_tokens), dynamo=True,
                                input_names=list(names), output_names=list(OUTPUTS),
                                dynamic_shapes=dynamic, verbose=False)
    assert program is not None
    _compact(program.model)
    program.save(str(path), external_data=False)
    return path


def _compact(model: Any) -> None:
    """One small self-contained file: the exporter unrolls the recursion and folds a weight's
    transpose once per use (ten copies of each for the tiny Sudoku model) and records every
    node's Python stack; equal initializers are merged and the metadata dropped."""
    from onnx_ir.passes import common

    for compaction in (common.DeduplicateInitializersPass(size_limit=2**31),
                       common.ClearMetadataAndDocStringPass()):
        compaction(model)


def check_export(model: TRM, path: Path, batch: int = 3,
                 from_tokens: bool = False) -> dict[str, float]:
    """Largest absolute difference per output between ONNX Runtime and PyTorch on a random
    batch of another size than the export's example."""
    import onnxruntime

    model = model.float().eval()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, model.config.vocab_size, (batch, model.config.seq_len),
                           generator=generator)
    with torch.no_grad():
        state, x = start(model, tokens)  # the plain loop's first carry and injection
        expected = StepGraph(model)(state.y, state.z, x)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    third = ("tokens", tokens) if from_tokens else ("x", x)
    feeds = {"y": state.y.numpy(), "z": state.z.numpy(), third[0]: third[1].numpy()}
    got = session.run(list(OUTPUTS), feeds)
    return {name: float(abs(torch.from_numpy(g) - e).max())
            for name, g, e in zip(OUTPUTS, got, expected, strict=True)}
