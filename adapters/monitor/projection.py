"""One Kafka record into the monitor's table: read the CloudEvent, check it came the way
Brug sends it, and move the referral's row by ``domain.monitor.dataset.project`` under the
row lock, once per event id.

The live service (``services/monitor``) and ``brug monitor rebuild`` both go through
``apply_record``, so a rebuilt row is the live one.

What is not the monitor's business (another event type, a type on a topic Brug never
sends it on, an organisation's event about another organisation's referral) and what
cannot be read is skipped and counted, never parked: the service that owns the topic
(router, feedback) answers or dead-letters it, and an operator's replay reaches the
monitor too. Nothing of a record's content is logged or kept but the row's codes and days.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from enum import StrEnum
from uuid import UUID

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import Connection, Table

from adapters.monitor.store import LIVE, MonitorStore
from contracts import topics
from contracts.cloudevents import CloudEvent, EventData
from contracts.events import (
    FeedbackReceivedByGp,
    ReferralCreated,
    ReferralOverdue,
    ReferralStatusReported,
    ReferralSubmitted,
    ReferralWithdrawn,
    SignalRaised,
)
from domain.monitor.dataset import project, referral_pseudonym


class Outcome(StrEnum):
    APPLIED = "applied"
    REPEAT = "repeat"  # this event id was applied before: a redelivery or a replay
    IGNORED = "ignored"  # not the monitor's business, or not sent the way Brug sends it
    UNREADABLE = "unreadable"


EVENTS = Counter(
    "brug_monitor_events",
    "Kafka records the monitor read, by outcome: applied to the dataset, a repeat of an "
    "applied event, ignored (another type, or not sent the way Brug sends it), unreadable.",
    ["outcome"],
)

# Where Brug sends each event the monitor reads: a type on another topic was not sent by
# Brug (a case system writes its status topic only), so it is not counted.
_SOCIAL_REFERRALS = re.compile(r"brug\.social\.referrals\.([a-z0-9][a-z0-9-]*)\.v1")
_SOCIAL_STATUS = re.compile(r"brug\.social\.status\.([a-z0-9][a-z0-9-]*)\.v1")
_EXPECTED: tuple[tuple[re.Pattern[str], tuple[type[EventData], ...]], ...] = (
    (re.compile(re.escape(topics.REFERRALS_SUBMITTED)), (ReferralSubmitted,)),
    (re.compile(re.escape(topics.OVERDUE)), (ReferralOverdue,)),
    (_SOCIAL_REFERRALS, (ReferralCreated, ReferralWithdrawn, FeedbackReceivedByGp)),
    (_SOCIAL_STATUS, (ReferralStatusReported, SignalRaised)),
)
REFERRAL_TOPICS = re.compile(
    rf"{re.escape(topics.REFERRALS_SUBMITTED)}|{_SOCIAL_REFERRALS.pattern}"
)
"""The topics that say where a referral went: read before the statuses in a rebuild."""
MONITORED_TOPICS = re.compile(
    "^(?:" + "|".join(f"(?:{pattern.pattern})" for pattern, _ in _EXPECTED) + ")$"
)
"""Every topic the monitor reads (its pattern subscription, and what a rebuild replays)."""


class _Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str


def _expected_types(topic: str) -> tuple[tuple[type[EventData], ...], str | None]:
    """The types Brug sends on ``topic``, and the organisation the topic belongs to."""
    for pattern, types in _EXPECTED:
        if found := pattern.fullmatch(topic):
            return types, found.group(1) if found.groups() else None
    return (), None


def event_digest(event_id: str, key: str) -> str:
    """What the row keeps of an applied event: a keyed digest of its id. Event ids derive
    from referral ids (uuid5), so the ids themselves would lead back to the referral."""
    message = b"brug:monitor:event:v1:" + event_id.encode("utf-8", "replace")
    return hmac.new(key.encode("utf-8"), message, hashlib.sha256).hexdigest()[:32]


def read(topic: str, value: bytes) -> tuple[str, EventData] | Outcome:
    """The record's (event id, payload) if it is an event the monitor counts."""
    types, organisation = _expected_types(topic)
    try:
        kind = _Envelope.model_validate_json(value).type
    except ValidationError:
        return Outcome.UNREADABLE
    model = next((t for t in types if kind == t.EVENT_TYPE), None)
    if model is None:
        return Outcome.IGNORED
    try:
        event = CloudEvent[model].model_validate_json(value)  # type: ignore[valid-type]
    except ValidationError:
        return Outcome.UNREADABLE
    sender = getattr(event.data, "organisation_id", organisation)
    if organisation is not None and sender != organisation:
        return Outcome.IGNORED  # an event about another organisation's referral
    return event.id, event.data


def apply_record(
    connection: Connection, topic: str, value: bytes, key: str, table: Table = LIVE
) -> Outcome:
    """Fold one record into ``table`` in the caller's transaction."""
    found = read(topic, value)
    if isinstance(found, Outcome):
        return found
    event_id, data = found
    referral_id: UUID = data.referral_id  # type: ignore[attr-defined]
    store = MonitorStore(connection, table)
    row = store.row_for_update(referral_pseudonym(referral_id, key))
    digest = event_digest(event_id, key)
    if digest in row.seen:
        return Outcome.REPEAT
    if (
        isinstance(data, ReferralStatusReported | SignalRaised)
        and row.state.organisation_id is not None
        and data.organisation_id != row.state.organisation_id
    ):
        return Outcome.IGNORED  # the referral went to another organisation
    store.save(project(row.state, data), row.seen | {digest})
    return Outcome.APPLIED


def counted(outcome: Outcome) -> Outcome:
    EVENTS.labels(outcome=outcome.value).inc()
    return outcome
