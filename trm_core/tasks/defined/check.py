"""A rules check a spec can declare, so a data-defined task's answers are verified (and search
can use them): every unit of the output grid (its rows, columns and boxes, as listed) holds
each of `values` exactly once, and every kept input symbol stays in place.

    [check]
    units = ["rows", "columns", "boxes"]
    box = [2, 2]                 # with "boxes": the box's rows and columns
    values = ["1", "2", "3", "4"]   # the symbols each unit holds once (default: the alphabet)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNIT_KINDS = ("rows", "columns", "boxes")


@dataclass(frozen=True)
class CheckSpec:
    """The declared check: unit kinds, box shape, and the symbols each unit holds once."""

    units: tuple[str, ...]
    values: tuple[Any, ...]
    box: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"units": list(self.units), "values": list(self.values)}
        if "boxes" in self.units:
            body["box"] = list(self.box)
        return body


def check_from_dict(raw: Any, rows: int, columns: int, alphabet: tuple[Any, ...],
                    fail: Any) -> CheckSpec:
    """A checked CheckSpec for an output grid of rows x columns; `fail(message)` makes the
    error naming what is wrong."""
    if not isinstance(raw, dict):
        raise fail("[check] must be a table with units (and box, values)")
    unknown = sorted(set(raw) - {"units", "box", "values"})
    if unknown:
        raise fail(f"check.{unknown[0]} is not a key; use units, box and values")
    units = raw.get("units")
    if not isinstance(units, list) or not units or any(u not in UNIT_KINDS for u in units):
        raise fail(f"check.units must list some of {', '.join(map(repr, UNIT_KINDS))}, "
                   f"got {units!r}")
    values = raw.get("values", list(alphabet))
    if not isinstance(values, list) or any(v not in alphabet for v in values) or (
            len(set(map(str, values))) != len(values)):
        raise fail(f"check.values must list distinct alphabet symbols, got {values!r}")
    box = raw.get("box", [0, 0])
    if "boxes" in units and (not isinstance(box, list) or len(box) != 2
                             or any(not isinstance(n, int) or n < 1 for n in box)
                             or rows % box[0] or columns % box[1]):
        raise fail(f"check.box must be [rows, columns] dividing the {rows}x{columns} grid, "
                   f"got {box!r}")
    sizes = {"rows": columns, "columns": rows, "boxes": box[0] * box[1]}
    for unit in units:
        if sizes[unit] != len(values):
            raise fail(f"check: each of the {unit} holds {sizes[unit]} cells, but values "
                       f"lists {len(values)} symbols to hold once each")
    return CheckSpec(tuple(dict.fromkeys(units)), tuple(values), (box[0], box[1]))


class UnitCheck:
    """The check on cells: positions of every unit, (U, K), and the codes each holds once."""

    def __init__(self, check: CheckSpec, rows: int, columns: int, codes: list[int]) -> None:
        grid = np.arange(rows * columns).reshape(rows, columns)
        units: list[np.ndarray] = []
        if "rows" in check.units:
            units += list(grid)
        if "columns" in check.units:
            units += list(grid.T)
        if "boxes" in check.units:
            br, bc = check.box
            units += [grid[r:r + br, c:c + bc].reshape(-1)
                      for r in range(0, rows, br) for c in range(0, columns, bc)]
        self.units = np.stack(units)  # (U, K)
        self.values = np.sort(np.asarray(codes))  # (K,)

    def holds(self, answer: np.ndarray) -> bool:
        """Every unit holds each value exactly once."""
        return bool((np.sort(np.asarray(answer)[self.units], axis=1) == self.values).all())

    def clashes(self, answer: np.ndarray) -> np.ndarray:
        """(seq_len,) bool: cells holding no allowed value or repeating one in a unit."""
        answer = np.asarray(answer)
        bad = ~np.isin(answer, self.values)
        bad[self.units.max() + 1:] = False
        members = answer[self.units]  # (U, K)
        repeated = (members[:, :, None] == members[:, None, :]).sum(-1) > 1  # (U, K)
        bad[self.units[repeated & np.isin(members, self.values)]] = True
        return bad
