"""Which ARC task version each puzzle-embedding row stands for, and how a task is recognised.

An ARC checkpoint learns one embedding row per augmented task version, so serving it needs the
row -> (task, version, dihedral id, colour map) table, and answering a task a client sends needs
to know whether the checkpoint trained on it: that is decided by the content of its
demonstration pairs (a digest independent of pair order), never by a client-supplied id.

The table travels beside the checkpoint as `<stem>.identifiers.json`:

    {"format": "trm-identifiers/1",
     "identifiers": [null, ["007bbfb7", 0, 0, "0123456789"], ...],   # row -> version; 0 blank
     "tasks": {"007bbfb7": "<sha256 of its demonstration pairs>", ...}}

`load_identifiers` also reads the dataset builder's `identifiers.json` (the bare list) and the
official builder's (a list of names: "<blank>", "007bbfb7", "007bbfb7|||t3|||0213456789").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trm_core.tasks.arc.grids import ArcSymmetry

FORMAT = "trm-identifiers/1"
OFFICIAL_SEPARATOR = "|||"
IDENTITY_COLOURS = "0123456789"


@dataclass(frozen=True)
class VersionRef:
    """One augmented version of a task: recolour by `colour_map`, then dihedral `dihedral_id`."""

    task_id: str
    version: int  # 0 = the original
    dihedral_id: int
    colour_map: str  # ten digits, colour c -> int(colour_map[c])

    @property
    def symmetry(self) -> ArcSymmetry:
        return ArcSymmetry(self.dihedral_id, [int(c) for c in self.colour_map])

    def to_json(self) -> list[Any]:
        return [self.task_id, self.version, self.dihedral_id, self.colour_map]


@dataclass
class IdentifierMap:
    """Row -> version (None for blank rows) and task id -> demonstration digest."""

    versions: list[VersionRef | None]
    task_digests: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.versions)

    def rows_of(self) -> dict[str, list[int]]:
        """Task id -> its rows, in version order."""
        rows: dict[str, list[int]] = {}
        for row, ref in enumerate(self.versions):
            if ref is not None:
                rows.setdefault(ref.task_id, []).append(row)
        return rows

    def task_by_digest(self) -> dict[str, str]:
        """Demonstration digest -> task id."""
        return {digest: task_id for task_id, digest in self.task_digests.items()}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT,
                "identifiers": [None if r is None else r.to_json() for r in self.versions],
                "tasks": self.task_digests}


def demos_digest(demos: Sequence[tuple[Any, Any]]) -> str:
    """sha256 over the multiset of (input, output) grids, shapes included; pair order and the
    container type (lists or arrays) do not matter."""
    parts = []
    for grid_in, grid_out in demos:
        a, b = np.asarray(grid_in, dtype=np.uint8), np.asarray(grid_out, dtype=np.uint8)
        parts.append(bytes(a.shape) + a.tobytes() + b"|" + bytes(b.shape) + b.tobytes())
    return hashlib.sha256(b"#".join(sorted(parts))).hexdigest()


def sidecar_path(stem: str | Path) -> Path:
    """`<stem>.identifiers.json` for checkpoint stem `stem`."""
    stem = Path(stem)
    return stem.parent / f"{stem.name}.identifiers.json"


def save_identifiers(path: str | Path, identifiers: IdentifierMap) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identifiers.to_json(), separators=(",", ":")))
    return path


def load_identifiers(path: str | Path) -> IdentifierMap:
    """Read our sidecar, the builder's list, or the official builder's list of names."""
    path = Path(path)
    data = json.loads(path.read_text())
    if isinstance(data, dict):
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: not a {FORMAT} file (format={data.get('format')!r})")
        return IdentifierMap(_versions(data["identifiers"], path), dict(data.get("tasks", {})))
    if isinstance(data, list):
        return IdentifierMap(_versions(data, path))
    raise ValueError(f"{path}: expected a list of identifiers or a {FORMAT} object")


def _versions(entries: list[Any], path: Path) -> list[VersionRef | None]:
    versions: list[VersionRef | None] = []
    counts: dict[str, int] = {}
    for row, entry in enumerate(entries):
        try:
            ref = _version(entry, counts)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: identifier {row} ({entry!r}) is malformed: {err}") from None
        versions.append(ref)
    return versions


def _version(entry: Any, counts: dict[str, int]) -> VersionRef | None:
    if entry is None or entry == "<blank>":
        return None
    if isinstance(entry, list):
        task_id, version, dihedral_id, colours = entry
        ref = VersionRef(str(task_id), int(version), int(dihedral_id), str(colours))
    elif isinstance(entry, str):
        ref = parse_official_name(entry, counts.get(entry.split(OFFICIAL_SEPARATOR)[0], 0))
    else:
        raise TypeError("expected null, a list or a name")
    ref.symmetry  # validates the dihedral id and colour map  # noqa: B018
    counts[ref.task_id] = counts.get(ref.task_id, 0) + 1
    return ref


def parse_official_name(name: str, version: int = 0) -> VersionRef:
    """"007bbfb7" (the original) or "007bbfb7|||t3|||0213456789" (dihedral 3, that colour map)."""
    parts = name.split(OFFICIAL_SEPARATOR)
    if len(parts) == 1:
        return VersionRef(name, version, 0, IDENTITY_COLOURS)
    if len(parts) != 3 or not parts[1].startswith("t"):
        raise ValueError("expected TASK or TASK|||tN|||COLOURS")
    return VersionRef(parts[0], version, int(parts[1][1:]), parts[2])


def write_identifiers(source: Path, challenges: Path | None, stem: Path,
                      rows: int) -> dict[str, Any]:
    """The identifier table as the checkpoint's sidecar, with demonstration digests for every
    task found in `challenges`' *_challenges.json files."""
    table = load_identifiers(source)
    if len(table) != rows:
        raise ValueError(f"{source} lists {len(table)} identifiers but the checkpoint's puzzle "
                         f"table has {rows} rows; use the identifiers.json of the same build")
    tasks = table.rows_of()
    if challenges is not None:
        demos = read_demonstrations(challenges)
        table.task_digests.update({t: demos_digest(demos[t]) for t in tasks if t in demos})
    path = save_identifiers(sidecar_path(stem), table)
    return {"identifiers": str(path), "tasks": len(tasks),
            "tasks_recognisable": sum(1 for t in tasks if t in table.task_digests)}


def read_demonstrations(folder: Path) -> dict[str, list[tuple[Any, Any]]]:
    """Task id -> demonstration pairs from every `*_challenges.json` under `folder`."""
    files = sorted(folder.glob("*challenges.json"))
    if not files:
        raise ValueError(f"{folder}: no ARC *_challenges.json files")
    demos: dict[str, list[tuple[Any, Any]]] = {}
    for path in files:
        for task_id, body in json.loads(path.read_text()).items():
            demos[task_id] = [(pair["input"], pair["output"]) for pair in body["train"]]
    return demos
