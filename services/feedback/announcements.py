"""The announcement loop: id-only ``GpResourceChanged`` notices on
``brug.gp.changes.<client>.v1`` for what changed in the ledger.

The handler only commits; announcing happens here, from the ledger, so a crash between the
two loses nothing and a burst is announced in batches. A batch is claimed, published and
recorded as announced in one transaction: after a crash it goes out again under the same
deterministic event ids. Changes made by other services (the GP's withdrawal) are found by
the poll; this service's own changes wake the loop at once (``wake``).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import structlog
from faststream.kafka import KafkaBroker
from faststream.kafka.publisher import DefaultPublisher
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.ledger.repository import Announcement, Ledger
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import GpResourceChanged
from services.feedback import CLOUDEVENTS_JSON, EVENT_IDS, SERVICE

log = structlog.get_logger(f"brug.{SERVICE}")


def gp_changes_publisher(broker: KafkaBroker) -> DefaultPublisher:
    """The changes channel, declared once (it is also the AsyncAPI document's entry)."""
    return broker.publisher(
        "brug.gp.changes.{client_id}.v1",
        title="brug.gp.changes.{client_id}.v1",
        description="Id-only: one of the GP system's Tasks or Communications changed. "
        "Key: referral id.",
        schema=CloudEvent[GpResourceChanged],
    )


class Announcer:
    """Tells GP systems what changed, from the ledger; ``run_forever`` is the loop."""

    def __init__(
        self, engine: AsyncEngine, gp_changes: DefaultPublisher, *, poll_seconds: float
    ) -> None:
        self._engine = engine
        self._gp_changes = gp_changes
        self._poll_seconds = poll_seconds
        self._changes_waiting = asyncio.Event()

    def wake(self) -> None:
        """Something was committed that GP systems should hear of: announce it now."""
        self._changes_waiting.set()

    async def run_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changes_waiting.wait(), self._poll_seconds)
            self._changes_waiting.clear()
            try:
                while await self.announce_batch():
                    pass
            except Exception:  # keep announcing; the rows stay unannounced until it works
                log.exception("announcing failed")
                await asyncio.sleep(1)

    async def announce_batch(self) -> int:
        """Publish one batch of id-only notices (in order, confirmed together), then record
        them as announced in the same transaction that claimed them."""
        async with self._engine.begin() as connection:
            owed = await connection.run_sync(lambda c: Ledger(c).claim_announcements())
            confirmations = [await self._publish_notice(item) for item in owed]
            await asyncio.gather(*confirmations)
            now = datetime.now(UTC)
            await connection.run_sync(lambda c: Ledger(c).mark_announced(owed, now))
        return len(owed)

    async def _publish_notice(self, item: Announcement) -> Any:
        notice = GpResourceChanged(
            referral_id=item.referral_id,
            resource_type=item.resource_type,  # type: ignore[arg-type]
            resource_id=item.resource_id,
            version_id=item.version,
            task_id=item.task_id,
            changed_at=item.changed_at,
        )
        event_id = str(uuid.uuid5(EVENT_IDS, f"{notice.reference()}/_history/{item.version}"))
        # Sent in order (one idempotent producer keeps the order per partition); confirmed
        # together by the caller.
        return await self._gp_changes.publish(
            CloudEvent[GpResourceChanged]
            .wrap(notice, service=SERVICE, event_id=event_id)
            .to_json_bytes(),
            topic=topics.gp_changes(item.client_id),
            key=str(item.referral_id).encode(),
            headers=CLOUDEVENTS_JSON,
            no_confirm=True,
        )
