"""A data-defined task's spec: what a `task.toml` beside the user's data declares, checked
where it is read so every mistake is named with its key.

    name = "life"
    description = "One step of Conway's Game of Life on a 10x10 torus"
    alphabet = [".", "#"]        # every symbol a cell may hold (strings or integers)
    labels = []                  # output kind "label": the labels an answer picks from
    keep = []                    # input symbols an answer keeps in place (Sudoku's givens)
    symmetries = ["dihedral"]    # "dihedral" (grids), "reverse" (sequences), "permute"
    fixed = []                   # with "permute": symbols never relabelled
    data = "life.jsonl"          # the examples, JSONL or CSV, relative to this file
    # [check] (optional): a rules check, so answers verify (trm_core/tasks/defined/check.py)

    [input]
    kind = "grid"                # "grid" or "sequence"
    shape = [10, 10]             # grid: [rows, columns]; sequence: [longest length]
    wrap = true                  # grid: the edges meet (a torus)

    [output]
    kind = "grid"                # "grid", "sequence" or "label"
    shape = [10, 10]

A spec travels in every checkpoint card it trains (`TaskSpec.to_dict`), so a service needs
nothing but the checkpoint to serve the task.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trm_core.tasks.defined.check import CheckSpec, check_from_dict

MAX_SIDE = 30  # grids up to 30x30, as the paper's largest (ARC, mazes)
MAX_CELLS = 900
SYMMETRIES = ("dihedral", "reverse", "permute")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
Symbol = str | int
Kind = Literal["grid", "sequence", "label"]


class SpecError(ValueError):
    """A task spec that cannot be used; the message names the key and what is wrong."""


@dataclass(frozen=True)
class Layout:
    """Where one side's cells lie in the model's positions.

    grid: rows x columns, row-major from position 0; sequence: up to `length` positions from
    0, shorter ones end early; label: position 0 alone."""

    kind: Kind
    rows: int = 1
    columns: int = 1
    wrap: bool = False

    @property
    def cells(self) -> int:
        return self.rows * self.columns

    def to_dict(self) -> dict[str, Any]:
        shape = {"grid": [self.rows, self.columns], "sequence": [self.columns], "label": []}
        body: dict[str, Any] = {"kind": self.kind, "shape": shape[self.kind]}
        if self.wrap:
            body["wrap"] = True
        return body

    def describe(self) -> str:
        if self.kind == "grid":
            return f"a {self.rows}x{self.columns} grid"
        if self.kind == "sequence":
            return f"a sequence of up to {self.columns} symbols"
        return "one label"


@dataclass(frozen=True)
class TaskSpec:
    """A checked spec. Cell codes: 0 is "nothing here", alphabet symbol i is i + 1, label j is
    len(alphabet) + 1 + j."""

    name: str
    input: Layout
    output: Layout
    alphabet: tuple[Symbol, ...]
    labels: tuple[Symbol, ...] = ()
    keep: tuple[Symbol, ...] = ()
    symmetries: tuple[str, ...] = ()
    fixed: tuple[Symbol, ...] = ()
    description: str = ""
    data: str = field(default="", compare=False)
    examples: tuple[dict[str, Any], ...] = field(default=(), compare=False)
    check: CheckSpec | None = None  # a rules check: answers verify, search may run

    @property
    def seq_len(self) -> int:
        return max(self.input.cells, self.output.cells)

    @property
    def symbols(self) -> tuple[Symbol, ...]:
        """Every cell value's symbol by code - 1: the alphabet, then the labels."""
        return self.alphabet + self.labels

    @property
    def compact(self) -> bool:
        """Every alphabet symbol is one character, so a row is written without separators."""
        return all(len(str(s)) == 1 for s in self.alphabet)

    def code_of(self, symbol: Symbol) -> int:
        return self.alphabet.index(symbol) + 1

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name, "description": self.description,
            "alphabet": list(self.alphabet), "labels": list(self.labels),
            "keep": list(self.keep), "symmetries": list(self.symmetries),
            "fixed": list(self.fixed),
            "input": self.input.to_dict(), "output": self.output.to_dict(),
        }
        if self.check is not None:
            body["check"] = self.check.to_dict()
        if self.examples:
            body["examples"] = [dict(e) for e in self.examples]
        return body


def load_spec(path: str | Path) -> TaskSpec:
    """The spec in `path` (a task.toml, or a folder holding one), with the examples `trm data`
    wrote beside it (examples.json) when present."""
    path = spec_path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: not valid TOML: {err}") from None
    spec = spec_from_dict(raw, where=str(path))
    examples = path.parent / "examples.json"
    if examples.exists():
        spec = TaskSpec(**{**spec.__dict__, "examples": tuple(json.loads(examples.read_text()))})
    return spec


def spec_path(path: str | Path) -> Path:
    """`path` itself, or `path/task.toml` when `path` is a folder; SpecError when missing."""
    path = Path(path)
    if path.is_dir():
        path = path / "task.toml"
    if not path.is_file():
        raise SpecError(f"no task spec at {path} (write one with `trm task init NAME`)")
    return path


def spec_from_dict(raw: dict[str, Any], where: str = "task spec") -> TaskSpec:
    """A checked TaskSpec from its TOML or card form; SpecError naming the key otherwise."""
    def fail(message: str) -> SpecError:
        return SpecError(f"{where}: {message}")

    known = {"name", "description", "alphabet", "labels", "keep", "symmetries", "fixed", "data",
             "input", "output", "check", "examples"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise fail(f"unknown key {unknown[0]!r}; the keys are {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail(f"name must be lower-case letters, digits, '-' or '_' starting with a "
                   f"letter (at most 40), got {name!r}")
    alphabet = _symbols(raw.get("alphabet"), "alphabet", fail)
    if not alphabet:
        raise fail("alphabet must list at least one symbol")
    inp = _layout(raw.get("input"), "input", ("grid", "sequence"), fail)
    out = _layout(raw.get("output"), "output", ("grid", "sequence", "label"), fail)
    labels = _symbols(raw.get("labels", []), "labels", fail)
    if out.kind == "label" and len(labels) < 2:
        raise fail("output kind 'label' needs at least two labels")
    if out.kind != "label" and labels:
        raise fail("labels are only for output kind 'label'")
    keep = _subset(raw.get("keep", []), alphabet, "keep", fail)
    if keep and (out.kind == "label" or out != Layout(inp.kind, inp.rows, inp.columns, out.wrap)):
        raise fail("keep needs an output of the same kind and shape as the input")
    symmetries = _symmetries(raw.get("symmetries", []), inp, out, fail)
    fixed = _subset(raw.get("fixed", []), alphabet, "fixed", fail)
    if fixed and "permute" not in symmetries:
        raise fail("fixed only applies with the 'permute' symmetry")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description must be a string")
    data = raw.get("data", "")
    if not isinstance(data, str):
        raise fail("data must be a path (a string)")
    check = None
    if "check" in raw:
        if out.kind != "grid" or (out.rows, out.columns) != (inp.rows, inp.columns):
            raise fail("[check] needs an output grid of the input's shape")
        check = check_from_dict(raw["check"], out.rows, out.columns, alphabet, fail)
        if ("dihedral" in symmetries and "boxes" in check.units
                and check.box[0] != check.box[1]):
            raise fail("'dihedral' turns a non-square box sideways: the check would not hold "
                       "for a transposed answer")
    examples = raw.get("examples", [])
    return TaskSpec(name, inp, out, alphabet, labels, keep, tuple(dict.fromkeys(symmetries)),
                    fixed, description, data, tuple(examples), check)


def _symmetries(value: Any, inp: Layout, out: Layout, fail: Any) -> list[str]:
    if not isinstance(value, list) or any(s not in SYMMETRIES for s in value):
        raise fail(f"symmetries must be a list of {', '.join(map(repr, SYMMETRIES))}, "
                   f"got {value!r}")
    if "dihedral" in value and inp.kind != "grid":
        raise fail("'dihedral' needs a grid input")
    if "dihedral" in value and out.kind == "sequence":
        raise fail("'dihedral' cannot map a grid to a sequence: the sequence has no rows")
    if "reverse" in value and (inp.kind != "sequence" or out.kind == "grid"):
        raise fail("'reverse' needs a sequence input and a sequence or label output")
    return value


def _symbols(value: Any, key: str, fail: Any) -> tuple[Symbol, ...]:
    if not isinstance(value, list):
        raise fail(f"{key} must be a list of symbols, got {value!r}")
    for symbol in value:
        if isinstance(symbol, bool) or not isinstance(symbol, str | int):
            raise fail(f"{key}: symbols are strings or integers, got {symbol!r}")
        if isinstance(symbol, str) and (not symbol or symbol != symbol.strip()
                                        or any(c.isspace() for c in symbol)):
            raise fail(f"{key}: symbol {symbol!r} is empty or holds whitespace")
    texts = [str(s) for s in value]
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise fail(f"{key}: {repeated[0]!r} is listed twice")
    return tuple(value)


def _subset(value: Any, alphabet: tuple[Symbol, ...], key: str, fail: Any
            ) -> tuple[Symbol, ...]:
    symbols = _symbols(value, key, fail)
    for symbol in symbols:
        if symbol not in alphabet:
            raise fail(f"{key}: {symbol!r} is not in the alphabet")
    return symbols


def _layout(value: Any, key: str, kinds: tuple[str, ...], fail: Any) -> Layout:
    if not isinstance(value, dict):
        raise fail(f"[{key}] is missing: give its kind ({', '.join(kinds)}) and shape")
    unknown = sorted(set(value) - {"kind", "shape", "wrap"})
    if unknown:
        raise fail(f"{key}.{unknown[0]} is not a key; use kind, shape and wrap")
    kind = value.get("kind")
    if kind not in kinds:
        raise fail(f"{key}.kind must be one of {', '.join(kinds)}, got {kind!r}")
    wrap = value.get("wrap", False)
    if not isinstance(wrap, bool) or (wrap and kind != "grid"):
        raise fail(f"{key}.wrap is true or false, and only for grids")
    if kind == "label":
        if value.get("shape") not in (None, []):
            raise fail(f"{key}.shape: a label has no shape")
        return Layout("label")
    shape = value.get("shape")
    sides = 2 if kind == "grid" else 1
    if (not isinstance(shape, list) or len(shape) != sides
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)):
        want = "[rows, columns]" if kind == "grid" else "[length]"
        raise fail(f"{key}.shape must be {want} of positive integers, got {shape!r}")
    if kind == "grid":
        rows, columns = shape
        if rows > MAX_SIDE or columns > MAX_SIDE:
            raise fail(f"{key}.shape {shape}: grids are at most {MAX_SIDE}x{MAX_SIDE}")
        return Layout("grid", rows, columns, wrap)
    if shape[0] > MAX_CELLS:
        raise fail(f"{key}.shape {shape}: sequences hold at most {MAX_CELLS} symbols")
    return Layout("sequence", 1, shape[0])
