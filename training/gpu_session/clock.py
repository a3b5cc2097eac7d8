"""The session's time: one clock from the start of the command, the child processes it may
have to stop, and a watchdog that ends the command if a phase overruns its own limit (a
compilation that never finishes, a hung child), so the files already in --out come back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

log = logging.getLogger(__name__)
WATCHDOG_EXIT = 3  # not 124/137, which the device tool reads as its own timeout


def process_age_s() -> float:
    """Seconds since this process started (Linux's /proc; 0 where it cannot tell)."""
    try:
        # Fields after the command name's closing parenthesis start at field 3; starttime is 22.
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime_s = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime_s - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Clock:
    """Seconds since the process started, and what is left of the limit. From the process's
    start, not the clock's: importing torch on a fresh machine takes seconds to tens of
    seconds, and the device's limit counts them."""

    def __init__(self, limit_s: float) -> None:
        self.started = time.monotonic() - process_age_s()
        self.limit_s = limit_s

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def left(self) -> float:
        return self.limit_s - self.elapsed()


_children: list[subprocess.Popen[bytes]] = []


def spawn(argv: Sequence[str], stdout: IO[Any], nice: int = 0,
          cwd: Path | None = None, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    """Start a child in its own process group (so stopping it also stops the workers it
    starts: generator pools, compiler workers), remembered for `stop_children`."""
    def lower_priority() -> None:
        os.nice(nice)

    child = subprocess.Popen(list(argv), stdout=stdout, stderr=subprocess.STDOUT, cwd=cwd,
                             env=env, start_new_session=True,
                             preexec_fn=lower_priority if nice else None)
    _children.append(child)
    return child


def stop(child: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group and reap it."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def stop_children() -> None:
    for child in _children:
        stop(child)


class Watchdog:
    """At `limit_s` after the clock's start, run `last_words` (write the summary), stop the
    children and exit the process at once. A daemon timer: it never delays a normal exit."""

    def __init__(self, clock: Clock, limit_s: float, last_words: Callable[[], None]) -> None:
        self.last_words = last_words
        delay = max(0.0, limit_s - clock.elapsed())
        self.timer = threading.Timer(delay, self._fire)
        self.timer.daemon = True

    def start(self) -> None:
        self.timer.start()

    def cancel(self) -> None:
        self.timer.cancel()

    def _fire(self) -> None:
        log.error("hard deadline reached: ending the session with what it has written")
        try:
            self.last_words()
        finally:
            stop_children()
            logging.shutdown()
            os._exit(WATCHDOG_EXIT)
