"""Where jobs run: the `base.Runner` interface and its two implementations, chosen once, when
the app is created, by `make_runner`."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.runners.base import Runner
    from app.service import SolveService


def make_runner(service: SolveService) -> Runner:
    """The broker runner when `TRM_REDIS_URL` is set (imported only then, so the local
    default needs no redis), else the local one."""
    if service.settings.redis_url:
        from app.runners.broker import BrokerRunner, connect

        return BrokerRunner(service.settings, service.registry, service.ledger, service.metrics,
                            connect(service.settings))
    from app.runners.local import LocalRunner

    return LocalRunner(service.settings, service.registry, service.ledger, service.metrics)
