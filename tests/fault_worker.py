"""`python tests/fault_worker.py drop|slow`: a broker worker process with an injected fault, for
the broker fault tests (tests/redis_helpers.py starts it in place of `python -m app.worker_main`).

drop: take jobs and never finish them (a worker that hangs); slow: 5 ms more per job step, so a
batch is still running when a test kills the worker.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout's app/

from app.broker_worker import BrokerWorker, Delivery  # noqa: E402
from app.registry import ModelEntry  # noqa: E402
from app.worker_main import main  # noqa: E402
from trm_core.engine import StepUpdate  # noqa: E402

log = logging.getLogger("fault_worker")


class DroppingWorker(BrokerWorker):
    def _take(self, entry: ModelEntry, message_id: str, fields: dict[str, str]) -> None:
        log.warning("fault injection: dropping job %s", fields.get("job"))


class SlowWorker(BrokerWorker):
    def _on_step(self, delivery: Delivery, update: StepUpdate) -> None:
        time.sleep(0.005)
        super()._on_step(delivery, update)


FAULTS: dict[str, Any] = {"drop": DroppingWorker, "slow": SlowWorker}

if __name__ == "__main__":
    sys.exit(main([], prog="fault_worker.py", worker_class=FAULTS[sys.argv[1]]))
