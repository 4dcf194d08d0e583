"""The one relay from the outbox table to Kafka.

It publishes the outbox in id order, batch by batch: a batch is sent in order on one
idempotent producer, confirmed as a whole (acks=all), and only then marked published in
the transaction that claimed it. A crash in between publishes the batch again under the
same event ids, which every consumer already treats as a repeat. It wakes on PostgreSQL
``NOTIFY`` (written by ``Outbox.add``), so it adds no polling delay, and polls slowly as
well in case a notification was lost while its listening connection was down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import structlog
from faststream.kafka import KafkaBroker
from opentelemetry.trace import SpanKind
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.outbox.store import NOTIFY_CHANNEL, Outbox, PendingMessage
from adapters.runtime.tracing import span

log = structlog.get_logger("brug.relay")

# Sends one record without waiting; the returned awaitable resolves on Kafka's ack.
Send = Callable[[PendingMessage], Awaitable[Awaitable[Any]]]

PUBLISHED = Counter(
    "brug_outbox_published", "Outbox events acknowledged by Kafka, by CloudEvents type.", ["type"]
)
PARKED = Counter(
    "brug_outbox_parked",
    "Outbox events Kafka would not take while it took others (left in the outbox, parked).",
    ["type"],
)
OLDEST_PENDING = Gauge(
    "brug_outbox_oldest_pending_seconds",
    "Age of the oldest outbox event Kafka has not acknowledged yet (0 when none waits).",
)


@dataclass
class OutboxRelay:
    engine: AsyncEngine
    send: Send
    database_url: str
    batch_size: int = 500
    poll_seconds: float = 1.0
    confirm_timeout_seconds: float = 30.0
    single_timeout_seconds: float = 5.0  # one record, after a batch failed
    # How long Kafka must refuse one record while taking others before it is parked: a
    # partition still recovering after a broker restart refuses for a while, then takes it.
    park_after: timedelta = timedelta(minutes=2)
    keep_published: timedelta = timedelta(hours=1)
    _refused_since: dict[int, datetime] = field(default_factory=dict)
    _news: asyncio.Event = field(default_factory=asyncio.Event)
    _last_purge: datetime = field(default_factory=lambda: datetime.min.replace(tzinfo=UTC))

    async def run_forever(self) -> None:
        listener = asyncio.create_task(self._listen_forever())
        try:
            while True:
                self._news.clear()
                try:
                    await self.drain()
                except Exception:  # Kafka or PostgreSQL away: the rows wait, nothing is lost
                    log.warning("relaying paused", exc_info=True)
                    await asyncio.sleep(self.poll_seconds)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._news.wait(), self.poll_seconds)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def drain(self) -> int:
        """Publish until the outbox is empty; return how many were published."""
        total = 0
        while True:
            handled = await self.publish_batch()
            total += handled
            if handled < self.batch_size:  # the outbox was emptied: no empty claim after it
                break
        await self._purge_now_and_then()
        return total

    async def publish_batch(self) -> int:
        async with self.engine.begin() as connection:
            pending = await connection.run_sync(lambda c: Outbox(c).claim(self.batch_size))
            if not pending:
                OLDEST_PENDING.set(0)
                return 0
            OLDEST_PENDING.set((datetime.now(UTC) - pending[0].created_at).total_seconds())
            published, parked = await self._send_batch(pending)
            now = datetime.now(UTC)
            await connection.run_sync(lambda c: Outbox(c).mark_published(published, now))
            await connection.run_sync(lambda c: Outbox(c).park(parked, now))
        if len(pending) < self.batch_size and len(published) + len(parked) == len(pending):
            OLDEST_PENDING.set(0)  # it claimed all there was, and nothing waits
        for message in published:
            PUBLISHED.labels(type=message.event_type).inc()
        for message, reason in parked:
            PARKED.labels(type=message.event_type).inc()
            log.error("outbox event parked", outbox_id=message.id, reason=reason)
        return len(published) + len(parked)

    async def _send_batch(
        self, pending: list[PendingMessage]
    ) -> tuple[list[PendingMessage], list[tuple[PendingMessage, str]]]:
        """What Kafka took, and what it refused long enough to be parked."""
        if not any(message.id in self._refused_since for message in pending):
            # Failing, Kafka is away or refuses one record: the records one by one tell which.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send_all(pending), self.confirm_timeout_seconds)
                return pending, []
        return await self._one_by_one(pending)

    async def _one_by_one(
        self, pending: list[PendingMessage]
    ) -> tuple[list[PendingMessage], list[tuple[PendingMessage, str]]]:
        """Each record alone. One that fails while others go through is a record Kafka
        will not take (a topic that does not exist or may not be written); once it has been
        refused like that for ``park_after`` it is parked, so it cannot hold up its key for
        ever. Until then it stays pending, and later events of its key wait behind it. If
        none goes through, Kafka is away: raise, judge nothing."""
        started = datetime.now(UTC)
        published: list[PendingMessage] = []
        failed: list[tuple[PendingMessage, str]] = []
        stuck_keys: set[str] = set()
        for message in pending:
            if message.key in stuck_keys:
                continue
            try:
                await asyncio.wait_for(self._send_and_confirm(message), self.single_timeout_seconds)
                published.append(message)
                self._refused_since.pop(message.id, None)
            except Exception as error:
                failed.append((message, type(error).__name__))
                stuck_keys.add(message.key)
        if not published:
            raise RuntimeError(f"Kafka took none of {len(pending)} outbox events")
        return published, self._refused_long_enough(failed, started)

    def _refused_long_enough(
        self, failed: list[tuple[PendingMessage, str]], now: datetime
    ) -> list[tuple[PendingMessage, str]]:
        for message, _ in failed:
            self._refused_since.setdefault(message.id, now)
        parked = [
            (m, why) for m, why in failed if now - self._refused_since[m.id] >= self.park_after
        ]
        for message, _ in parked:
            del self._refused_since[message.id]
        return parked

    async def _send_all(self, pending: list[PendingMessage]) -> None:
        # Under the one timeout too: a send waits for its topic's metadata first, which
        # for a topic that does not exist takes the producer's whole request timeout.
        confirmations = [await self._send(message) for message in pending]
        await asyncio.gather(*confirmations)

    async def _send_and_confirm(self, message: PendingMessage) -> None:
        await (await self._send(message))

    async def _send(self, message: PendingMessage) -> Awaitable[Any]:
        # The span continues the trace of the change that wrote the event; the Kafka
        # middleware puts it on the record's headers.
        with span(
            "outbox publish",
            kind=SpanKind.PRODUCER,
            traceparent=message.headers.get("traceparent"),
            referral_id=message.referral_id,
        ):
            return await self.send(message)

    async def _purge_now_and_then(self) -> None:
        now = datetime.now(UTC)
        if now - self._last_purge < timedelta(minutes=1):
            return
        self._last_purge = now
        async with self.engine.begin() as connection:
            await connection.run_sync(
                lambda c: Outbox(c).purge_published(now - self.keep_published)
            )

    async def _listen_forever(self) -> None:
        conninfo = make_url(self.database_url).set(drivername="postgresql")
        dsn = conninfo.render_as_string(hide_password=False)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._news.set()  # anything written while we were not listening
                    async for _ in conn.notifies():
                        self._news.set()
            except (psycopg.Error, OSError):
                log.warning("outbox listener reconnecting")
                await asyncio.sleep(self.poll_seconds)


def broker_sender(broker: KafkaBroker) -> Send:
    """Send through a FastStream broker (its producer is idempotent with acks=all; its
    middlewares put the trace on the record and count what was published)."""

    async def send(message: PendingMessage) -> Awaitable[Any]:
        headers = {k: v for k, v in message.headers.items() if k != "traceparent"}
        return await broker.publish(  # type: ignore[no-any-return]
            message.value,
            topic=message.topic,
            key=message.key.encode(),
            headers=headers,
            no_confirm=True,
        )

    return send
