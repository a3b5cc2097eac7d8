"""Work measured by counting, not by the clock: how many Python and C-level calls a function
makes. The count is the same on every machine and under any load, so a test can bound the work
per row (or show that it does not grow with the batch) where a wall-clock bound would depend on
the CPU and on whatever else runs beside the tests."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def count_calls(fn: Callable[[], object]) -> int:
    """Function calls (Python functions and builtins alike) made while running `fn`."""
    calls = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(previous)
    return calls
