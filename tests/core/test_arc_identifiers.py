"""The ARC identifier table: our sidecar, the builder's list and official names all read the
same way; demonstration digests ignore pair order and container type."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trm_core.tasks.arc.identifiers import (
    IdentifierMap,
    VersionRef,
    demos_digest,
    load_identifiers,
    save_identifiers,
    sidecar_path,
)


def test_digest_ignores_pair_order_and_containers() -> None:
    a = ([[1, 2]], [[3]])
    b = (np.array([[0], [5]]), np.array([[5, 0]]))
    assert demos_digest([a, b]) == demos_digest([b, a])
    assert demos_digest([a]) != demos_digest([([[2, 1]], [[3]])])
    assert demos_digest([([[1, 2]], [[3]])]) != demos_digest([([[1], [2]], [[3]])])  # shape


def test_sidecar_round_trip(tmp_path: Path) -> None:
    table = IdentifierMap([None, VersionRef("t1", 0, 0, "0123456789"),
                           VersionRef("t1", 1, 3, "0213456789")], {"t1": "ab"})
    path = save_identifiers(sidecar_path(tmp_path / "arc"), table)
    assert path.name == "arc.identifiers.json"
    loaded = load_identifiers(path)
    assert loaded.versions == table.versions and loaded.task_digests == {"t1": "ab"}
    assert loaded.rows_of() == {"t1": [1, 2]}
    assert loaded.task_by_digest() == {"ab": "t1"}


def test_builder_and_official_lists(tmp_path: Path) -> None:
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps([None, ["t1", 0, 0, "0123456789"], ["t1", 1, 6, "0987654321"]]))
    official = tmp_path / "official.json"
    official.write_text(json.dumps(["<blank>", "t1", "t1|||t6|||0987654321"]))
    assert load_identifiers(ours).versions == load_identifiers(official).versions
    symmetry = load_identifiers(official).versions[2].symmetry  # type: ignore[union-attr]
    assert symmetry.dihedral_id == 6 and symmetry.colour_map.tolist()[1] == 9


@pytest.mark.parametrize("entry", ["t1|||x3|||0123456789", "t1|||t9|||0123456789",
                                   "t1|||t1|||1023456789", 7])
def test_malformed_entries_name_the_row(tmp_path: Path, entry: object) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(["<blank>", entry]))
    with pytest.raises(ValueError, match="identifier 1"):
        load_identifiers(path)
