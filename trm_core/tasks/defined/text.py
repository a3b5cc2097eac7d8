"""What users write for a data-defined task's input or output, as flat lists of symbols, and
how a spec's alphabet and formats are described to them. Shapes are checked here; symbols are
looked up by `DataTask`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trm_core.tasks.base import PuzzleError
from trm_core.tasks.defined.spec import Layout, Symbol, TaskSpec


def listing(symbols: Sequence[Symbol]) -> str:
    """Symbols as a short quoted list (the first 12, then how many more)."""
    shown = ", ".join(repr(s) for s in symbols[:12])
    return shown + (f" and {len(symbols) - 12} more" if len(symbols) > 12 else "")


def written(spec: TaskSpec, layout: Layout) -> str:
    """How a value of `layout` may be written, for the tool description."""
    if layout.kind == "grid":
        return ("; rows as a list of lists, or as lines of "
                + ("symbols side by side" if spec.compact else "space-separated symbols")
                + f", or one line of {layout.cells} symbols")
    return "; a list, or one line of " + ("symbols" if spec.compact else
                                          "space-separated symbols")


def split_value(raw: Any, layout: Layout, compact: bool, loc: str) -> list[Any]:
    """A user's value as the flat list of its symbols, checked against the layout's shape."""
    if layout.kind == "label":
        if isinstance(raw, list | dict) or raw is None:
            raise PuzzleError(f"expected one label, got {type(raw).__name__}", (loc,))
        return [raw.strip() if isinstance(raw, str) else raw]
    if isinstance(raw, str):
        return _split_text(raw, layout, compact, loc)
    if not isinstance(raw, list):
        raise PuzzleError(f"expected a string or a list, got {type(raw).__name__}", (loc,))
    if layout.kind == "sequence":
        if any(isinstance(v, list | dict) for v in raw):
            raise PuzzleError("a sequence is a flat list of symbols", (loc,))
        return _check_length(list(raw), layout, loc)
    if len(raw) != layout.rows or any(not isinstance(r, list | str) for r in raw):
        raise PuzzleError(f"expected {layout.rows} rows (lists, or lines of text) of "
                          f"{layout.columns} symbols, got {len(raw)} items", (loc,))
    raw = [(list(r.replace(" ", "")) if compact else r.split()) if isinstance(r, str) else r
           for r in raw]
    for number, row in enumerate(raw, start=1):
        if len(row) != layout.columns:
            raise PuzzleError(f"row {number} has {len(row)} symbols, expected {layout.columns}",
                              (loc, number - 1))
    return [value for row in raw for value in row]


def _split_text(raw: str, layout: Layout, compact: bool, loc: str) -> list[Any]:
    lines = [line.strip() for line in raw.replace("\r\n", "\n").strip("\n").split("\n")]
    cut = (lambda line: list(line.replace(" ", ""))) if compact else (lambda line: line.split())
    if layout.kind == "sequence" or len(lines) == 1:
        values = cut(" ".join(lines)) if not compact else cut("".join(lines))
        if layout.kind == "grid" and len(values) != layout.cells:
            raise PuzzleError(f"expected {layout.rows} lines of {layout.columns} symbols or one "
                              f"line of {layout.cells}, got one line of {len(values)}", (loc,))
        return _check_length(values, layout, loc)
    if len(lines) != layout.rows:
        raise PuzzleError(f"expected {layout.rows} lines of {layout.columns} symbols, got "
                          f"{len(lines)} lines", (loc,))
    values = []
    for number, line in enumerate(lines, start=1):
        row = cut(line)
        if len(row) != layout.columns:
            raise PuzzleError(f"line {number} has {len(row)} symbols, expected "
                              f"{layout.columns}", (loc, number - 1))
        values += row
    return values


def _check_length(values: list[Any], layout: Layout, loc: str) -> list[Any]:
    if layout.kind == "sequence" and not 1 <= len(values) <= layout.columns:
        raise PuzzleError(f"expected 1 to {layout.columns} symbols, got {len(values)}", (loc,))
    return values
