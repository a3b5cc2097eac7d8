"""The thread that drives one engine, and the bridge from engine callbacks to the event loop.

`Engine.run` blocks, so each loaded model gets one daemon thread. Engine callbacks (`on_step`,
`on_done`) fire on that thread; the service only mutates job state on the event loop, so the bridge
hands every callback over with `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from trm_core.engine import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoopBridge:
    """Runs callbacks from any thread on one asyncio loop, in submission order."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def wrap(self, handler: Callable[[T], None]) -> Callable[[T], None]:
        """A thread-safe callable that schedules `handler(arg)` on the loop."""

        def forward(arg: T) -> None:
            try:
                self._loop.call_soon_threadsafe(handler, arg)
            except RuntimeError:
                # The loop is closed: the process is exiting and nobody waits for this event.
                log.debug("event loop closed; dropped %s", getattr(handler, "__name__", handler))

        return forward

    def wrap_first(self, handler: Callable[[T], None]) -> Callable[[T], None]:
        """Like `wrap`, but only the first call crosses to the loop; later calls are dropped on
        the calling thread, sparing the loop a wake-up per call nobody needs."""
        forward = self.wrap(handler)
        pending = [True]

        def first_only(arg: T) -> None:
            if pending:
                pending.clear()
                forward(arg)

        return first_only


class EngineThread:
    """Owns the thread running `engine.run`; a crash fails the engine's jobs instead of hanging
    their clients."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.crash: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"engine thread {self.name} already started")
        self._thread = threading.Thread(target=self._run, name=f"engine:{self.name}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine.run(self._stop)
        except BaseException as exc:  # the thread must report its death, never just vanish
            self.crash = f"{type(exc).__name__}: {exc}"
            log.exception("engine thread %s crashed", self.name)
            try:
                self.engine.fail_all(f"worker crashed: {self.crash}")
            except Exception:
                log.exception("could not fail the jobs of crashed engine thread %s", self.name)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Ask the loop to end after its current tick and wait; True when the thread ended."""
        self._stop.set()
        self.engine.wake()  # cut short an idle wait instead of sleeping it out
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.warning("engine thread %s did not stop within %.1f s", self.name, timeout_s)
            return False
        return True
