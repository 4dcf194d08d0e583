"""What an operator may do with something stuck: replay it or discard it, each audited.

Shared by the console and ``brug dlq``. A replay re-checks the referral first — withdrawn by
the GP, ended, or its details erased (retention or consent withdrawn) means nothing is
re-sent. A dead letter without a referral (e.g. a GP system's Bundle that could not be read)
goes back through the FHIR edge's own checks, consent included.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from adapters.kafka_admin import republish
from adapters.ledger.operations import DeadLetterRow, Operations
from adapters.ledger.repository import Ledger, ReferralRow
from domain.status_machine import has_ended, was_withdrawn

REPLAY_HEADER = "brug-replay-of"


class ActionRefused(Exception):
    """The action was not taken; the message says why, for the operator."""


@dataclass(frozen=True)
class ActionResult:
    message: str
    referral_id: uuid.UUID | None = None


def replay_refusal(referral: ReferralRow | None, details_kept: bool) -> str | None:
    """Why a referral's message must not be sent again, or None when it may."""
    if referral is None:
        return "the referral is not in the ledger"
    if was_withdrawn(referral.status):
        return "the referral was withdrawn; nothing is re-sent"
    if has_ended(referral.status):
        return f"the referral has ended ({referral.status.value}); nothing is re-sent"
    if not details_kept:
        return "the referral's details were erased (retention or consent); nothing is re-sent"
    return None


def replay_dead_letter(
    engine: Engine, bootstrap_servers: str, dead_letter_id: str, *, actor: str, note: str
) -> ActionResult:
    with engine.begin() as connection:
        letter = _parked_letter(connection, dead_letter_id)
        _check_referral(connection, letter.referral_id)
        if letter.reason == "undeliverable":
            message = _requeue_for(connection, letter)
        else:
            republish(
                bootstrap_servers,
                letter.original_topic,
                letter.original_value.encode(),
                letter.original_key.encode() if letter.original_key is not None else None,
                [*_headers(letter), (REPLAY_HEADER, dead_letter_id.encode())],
            )
            message = f"replayed to {letter.original_topic}"
        _resolve(connection, letter, "replayed", actor, note, message)
    return ActionResult(message, letter.referral_id)


def discard_dead_letter(
    engine: Engine, dead_letter_id: str, *, actor: str, note: str
) -> ActionResult:
    if not note.strip():
        raise ActionRefused("say why it is discarded: a note is required")
    with engine.begin() as connection:
        letter = _parked_letter(connection, dead_letter_id)
        _resolve(connection, letter, "discarded", actor, note, "discarded")
    return ActionResult("discarded", letter.referral_id)


def requeue_delivery(engine: Engine, event_id: str, *, actor: str, note: str) -> ActionResult:
    with engine.begin() as connection:
        operations = Operations(connection)
        delivery = operations.parked_delivery(event_id)
        if delivery is None:
            raise ActionRefused("no parked webhook delivery with that id")
        _check_referral(connection, delivery.referral_id)
        operations.requeue_delivery(event_id, datetime.now(UTC))
        _audit(connection, actor, "requeued-delivery", delivery.referral_id, event_id, note)
    return ActionResult("requeued: the webhook is tried again now", delivery.referral_id)


def discard_delivery(engine: Engine, event_id: str, *, actor: str, note: str) -> ActionResult:
    if not note.strip():
        raise ActionRefused("say why it is discarded: a note is required")
    with engine.begin() as connection:
        operations = Operations(connection)
        delivery = operations.parked_delivery(event_id)
        if delivery is None or not operations.discard_delivery(event_id, datetime.now(UTC)):
            raise ActionRefused("no parked webhook delivery with that id")
        _audit(connection, actor, "discarded-delivery", delivery.referral_id, event_id, note)
    return ActionResult("discarded", delivery.referral_id)


def _parked_letter(connection: Connection, dead_letter_id: str) -> DeadLetterRow:
    letter = Operations(connection).dead_letter(dead_letter_id, for_update=True)
    if letter is None:
        raise ActionRefused("no dead letter with that id")
    if letter.state != "parked":
        raise ActionRefused(f"already {letter.state} by {letter.resolved_by}")
    return letter


def _check_referral(connection: Connection, referral_id: uuid.UUID | None) -> None:
    if referral_id is None:
        return
    ledger = Ledger(connection)
    refusal = replay_refusal(ledger.referral(referral_id), ledger.details(referral_id) is not None)
    if refusal is not None:
        raise ActionRefused(refusal)


def _requeue_for(connection: Connection, letter: DeadLetterRow) -> str:
    """A parked webhook's dead letter: replaying the record would be deduplicated by
    webhook_delivery, so the parked delivery itself is tried again."""
    operations = Operations(connection)
    parked = (
        operations.parked_deliveries(referral_id=letter.referral_id)
        if letter.referral_id is not None
        else []
    )
    if not parked:
        raise ActionRefused("its webhook delivery is no longer parked")
    for delivery in parked:
        operations.requeue_delivery(delivery.event_id, datetime.now(UTC))
    return "webhook delivery requeued"


def _headers(letter: DeadLetterRow) -> list[tuple[str, bytes]]:
    return [
        (name, value.encode())
        for name, value in letter.original_headers.items()
        if name != REPLAY_HEADER
    ]


def _resolve(
    connection: Connection, letter: DeadLetterRow, state: str, actor: str, note: str, what: str
) -> None:
    Operations(connection).resolve_dead_letter(
        letter.dead_letter_id, state, by=actor, note=note, at=datetime.now(UTC)
    )
    action = "replayed-dead-letter" if state == "replayed" else "discarded-dead-letter"
    _audit(connection, actor, action, letter.referral_id, letter.dead_letter_id, note, what)


def _audit(
    connection: Connection,
    actor: str,
    action: str,
    referral_id: uuid.UUID | None,
    subject: str,
    note: str,
    outcome: str = "",
) -> None:
    Ledger(connection).audit(
        actor=actor,
        action=action,
        referral_id=referral_id,
        detail={"subject": subject, "note": note[:2000], "outcome": outcome},
    )
