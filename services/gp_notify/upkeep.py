"""The subscriptions' upkeep loop (every ``BRUG_NOTIFY_POLL_SECONDS``): the handshake to
``requested`` subscriptions (2xx → ``active``, else ``error``) and heartbeats to ``active``
ones whose heartbeat period passed without anything sent.

Each subscription is claimed (row locked), greeted and settled in one transaction, so two
replicas never both send it the same handshake or heartbeat.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.ledger.subscriptions import SubscriptionRow, Subscriptions
from services.gp_notify import SERVICE
from services.gp_notify.endpoints import Endpoints, log_outcome

log = structlog.get_logger(f"brug.{SERVICE}")


class Upkeep:
    """Handshakes and heartbeats; ``run_forever`` is the loop."""

    def __init__(self, engine: AsyncEngine, endpoints: Endpoints, *, poll_seconds: float) -> None:
        self._engine = engine
        self._endpoints = endpoints
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
            for subscription in waiting:
                body = self._endpoints.bundle(subscription, "requested", "handshake", 0)
                failure = await self._endpoints.post(subscription, body)
                await _settle(connection, subscription, failure, activate=True)
                log_outcome("handshake", subscription, failure)

    async def heartbeats(self) -> None:
        now = datetime.now(UTC)
        async with self._engine.begin() as connection:
            due = await connection.run_sync(lambda c: Subscriptions(c).claim_heartbeats_due(now))
            for subscription in due:
                body = self._endpoints.bundle(
                    subscription, "active", "heartbeat", subscription.events_since_start
                )
                failure = await self._endpoints.post(subscription, body)
                await _settle(connection, subscription, failure, activate=False)
                log_outcome("heartbeat", subscription, failure)


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
