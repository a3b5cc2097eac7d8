"""Confidence calibration: bins, pooling to a monotone mapping, the card round trip."""

from __future__ import annotations

import numpy as np
import pytest

from trm_core.calibration import Calibration, fit, format_table


def test_rates_per_bin_become_a_monotone_mapping() -> None:
    raw = np.array([0.5] * 20 + [0.995] * 20 + [0.9995] * 20 + [1.0] * 40)
    verified = np.array([True] * 4 + [False] * 16 + [True] * 12 + [False] * 8
                        + [True] * 8 + [False] * 12 + [True] * 38 + [False] * 2)
    calibration, table = fit(raw, verified)
    assert [row["answers"] for row in table] == [20, 20, 20, 40]
    assert [row["verify_rate"] for row in table] == [0.2, 0.6, 0.4, 0.95]
    # Laplace's rule (v + 1) / (n + 2): 5/22, 13/22, 9/22, 39/42; the middle two violate
    # monotonicity and pool to their weighted mean
    assert calibration.values == (0.2273, 0.5, 0.5, 0.9286)
    assert calibration(0.1) == 0.2273 and calibration(0.996) == 0.5
    assert calibration(1.0) == 0.9286
    assert sum(row["answers"] for row in table) == len(raw)
    assert [row["raw_from"] for row in table] == [0.0, 0.9, 0.999, 0.9999]  # empty bins joined
    assert "[0.9999, 1]" in format_table(table)


def test_small_bins_join_the_bin_above() -> None:
    raw = np.array([0.95] * 3 + [1.0] * 30)
    calibration, table = fit(raw, np.array([False] * 3 + [True] * 30), min_answers=10)
    assert len(table) == 1 and table[0]["raw_from"] == 0.0 and table[0]["answers"] == 33
    assert calibration.values == (round(31 / 35, 4),)


def test_all_verified_is_not_a_certainty() -> None:
    calibration, table = fit(np.ones(862), np.ones(862, dtype=bool))
    assert table[0]["verify_rate"] == 1.0 and calibration.values == (round(863 / 864, 4),)


def test_card_round_trip_and_bad_entries() -> None:
    calibration, _ = fit(np.linspace(0.9, 1.0, 50), np.arange(50) % 3 > 0)
    entry = {"edges": list(calibration.edges), "values": list(calibration.values)}
    assert Calibration.from_card(entry) == calibration
    with pytest.raises(ValueError, match="edges or values"):
        Calibration.from_card({"edges": [0.0]})
    with pytest.raises(ValueError, match="ascend"):
        Calibration((0.0, 0.9), (0.8, 0.1))
