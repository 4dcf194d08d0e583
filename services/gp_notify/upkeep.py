"""The subscriptions' upkeep loop (every ``BRUG_NOTIFY_POLL_SECONDS``): the handshake to
``requested`` subscriptions (2xx → ``active``, else ``error``) and heartbeats to ``active``
ones whose heartbeat period passed without anything sent (a failed heartbeat is retried
with backoff by ``retries.py``, as a failed event is).

Each subscription is claimed (row locked), greeted and settled in one transaction, so two
replicas never both send it the same handshake or heartbeat.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger.subscriptions import SubscriptionRow, Subscriptions
from domain.backoff import Backoff
from services.gp_notify import SERVICE
from services.gp_notify.endpoints import Endpoints, log_outcome

log = structlog.get_logger(f"brug.{SERVICE}")


class Upkeep:
    """Handshakes and heartbeats; ``run_forever`` is the loop."""

    def __init__(
        self, engine: AsyncEngine, endpoints: Endpoints, backoff: Backoff, *, poll_seconds: float
    ) -> None:
        self._engine = engine
        self._endpoints = endpoints
        self._backoff = backoff
        self._poll_seconds = poll_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.handshakes()
                await self.heartbeats()
            except Exception:
                log.exception("notify round failed; trying again")
            await asyncio.sleep(self._poll_seconds)

    async def handshakes(self) -> None:
        async with self._engine.begin() as connection:
            waiting = await connection.run_sync(lambda c: Subscriptions(c).claim_requested())
            bodies = [self._endpoints.bundle(s, "requested", "handshake", 0) for s in waiting]
            failures = await self._send_all(waiting, bodies)
            for subscription, failure in zip(waiting, failures, strict=True):
                await _settle(connection, subscription, failure, activate=True)
                log_outcome("handshake", subscription, failure)

    async def heartbeats(self) -> None:
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            due = await connection.run_sync(lambda c: Subscriptions(c).claim_heartbeats_due(now))
            bodies = [
                self._endpoints.bundle(s, "active", "heartbeat", s.events_since_start) for s in due
            ]
            failures = await self._send_all(due, bodies)
            for subscription, failure in zip(due, failures, strict=True):
                if failure is None:
                    await _settle(connection, subscription, failure, activate=False)
                else:
                    await connection.run_sync(
                        _retry_later, subscription, failure, now, self._backoff.next_attempt(now, 1)
                    )
                log_outcome("heartbeat", subscription, failure)

    async def _send_all(
        self, subscriptions: list[SubscriptionRow], bodies: list[dict[str, Any]]
    ) -> list[str | None]:
        """All at once, each bounded by the HTTP client's timeout and its attempts: one slow
        practice's endpoint does not hold up the others' handshakes and heartbeats."""
        return await asyncio.gather(
            *(self._endpoints.post(s, b) for s, b in zip(subscriptions, bodies, strict=True))
        )


async def _settle(
    connection: AsyncConnection,
    subscription: SubscriptionRow,
    failure: str | None,
    *,
    activate: bool,
) -> None:
    at = datetime.now(UTC)
    identifier = subscription.subscription_id
    if failure is None:
        await connection.run_sync(
            lambda c: Subscriptions(c).sent(identifier, at, activate=activate)
        )
    else:
        await connection.run_sync(lambda c: Subscriptions(c).failed(identifier, failure))


def _retry_later(
    connection: Connection, subscription: SubscriptionRow, failure: str, now: datetime, at: datetime
) -> None:
    Subscriptions(connection).retry_later(subscription.subscription_id, failure, now, at)
