"""The retention sweep on a schedule: every ``BRUG_RETENTION_SWEEP_MINUTES`` the console
applies each ledger table's retention (``adapters/ledger/retention.py``). The console runs
it because it is the operators' service and one runs wherever the stack does; replicas take
turns on an advisory lock. The loop runs only while the app does (with its Kafka side)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog

from adapters.ledger.retention import sweep
from services.console import SERVICE
from services.console.web import Console

log = structlog.get_logger(f"brug.{SERVICE}")


def sweep_once(console: Console) -> None:
    """One sweep in its own transaction, on the console's synchronous engine."""
    with console.sync_engine.begin() as connection:
        done = sweep(
            connection,
            console.settings.retention_policy(),
            datetime.now(UTC),
            actor=f"service:{SERVICE}",
        )
    if done is not None and done.total():
        log.info("retention applied", **done.counts())


async def sweep_retention(console: Console) -> None:
    while True:
        try:
            await asyncio.to_thread(sweep_once, console)
        except Exception as error:  # a failed sweep is tried again at the next turn
            log.warning("retention not applied", error_type=type(error).__name__)
        await asyncio.sleep(console.settings.retention_sweep_minutes * 60)
