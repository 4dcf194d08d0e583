"""Outbox messages that more than one service writes (a service never imports another)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from adapters.ledger.repository import Receipt
from adapters.outbox.store import OutboxMessage, cloudevent_message
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp


def receipt_message(
    receipt: Receipt, channel: Literal["pull", "push"], at: datetime, *, service: str
) -> OutboxMessage:
    """``FeedbackReceivedByGp`` for the organisation, whichever way the GP system had it:
    one event id per resource, so pull and push never announce the same receipt twice."""
    event = CloudEvent[FeedbackReceivedByGp].wrap(
        FeedbackReceivedByGp(
            referral_id=receipt.referral_id,
            organisation_id=receipt.organisation_id,
            resource=receipt.resource,
            channel=channel,
            received_at=at,
        ),
        service=service,
        event_id=str(uuid.uuid5(receipt.referral_id, f"receipt/{receipt.resource}")),
    )
    return cloudevent_message(
        event, topics.social_referrals(receipt.organisation_id), referral_id=receipt.referral_id
    )
