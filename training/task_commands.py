"""Subcommands a task brings of its own, by task name: the one place training/ maps a task to
commands. Every other `trm` command serves any registered task; a task whose data or evaluation
has a shape of its own (ARC: `trm data-arc` builds augmented arrays from the published tasks,
`trm eval-arc` votes over versions) adds its parsers here."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from training import arc_commands

TASK_COMMANDS: dict[str, Callable[[argparse._SubParsersAction], None]] = {
    "arc": arc_commands.add_parsers,
}
