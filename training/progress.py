"""A one-line progress bar for training runs (stderr), plus evaluation summaries."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from trm_core.evaluate import format_table


class ProgressBar:
    """Redraws one status line: step/total, loss, accuracy, steps/s, time left."""

    def __init__(self, total_steps: int, stream: TextIO = sys.stderr, width: int = 24) -> None:
        self.total = total_steps
        self.stream = stream
        self.width = width
        self.interactive = stream.isatty()
        self.last_print = 0.0

    def __call__(self, metrics: dict[str, float]) -> None:
        step = int(metrics["step"])
        done = int(self.width * step / self.total)
        bar = "#" * done + "." * (self.width - done)
        rate = metrics.get("steps_per_s", 0.0)
        left = (self.total - step) / rate if rate > 0 else 0.0
        line = (f"[{bar}] {step}/{self.total} loss {metrics['loss']:.4f} "
                f"cells {metrics['cell_acc']:.3f} exact {metrics['exact']:.3f} "
                f"{rate:.2f} steps/s lr {metrics['lr']:.2e} eta {_clock(left)}")
        if self.interactive:
            self.stream.write("\r" + line)
        elif time.monotonic() - self.last_print >= 10 or step == self.total:
            self.stream.write(line + "\n")
            self.last_print = time.monotonic()
        self.stream.flush()

    def evaluation(self, report: dict[str, Any]) -> None:
        if self.interactive:
            self.stream.write("\n")
        overall = report["overall"]
        self.stream.write(f"eval @ step {report['step']}: exact {overall['exact_accuracy']:.2%} "
                          f"(best {report['best_exact']:.2%})\n{format_table(report)}\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
