"""Helpers of the in-process handler tests: the ledger's rows around a handler, its
broker's counts, and a catcher of dead letters on the in-memory broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select

from adapters.ledger.repository import Ledger, ReferralRow
from adapters.ledger.tables import outbox
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import DeadLetter

CLOUDEVENTS = {"content-type": "application/cloudevents+json"}


def add_referral(engine: Engine, municipality_code: str) -> uuid.UUID:
    """A bare referral in the ledger, as the intake leaves it before routing."""
    referral_id = uuid.uuid4()
    with engine.begin() as connection:
        Ledger(connection).add_referral(referral_id, municipality_code, datetime.now(UTC))
    return referral_id


def referral(engine: Engine, referral_id: uuid.UUID) -> ReferralRow:
    with engine.connect() as connection:
        row = Ledger(connection).referral(referral_id)
    assert row is not None, f"referral {referral_id} is not in the ledger"
    return row


def outbox_rows(engine: Engine, referral_id: uuid.UUID) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(outbox).where(outbox.c.referral_id == referral_id).order_by(outbox.c.id)
            ).all()
        )


def handled(service: str, event_type: str) -> float:
    """Records of ``event_type`` the service's handler returned from (its broker counts them)."""
    labels = {"service": service, "type": event_type}
    return REGISTRY.get_sample_value("brug_messages_handled_total", labels) or 0.0


class DeadLetters:
    """Every dead letter published on the in-memory broker, as the console would see it."""

    def __init__(self, broker: KafkaBroker) -> None:
        self.received: list[CloudEvent[DeadLetter]] = []

        @broker.subscriber(topics.DEAD_LETTER)
        async def catch(event: CloudEvent[DeadLetter]) -> None:
            self.received.append(event)

    def for_key(self, key: str) -> list[DeadLetter]:
        return [event.data for event in self.received if event.data.original_key == key]
