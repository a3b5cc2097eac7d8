"""The reference loop of a TRM bundle: solve a puzzle with the bundle's one-step ONNX graph and
the rules its manifest.json writes down, with numpy and onnxruntime only (no torch, no
trm-serve). It answers what the service answers at fp32 for a request with `"attempts": 1,
"budget_steps": 0`, step for step.

    python solve.py PUZZLE          # Sudoku: 81 characters, '.' for a blank
    python solve.py PUZZLE --halting never --max-steps 16 --json

    from solve import Bundle
    bundle = Bundle("bundle/")
    result = bundle.solve(bundle.parse(PUZZLE))      # result.status, result.steps[i].answer

In trm-serve this file is training/bundle_solve.py; `trm export CHECKPOINT --bundle DIR` copies it
into the bundle as solve.py.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "trm-bundle/1"
IGNORED = frozenset(" \t\r\n|-+")  # separators a puzzle string may carry
READ = ["y_next", "z_next", "logits", "halt_logits"]


@dataclass
class Step:
    """One supervision step's reading."""

    step: int  # 1-based
    answer: np.ndarray  # (seq_len,) cells, givens kept
    changed_cells: list[int]  # positions that differ from the previous step's answer
    cell_confidence: np.ndarray  # (seq_len,) top softmax probability
    confidence: float  # mean cell_confidence over the blanks
    halt_logit: float
    q_halt: float  # sigmoid(halt_logit)
    valid: bool  # the answer verifies


@dataclass
class Result:
    status: str  # "solved": the last answer verifies; else "unsolved"
    steps: list[Step]
    halted_early: bool  # stopped before max_steps
    compute_ms: float

    @property
    def answer(self) -> np.ndarray:
        return self.steps[-1].answer


class Bundle:
    """A bundle folder, loaded: its manifest, its graph in an onnxruntime session."""

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        import onnxruntime

        folder = Path(folder)
        self.manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{folder}: not a {FORMAT} bundle "
                             f"(format {self.manifest.get('format')!r})")
        graph = _checked(folder, self.manifest["graph"]["file"], self.manifest["files"])
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # one puzzle of a small model: threads only wait
        self.session = onnxruntime.InferenceSession(graph, options,
                                                    providers=["CPUExecutionProvider"])
        self.task: dict[str, Any] = self.manifest["task"]
        if self.task["verify"]["kind"] != "units":
            raise ValueError(f"unknown verify kind {self.task['verify']['kind']!r}")
        self.units = np.array(self.task["verify"]["units"], dtype=np.intp)  # (units, size)
        self.values = np.array(sorted(self.task["verify"]["values"]), dtype=np.int64)
        tokens = self.manifest["tokens"]
        self.token_of_cell = np.array(tokens["token_of_cell"], dtype=np.int64)
        self.cell_of_token = np.array(tokens["cell_of_token"], dtype=np.int64)
        carry = self.manifest["initial_carry"]
        self.y_init = np.array(carry["y"], dtype=np.float32)  # (D,)
        self.z_init = np.array(carry["z"], dtype=np.float32)
        self.halting: dict[str, Any] = self.manifest["halting"]

    # ----------------------------------------------------------------------- the task's rules

    def parse(self, text: str) -> np.ndarray:
        """A puzzle string (digits, "." or "0" for a blank, separators ignored) as cells
        (seq_len,); ValueError naming the problem."""
        chars = [ch for ch in text if ch not in IGNORED]
        if len(chars) != self.task["seq_len"]:
            raise ValueError(f"expected {self.task['seq_len']} cells, got {len(chars)}")
        bad = [ch for ch in chars if not (ch == "." or ch.isdigit())]
        if bad:
            raise ValueError(f"bad character {bad[0]!r}; use digits and '.' for a blank")
        cells = np.array([0 if ch == "." else int(ch) for ch in chars], dtype=np.int64)
        self.check(cells)
        return cells

    def check(self, cells: np.ndarray) -> None:
        """ValueError when a cell is out of range or a given repeats within a unit."""
        if cells.shape != (self.task["seq_len"],):
            raise ValueError(f"expected {self.task['seq_len']} cells, got shape {cells.shape}")
        if cells.min() < 0 or cells.max() >= len(self.token_of_cell):
            raise ValueError(f"cells must be 0..{len(self.token_of_cell) - 1}")
        names = self.task["verify"]["unit_names"]
        for name, unit in zip(names, self.units.tolist(), strict=True):
            seen: dict[int, int] = {}
            for position in unit:
                value = int(cells[position])
                if value != self.task["blank"] and value in seen:
                    raise ValueError(f"{value} appears twice in {name}: "
                                     f"{self.cell_name(seen[value])} and "
                                     f"{self.cell_name(position)}")
                seen[value] = position

    def cell_name(self, position: int) -> str:
        """r{row}c{column}, 1-based."""
        columns = self.task["grid_shape"][1]
        return f"r{position // columns + 1}c{position % columns + 1}"

    def keep_givens(self, puzzle: np.ndarray, answer: np.ndarray) -> np.ndarray:
        if self.task["keep_givens"] == "non-blank":
            return np.where(puzzle != self.task["blank"], puzzle, answer)
        return answer

    def verify(self, puzzle: np.ndarray, answer: np.ndarray) -> bool:
        """The answer keeps the givens and every unit holds each value exactly once."""
        given = puzzle != self.task["blank"]
        if np.any(answer[given] != puzzle[given]):
            return False
        return bool((np.sort(answer[self.units], axis=1) == self.values).all())

    def format(self, cells: np.ndarray) -> str:
        blank, blank_char = self.task["blank"], self.task["blank_char"]
        return "".join(blank_char if v == blank else str(v) for v in cells.tolist())

    # ------------------------------------------------------------------------------ the loop

    def solve(self, puzzle: np.ndarray, max_steps: int | None = None,
              halting: str | None = None) -> Result:
        """Run supervision steps on `puzzle` (cells) until the halting rule stops them."""
        halting = halting or self.halting["default"]
        max_steps = max_steps or self.halting["max_steps"]
        if halting not in self.halting["modes"]:
            raise ValueError(f"halting must be one of {self.halting['modes']}, got {halting!r}")
        if not 1 <= max_steps <= self.halting["max_steps"]:
            raise ValueError(f"max_steps must be in 1..{self.halting['max_steps']}")
        self.check(puzzle)
        shape = self.manifest["graph"]["inputs"]["y"]["shape"][1:]  # (L, D)
        y = np.broadcast_to(self.y_init, (1, *shape)).copy()  # (1, L, D)
        z = np.broadcast_to(self.z_init, (1, *shape)).copy()
        tokens = self.token_of_cell[puzzle][None]  # (1, seq_len)
        steps: list[Step] = []
        started = time.perf_counter()
        for number in range(1, max_steps + 1):
            y, z, logits, halt = self.session.run(READ, {"y": y, "z": z, "tokens": tokens})
            previous = steps[-1].answer if steps else None
            steps.append(self._read(number, puzzle, logits[0], float(halt[0]), previous))
            if self._stops(steps[-1], previous, halting, max_steps):
                break
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        status = "solved" if steps[-1].valid else "unsolved"
        return Result(status, steps, len(steps) < max_steps, elapsed_ms)

    def _read(self, number: int, puzzle: np.ndarray, logits: np.ndarray, halt_logit: float,
              previous: np.ndarray | None) -> Step:
        """One step's answer and figures from its logits (seq_len, vocab)."""
        answer = self.keep_givens(puzzle, self.cell_of_token[logits.argmax(-1)])
        shifted = logits.astype(np.float64) - logits.max(-1, keepdims=True)
        cell_confidence = 1.0 / np.exp(shifted).sum(-1)  # top softmax probability
        blanks = puzzle == self.task["blank"]
        fill = blanks if blanks.any() else np.ones_like(blanks)
        shown = puzzle if previous is None else previous
        return Step(number, answer, np.flatnonzero(answer != shown).tolist(), cell_confidence,
                    float(cell_confidence[fill].mean()), halt_logit,
                    0.5 * (1.0 + math.tanh(0.5 * halt_logit)), self.verify(puzzle, answer))

    def _stops(self, step: Step, previous: np.ndarray | None, halting: str,
               max_steps: int) -> bool:
        if step.step >= max_steps:
            return True
        if halting == "never":
            return False
        rule = self.halting["auto"]
        halted = step.halt_logit > rule["halt_logit_above"]
        if not rule["needs_verified"]:
            return halted
        unchanged = (rule["or_unchanged"] and previous is not None
                     and np.array_equal(previous, step.answer))
        return step.valid and (halted or unchanged)

    def to_json(self, result: Result) -> dict[str, Any]:
        """The result with one entry per step, in the service's field names."""
        key = "solution" if result.status == "solved" else "answer"
        last = result.steps[-1]
        return {"status": result.status, "valid": last.valid, key: self.format(result.answer),
                "steps_used": len(result.steps), "halted_early": result.halted_early,
                "raw_confidence": round(last.confidence, 4), "q_halt": round(last.q_halt, 4),
                "timing": {"compute_ms": round(result.compute_ms, 2)},
                "trajectory": [{"step": s.step, "grid": self.format(s.answer),
                                "changed": len(s.changed_cells),
                                "confidence": round(s.confidence, 4),
                                "q_halt": round(s.q_halt, 4), "valid": s.valid}
                               for s in result.steps]}


def _checked(folder: Path, name: str, files: dict[str, Any]) -> str:
    """The path of a bundle file whose sha256 matches the manifest's."""
    path = folder / name
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != files[name]["sha256"]:
        raise ValueError(f"{path}: sha256 {digest} differs from the manifest's "
                         f"{files[name]['sha256']}")
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Solve a puzzle with a TRM bundle.")
    parser.add_argument("puzzle", help="the puzzle as digits, '.' or '0' for a blank")
    parser.add_argument("--bundle", type=Path, default=Path(__file__).resolve().parent,
                        help="the bundle folder (default: this file's)")
    parser.add_argument("--max-steps", type=int, help="default: the model's limit")
    parser.add_argument("--halting", choices=["auto", "never"], help="default: auto")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    bundle = Bundle(args.bundle, args.threads)
    try:
        puzzle = bundle.parse(args.puzzle)
    except ValueError as exc:
        parser.error(str(exc))
    result = bundle.solve(puzzle, args.max_steps, args.halting)
    if args.json:
        print(json.dumps(bundle.to_json(result)))
        return 0
    for step in result.steps:
        print(f"step {step.step:2d}  {bundle.format(step.answer)}  changed "
              f"{len(step.changed_cells):2d}  q_halt {step.q_halt:.3f}  "
              f"{'verifies' if step.valid else ''}")
    how = ", halted early" if result.halted_early else ""
    print(f"{result.status} in {len(result.steps)} steps{how}, {result.compute_ms:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
