"""ONNX export of one supervision step: (y, z, x) -> (y', z', logits, halt, continue), batch
dynamic. The embedding and the carry stay with the caller, exactly as the engine drives
`TRM.step`, so an ONNX runtime can replace the network without changing the loop.

Needs the `onnx` extra (onnx, onnxscript; onnxruntime to check the result).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from trm_core.model import TRM, State

INPUTS = ("y", "z", "x")
OUTPUTS = ("y_next", "z_next", "logits", "halt_logits", "continue_logits")


class StepGraph(nn.Module):
    """`TRM.step` with plain tensors in and out, as ONNX wants."""

    def __init__(self, model: TRM) -> None:
        super().__init__()
        self.model = model

    def forward(self, y: torch.Tensor, z: torch.Tensor, x: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        out = self.model.step(State(y, z), x)
        return out.state.y, out.state.z, out.logits, out.halt_logits, out.continue_logits


def example_inputs(model: TRM, batch: int = 2) -> tuple[torch.Tensor, ...]:
    state = model.initial_state(batch)
    tokens = torch.ones(batch, model.config.seq_len, dtype=torch.long)
    with torch.no_grad():
        return state.y, state.z, model.embed(tokens)


def export_step(model: TRM, path: Path) -> Path:
    """Write the ONNX graph of one supervision step (fp32) to `path`."""
    model = model.float().eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = {name: {0: batch} for name in INPUTS}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(StepGraph(model).eval(), example_inputs(model), str(path), dynamo=True,
                      input_names=list(INPUTS), output_names=list(OUTPUTS),
                      dynamic_shapes=dynamic, verbose=False)
    return path


def check_export(model: TRM, path: Path, batch: int = 3) -> dict[str, float]:
    """Largest absolute difference per output between ONNX Runtime and PyTorch on a random
    batch of another size than the export's example."""
    import onnxruntime

    model = model.float().eval()
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, model.config.vocab_size, (batch, model.config.seq_len),
                           generator=generator)
    state = model.initial_state(batch)
    with torch.no_grad():
        x = model.embed(tokens)
        expected = StepGraph(model)(state.y, state.z, x)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"y": state.y.numpy(), "z": state.z.numpy(), "x": x.numpy()}
    got = session.run(list(OUTPUTS), feeds)
    return {name: float(abs(torch.from_numpy(g) - e).max())
            for name, g, e in zip(OUTPUTS, got, expected, strict=True)}
