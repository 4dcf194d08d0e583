"""What operators see and act on: dead letters, parked webhook deliveries, unroutable and
overdue referrals, and the console's sessions (SQLAlchemy Core on one connection)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from adapters.ledger.tables import dead_letters, operator_sessions, referrals, webhook_deliveries
from adapters.sealing import Sealer
from contracts.codes import ReferralStatus
from contracts.events.deadletter import DeadLetter
from domain.status_machine import ENDED_TASK_STATUSES

_ENDED = tuple(sorted(status.value for status in ENDED_TASK_STATUSES))


@dataclass(frozen=True)
class DeadLetterRow:
    dead_letter_id: str
    referral_id: uuid.UUID | None
    reason: str
    detail: str
    service: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None
    original_headers: dict[str, str]
    attempts: int
    failed_at: datetime
    state: str
    resolved_at: datetime | None
    resolved_by: str | None
    note: str | None
    # Personal data may be in here, sealed (adapters/sealing.py; unsealed if stored before
    # sealing): only an audited reveal or a replay opens it (``original_of``).
    original_value: str
    erased_at: datetime | None = None  # retention or an erasure emptied original_value
    claimed_by: str | None = None  # a replay's claim (state replaying), before it publishes
    claimed_at: datetime | None = None
    replay_error: str | None = None  # why the last replay did not (certainly) get through
    replay_failed_at: datetime | None = None


@dataclass(frozen=True)
class ParkedDelivery:
    event_id: str
    referral_id: uuid.UUID
    organisation_id: str
    attempts: int
    last_error: str | None
    parked_at: datetime | None


@dataclass(frozen=True)
class StuckReferral:
    referral_id: uuid.UUID
    municipality_code: str | None
    organisation_id: str | None
    status: str
    reason: str
    since: datetime


@dataclass(frozen=True)
class OperatorSession:
    username: str
    role: str
    csrf_token: str
    expires_at: datetime


def referral_id_of(letter: DeadLetter) -> uuid.UUID | None:
    """The referral a dead letter is about: its key, or the CloudEvent's subject."""
    candidates = [letter.original_key]
    try:
        value = json.loads(letter.original_value)
    except ValueError:
        value = None
    if isinstance(value, dict):
        data = value.get("data")
        candidates += [
            value.get("subject"),
            data.get("referral_id") if isinstance(data, dict) else None,
        ]
    for candidate in candidates:
        try:
            return uuid.UUID(str(candidate))
        except ValueError:
            continue
    return None


def original_of(letter: DeadLetterRow, sealer: Sealer) -> str:
    """The letter's original record, opened (``SealError`` if it cannot be)."""
    return sealer.open(letter.original_value, bound_to=letter.dead_letter_id)


class Operations:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # Dead letters -----------------------------------------------------------------------

    def record_dead_letter(self, dead_letter_id: str, letter: DeadLetter, sealer: Sealer) -> bool:
        """Keep a dead letter (once per id, so a redelivered record is harmless), its
        original record sealed and bound to its id."""
        inserted = self.connection.execute(
            pg_insert(dead_letters)
            .values(
                dead_letter_id=dead_letter_id,
                referral_id=referral_id_of(letter),
                reason=letter.reason,
                detail=letter.detail,
                service=letter.service,
                original_topic=letter.original_topic,
                original_partition=letter.original_partition,
                original_offset=letter.original_offset,
                original_key=letter.original_key,
                original_value=sealer.seal(letter.original_value, bound_to=dead_letter_id),
                original_headers=letter.original_headers,
                attempts=letter.attempts,
                failed_at=letter.failed_at,
                state="parked",
            )
            .on_conflict_do_nothing(index_elements=["dead_letter_id"])
            .returning(dead_letters.c.dead_letter_id)
        ).first()
        return inserted is not None

    def dead_letters(
        self, state: str | None = "parked", referral_id: uuid.UUID | None = None, limit: int = 200
    ) -> list[DeadLetterRow]:
        query = select(dead_letters).order_by(dead_letters.c.failed_at.desc()).limit(limit)
        if state is not None:
            query = query.where(dead_letters.c.state == state)
        if referral_id is not None:
            query = query.where(dead_letters.c.referral_id == referral_id)
        return [DeadLetterRow(**row._mapping) for row in self.connection.execute(query)]

    def dead_letter(self, dead_letter_id: str, *, for_update: bool = False) -> DeadLetterRow | None:
        query = select(dead_letters).where(dead_letters.c.dead_letter_id == dead_letter_id)
        if for_update:
            query = query.with_for_update()
        row = self.connection.execute(query).one_or_none()
        return None if row is None else DeadLetterRow(**row._mapping)

    def resolve_dead_letter(
        self, dead_letter_id: str, state: str, *, by: str, note: str, at: datetime
    ) -> None:
        self.connection.execute(
            update(dead_letters)
            .where(dead_letters.c.dead_letter_id == dead_letter_id)
            .values(state=state, resolved_by=by, note=note, resolved_at=at)
        )

    def dead_letter_counts(self) -> dict[tuple[str, str], int]:
        """(state, reason) → count."""
        rows = self.connection.execute(
            select(dead_letters.c.state, dead_letters.c.reason, func.count()).group_by(
                dead_letters.c.state, dead_letters.c.reason
            )
        )
        return {(state, reason): count for state, reason, count in rows}

    # Webhook deliveries -----------------------------------------------------------------

    def webhook_counts(self) -> dict[str, int]:
        rows = self.connection.execute(
            select(webhook_deliveries.c.state, func.count()).group_by(webhook_deliveries.c.state)
        )
        return {state: count for state, count in rows}

    def parked_deliveries(
        self,
        limit: int = 200,
        *,
        referral_id: uuid.UUID | None = None,
        event_id: str | None = None,
    ) -> list[ParkedDelivery]:
        query = (
            select(
                webhook_deliveries.c.event_id,
                webhook_deliveries.c.referral_id,
                webhook_deliveries.c.organisation_id,
                webhook_deliveries.c.attempts,
                webhook_deliveries.c.last_error,
                webhook_deliveries.c.finished_at.label("parked_at"),
            )
            .where(webhook_deliveries.c.state == "parked")
            .order_by(webhook_deliveries.c.finished_at.desc())
            .limit(limit)
        )
        if referral_id is not None:
            query = query.where(webhook_deliveries.c.referral_id == referral_id)
        if event_id is not None:
            query = query.where(webhook_deliveries.c.event_id == event_id)
        return [ParkedDelivery(**row._mapping) for row in self.connection.execute(query)]

    def parked_delivery(self, event_id: str) -> ParkedDelivery | None:
        found = self.parked_deliveries(1, event_id=event_id)
        return found[0] if found else None

    def requeue_delivery(self, event_id: str, at: datetime) -> bool:
        """A parked delivery is tried again from scratch (its age counts from now)."""
        changed = self.connection.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.event_id == event_id)
            .where(webhook_deliveries.c.state == "parked")
            .values(
                state="pending", attempts=0, next_attempt_at=at, created_at=at, finished_at=None
            )
        )
        return changed.rowcount == 1

    def discard_delivery(self, event_id: str, at: datetime) -> bool:
        changed = self.connection.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.event_id == event_id)
            .where(webhook_deliveries.c.state == "parked")
            .values(state="discarded", finished_at=at)
        )
        return changed.rowcount == 1

    # Referrals that need a person -------------------------------------------------------

    def unroutable_referrals(self, limit: int = 200) -> list[StuckReferral]:
        rows = self.connection.execute(
            select(referrals)
            .where(referrals.c.organisation_id.is_(None))
            .where(referrals.c.status == ReferralStatus.ON_HOLD.value)
            .order_by(referrals.c.updated_at.desc())
            .limit(limit)
        )
        return [
            StuckReferral(
                r.referral_id, r.municipality_code, None, r.status, "unroutable", r.updated_at
            )
            for r in rows
        ]

    def overdue_referrals(self, limit: int = 200) -> list[StuckReferral]:
        """Open referrals that missed a service level (the feedback service's timers)."""
        rows = self.connection.execute(
            select(referrals)
            .where(
                or_(
                    referrals.c.received_overdue_at.is_not(None),
                    referrals.c.contact_overdue_at.is_not(None),
                )
            )
            .where(referrals.c.status.not_in(_ENDED))
            .order_by(referrals.c.updated_at.desc())
            .limit(limit)
        )
        return [_overdue(r) for r in rows]

    def find_referral(self, query: str) -> uuid.UUID | None:
        """A referral by its id, its Task id or the GP's ServiceRequest identifier."""
        query = query.strip()
        try:
            as_uuid = uuid.UUID(query)
        except ValueError:
            as_uuid = None
        if as_uuid is not None:
            condition: Any = or_(referrals.c.referral_id == as_uuid, referrals.c.task_id == as_uuid)
        else:
            condition = referrals.c.service_request_value == query
        return self.connection.execute(
            select(referrals.c.referral_id).where(condition).limit(1)
        ).scalar_one_or_none()

    # Sessions ---------------------------------------------------------------------------

    def open_session(
        self,
        session_hash: str,
        username: str,
        role: str,
        csrf_token: str,
        *,
        at: datetime,
        expires_at: datetime,
    ) -> None:
        self.connection.execute(
            delete(operator_sessions).where(operator_sessions.c.expires_at < at)
        )
        self.connection.execute(
            insert(operator_sessions).values(
                session_hash=session_hash,
                username=username,
                role=role,
                csrf_token=csrf_token,
                created_at=at,
                expires_at=expires_at,
            )
        )

    def live_session(
        self, session_hash: str, *, now: datetime, extend_to: datetime
    ) -> OperatorSession | None:
        """The session if it has not expired; each use extends it (idle timeout)."""
        row = self.connection.execute(
            update(operator_sessions)
            .where(operator_sessions.c.session_hash == session_hash)
            .where(operator_sessions.c.expires_at > now)
            .values(expires_at=extend_to)
            .returning(
                operator_sessions.c.username,
                operator_sessions.c.role,
                operator_sessions.c.csrf_token,
                operator_sessions.c.expires_at,
            )
        ).one_or_none()
        return None if row is None else OperatorSession(**row._mapping)

    def close_session(self, session_hash: str) -> None:
        self.connection.execute(
            delete(operator_sessions).where(operator_sessions.c.session_hash == session_hash)
        )


def _overdue(row: Any) -> StuckReferral:
    missed = "first contact" if row.contact_overdue_at is not None else "receipt"
    since = row.contact_overdue_at or row.received_overdue_at
    return StuckReferral(
        row.referral_id,
        row.municipality_code,
        row.organisation_id,
        row.status,
        f"{missed} overdue",
        since,
    )
