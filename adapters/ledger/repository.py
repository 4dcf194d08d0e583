"""Reads and writes of the referral ledger (SQLAlchemy Core on one connection/transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, func, insert, select, text, update

from adapters.ledger.tables import (
    UNANNOUNCED_TASK,
    audit_log,
    communications,
    idempotency_keys,
    referral_details,
    referral_status_history,
    referrals,
)
from contracts.codes import ReferralStatus
from domain.status_machine import ENDED_TASK_STATUSES


@dataclass(frozen=True)
class NewReferral:
    """Everything the intake stores for one accepted referral."""

    referral_id: UUID
    task_id: UUID
    client_id: str
    requester_agb: str
    service_request_system: str
    service_request_value: str
    municipality_code: str
    themes: list[str]
    age_band: str
    urgency: str
    submitted_at: datetime
    details: dict[str, Any]
    retain_until: datetime
    trace_id: str | None = None


@dataclass(frozen=True)
class ReferralRow:
    referral_id: UUID
    organisation_id: str | None
    municipality_code: str | None
    status: ReferralStatus
    task_id: UUID | None = None
    client_id: str | None = None
    requester_agb: str | None = None
    service_request_system: str | None = None
    service_request_value: str | None = None
    status_reason: str | None = None
    version: int = 1
    created_at: datetime | None = None
    updated_at: datetime | None = None
    themes: list[str] = field(default_factory=list)
    age_band: str | None = None
    urgency: str | None = None
    submitted_event_published: bool = True
    welfare_status: str | None = None
    status_sequence: int = 0
    business_status: str | None = None
    outcome: dict[str, Any] | None = None
    received_due_at: datetime | None = None
    contact_due_at: datetime | None = None
    received_overdue_at: datetime | None = None
    contact_overdue_at: datetime | None = None
    changes_published_version: int = 0
    reported_status: str | None = None
    reported_sequence: int = 0

    @property
    def withdrawn_by_gp(self) -> bool:
        """Cancelled by the GP (a patient's withdrawal, reported by the welfare side, is not)."""
        return self.status is ReferralStatus.CANCELLED and self.welfare_status != (
            "withdrawn-by-patient"
        )


@dataclass(frozen=True)
class CommunicationRow:
    communication_id: UUID
    referral_id: UUID
    category: str  # feedback | signal
    sender: str
    payload: dict[str, Any]
    sent_at: datetime
    action_task_id: UUID | None = None
    published: bool = False


@dataclass(frozen=True)
class Announcement:
    """One id-only notice owed to a GP system: a Task version or a Communication."""

    referral_id: UUID
    client_id: str
    task_id: UUID
    resource_type: str  # Task | Communication
    resource_id: UUID
    version: int
    changed_at: datetime


@dataclass(frozen=True)
class DueTimer:
    referral_id: UUID
    organisation_id: str
    timer: str  # received | first-contact
    due_at: datetime


@dataclass(frozen=True)
class Assignment:
    outcome: str  # "assigned" | "already-assigned" | "unknown"
    organisation_id: str | None
    published: bool
    held: bool = False  # on hold as unroutable until now (an operator's replay)


@dataclass(frozen=True)
class StatusChange:
    status: ReferralStatus
    source: str
    occurred_at: datetime


@dataclass(frozen=True)
class Receipt:
    """The first time a GP system had a piece of feedback: tell the organisation."""

    referral_id: UUID
    organisation_id: str
    resource: str  # Task/<id>/_history/<version> | Communication/<id>


@dataclass(frozen=True)
class TaskQuery:
    """A GP organisation's Task search; None means no filter on that field."""

    requester_agb: str
    task_ids: list[UUID] | None = None
    referral_ids: list[UUID] | None = None
    owners: list[str] | None = None
    statuses: list[str] | None = None
    updated: list[tuple[str, datetime]] = field(default_factory=list)  # (gt|ge|lt|le, moment)
    descending: bool = False
    count: int = 50
    offset: int = 0


@dataclass(frozen=True)
class CommunicationQuery:
    requester_agb: str
    communication_ids: list[UUID] | None = None
    referral_ids: list[UUID] | None = None
    categories: list[str] | None = None
    count: int = 50
    offset: int = 0


_COMPARISONS: dict[str, Any] = {
    "gt": lambda column, value: column > value,
    "ge": lambda column, value: column >= value,
    "lt": lambda column, value: column < value,
    "le": lambda column, value: column <= value,
}


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: int
    body: dict[str, Any]


class Ledger:
    """The ledger seen through one open connection; the caller owns the transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    # -- referrals -------------------------------------------------------------------

    def add_referral(self, referral_id: UUID, municipality_code: str, at: datetime) -> None:
        """A bare referral (ids and municipality only), e.g. for tests of the status flow."""
        self.connection.execute(
            insert(referrals).values(
                referral_id=referral_id,
                municipality_code=municipality_code,
                status=ReferralStatus.REQUESTED.value,
                created_at=at,
                updated_at=at,
            )
        )
        self._append_history(referral_id, ReferralStatus.REQUESTED, "gp", at)

    def record_intake(self, new: NewReferral) -> None:
        """The referral, its personal details and its first status, in the caller's transaction."""
        self.connection.execute(
            insert(referrals).values(
                referral_id=new.referral_id,
                task_id=new.task_id,
                client_id=new.client_id,
                requester_agb=new.requester_agb,
                service_request_system=new.service_request_system,
                service_request_value=new.service_request_value,
                municipality_code=new.municipality_code,
                themes=new.themes,
                age_band=new.age_band,
                urgency=new.urgency,
                status=ReferralStatus.REQUESTED.value,
                created_at=new.submitted_at,
                updated_at=new.submitted_at,
                trace_id=new.trace_id,
            )
        )
        self.connection.execute(
            insert(referral_details).values(
                referral_id=new.referral_id, details=new.details, retain_until=new.retain_until
            )
        )
        self._append_history(new.referral_id, ReferralStatus.REQUESTED, "gp", new.submitted_at)

    def find_by_service_request(
        self, requester_agb: str, system: str, value: str
    ) -> ReferralRow | None:
        return self._one(
            (referrals.c.requester_agb == requester_agb)
            & (referrals.c.service_request_system == system)
            & (referrals.c.service_request_value == value)
        )

    def referral(self, referral_id: UUID) -> ReferralRow | None:
        return self._one(referrals.c.referral_id == referral_id)

    def referral_for_update(self, referral_id: UUID) -> ReferralRow | None:
        """The referral, locked until the transaction ends."""
        row = self.connection.execute(
            select(referrals).where(referrals.c.referral_id == referral_id).with_for_update()
        ).one_or_none()
        return None if row is None else _referral_row(row)

    def record_reported(self, referral_id: UUID, status: str, sequence: int) -> None:
        """A status POSTed over HTTPS and published: what the next POST is judged against."""
        self.connection.execute(
            update(referrals)
            .where(
                (referrals.c.referral_id == referral_id)
                & (referrals.c.reported_sequence < sequence)
            )
            .values(reported_status=status, reported_sequence=sequence)
        )

    def referral_by_task(self, task_id: UUID) -> ReferralRow | None:
        return self._one(referrals.c.task_id == task_id)

    def assign(self, referral_id: UUID, organisation_id: str, *, at: datetime) -> Assignment:
        """Record the organisation the router chose (the Task stays ``requested``), once.
        One round trip on the common path."""
        assigned = self.connection.execute(
            update(referrals)
            .where((referrals.c.referral_id == referral_id) & referrals.c.organisation_id.is_(None))
            .values(organisation_id=organisation_id, updated_at=at)
            .returning(referrals.c.status)
        ).first()
        if assigned is not None:
            held = assigned.status == ReferralStatus.ON_HOLD.value
            return Assignment("assigned", organisation_id, published=False, held=held)
        row = self.connection.execute(
            select(referrals.c.organisation_id, referrals.c.routed_event_published_at).where(
                referrals.c.referral_id == referral_id
            )
        ).first()
        if row is None:
            return Assignment("unknown", None, published=False)
        return Assignment(
            "already-assigned", row.organisation_id, row.routed_event_published_at is not None
        )

    def mark_submitted_event_published(self, referral_id: UUID, at: datetime) -> None:
        self.connection.execute(
            update(referrals)
            .where(referrals.c.referral_id == referral_id)
            .values(submitted_event_published_at=at)
        )

    def change_status(
        self,
        referral_id: UUID,
        status: ReferralStatus,
        *,
        source: str,
        at: datetime,
        organisation_id: str | None = None,
        reason: str | None = None,
        also: dict[str, Any] | None = None,
    ) -> None:
        """A new Task status (and version), with ``also`` written in the same UPDATE."""
        values: dict[str, Any] = {
            "status": status.value,
            "updated_at": at,
            "status_reason": reason,
            "version": referrals.c.version + 1,
            **(also or {}),
        }
        if organisation_id is not None:
            values["organisation_id"] = organisation_id
        self.connection.execute(
            update(referrals).where(referrals.c.referral_id == referral_id).values(**values)
        )
        self._append_history(referral_id, status, source, at)

    def record_welfare_status(
        self,
        referral_id: UUID,
        *,
        welfare_status: str,
        sequence: int,
        task_status: ReferralStatus,
        business_status: str,
        reason: str | None,
        source: str,
        at: datetime,
        outcome: dict[str, Any] | None = None,
    ) -> None:
        """A status from the welfare side: its own view plus what the GP's Task shows."""
        welfare: dict[str, Any] = {
            "welfare_status": welfare_status,
            "status_sequence": sequence,
            "business_status": business_status,
        }
        if outcome is not None:
            welfare["outcome"] = outcome
        self.change_status(
            referral_id, task_status, source=source, at=at, reason=reason, also=welfare
        )

    def set_due_dates(self, referral_id: UUID, received: datetime, contact: datetime) -> None:
        self.connection.execute(
            update(referrals)
            .where(referrals.c.referral_id == referral_id)
            .values(received_due_at=received, contact_due_at=contact)
        )

    def due_timers(self, now: datetime, limit: int = 100) -> list[DueTimer]:
        """Timers that ran out and were not yet reported: no ``received`` from the
        organisation, or no first contact, by the due date, and the referral still open."""
        open_referral = referrals.c.status.not_in(
            _ENDED_TASK_STATUSES
        ) & referrals.c.organisation_id.is_not(None)
        not_received = (
            referrals.c.welfare_status.is_(None)
            & (referrals.c.received_due_at <= now)
            & referrals.c.received_overdue_at.is_(None)
        )
        no_contact = (
            referrals.c.welfare_status.in_(("received", "accepted"))
            & (referrals.c.contact_due_at <= now)
            & referrals.c.contact_overdue_at.is_(None)
        )
        rows = self.connection.execute(
            select(
                referrals.c.referral_id,
                referrals.c.organisation_id,
                referrals.c.welfare_status,
                referrals.c.received_due_at,
                referrals.c.contact_due_at,
            )
            .where(open_referral & referrals.c.routed_event_published_at.is_not(None))
            .where(not_received | no_contact)
            .limit(limit)
        )
        return [
            DueTimer(r.referral_id, r.organisation_id, "received", r.received_due_at)
            if r.welfare_status is None
            else DueTimer(r.referral_id, r.organisation_id, "first-contact", r.contact_due_at)
            for r in rows
        ]

    def mark_overdue(self, referral_id: UUID, timer: str, at: datetime) -> bool:
        """Stamp the timer and give the GP's Task a new version (it shows the delay)."""
        column = "received_overdue_at" if timer == "received" else "contact_overdue_at"
        marked = self.connection.execute(
            update(referrals)
            .where((referrals.c.referral_id == referral_id) & referrals.c[column].is_(None))
            .values({column: at, "version": referrals.c.version + 1, "updated_at": at})
            .returning(referrals.c.referral_id)
        ).first()
        return marked is not None

    # -- the announcement outbox ---------------------------------------------------------

    def claim_announcements(self, limit: int = 200) -> list[Announcement]:
        """What GP systems were not told yet, oldest first (a Task's change before the
        Communication made with it). The rows stay locked until the caller's transaction
        ends; ``SKIP LOCKED`` lets a second replica announce other referrals meanwhile."""
        tasks = self.connection.execute(
            select(
                referrals.c.referral_id,
                referrals.c.client_id,
                referrals.c.task_id,
                referrals.c.version,
                referrals.c.updated_at,
            )
            .where(text(UNANNOUNCED_TASK))
            .where(referrals.c.client_id.is_not(None) & referrals.c.task_id.is_not(None))
            .order_by(referrals.c.updated_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        found = [
            Announcement(
                r.referral_id, r.client_id, r.task_id, "Task", r.task_id, r.version, r.updated_at
            )
            for r in tasks
        ]
        messages = self.connection.execute(
            select(
                communications.c.communication_id,
                communications.c.action_task_id,
                communications.c.sent_at,
                referrals.c.referral_id,
                referrals.c.client_id,
                referrals.c.task_id,
            )
            .select_from(
                communications.join(
                    referrals, communications.c.referral_id == referrals.c.referral_id
                )
            )
            .where(communications.c.published_at.is_(None) & referrals.c.client_id.is_not(None))
            # Never before the Task change it came with: that Task is announced, or in this
            # batch (a Task row another transaction holds waits for the next batch).
            .where(
                (referrals.c.version <= referrals.c.changes_published_version)
                | (referrals.c.version <= 1)
                | referrals.c.referral_id.in_([a.referral_id for a in found])
            )
            .order_by(communications.c.sent_at)
            .limit(limit)
            .with_for_update(of=communications, skip_locked=True)
        )
        for m in messages:
            found.append(
                Announcement(
                    m.referral_id,
                    m.client_id,
                    m.task_id,
                    "Communication",
                    m.communication_id,
                    1,
                    m.sent_at,
                )
            )
            if m.action_task_id is not None:
                found.append(
                    Announcement(
                        m.referral_id,
                        m.client_id,
                        m.task_id,
                        "Task",
                        m.action_task_id,
                        1,
                        m.sent_at,
                    )
                )
        return sorted(found, key=lambda a: (a.changed_at, a.resource_type != "Task"))

    def mark_announced(self, announced: list[Announcement], at: datetime) -> None:
        for item in announced:
            if item.resource_type == "Task" and item.resource_id == item.task_id:
                self.connection.execute(
                    update(referrals)
                    .where(
                        (referrals.c.referral_id == item.referral_id)
                        & (referrals.c.changes_published_version < item.version)
                    )
                    .values(changes_published_version=item.version)
                )
            elif item.resource_type == "Communication":
                self.connection.execute(
                    update(communications)
                    .where(communications.c.communication_id == item.resource_id)
                    .values(published_at=at)
                )

    def history(self, referral_id: UUID) -> list[StatusChange]:
        rows = self.connection.execute(
            select(referral_status_history)
            .where(referral_status_history.c.referral_id == referral_id)
            .order_by(referral_status_history.c.occurred_at, referral_status_history.c.id)
        )
        return [StatusChange(ReferralStatus(r.status), r.source, r.occurred_at) for r in rows]

    # -- personal details ------------------------------------------------------------

    def details(self, referral_id: UUID) -> dict[str, Any] | None:
        return self.connection.execute(
            select(referral_details.c.details).where(referral_details.c.referral_id == referral_id)
        ).scalar_one_or_none()

    def purge_expired_details(self, now: datetime) -> int:
        """Delete personal details past their retention date; the referral's ids stay."""
        result = self.connection.execute(
            delete(referral_details).where(referral_details.c.retain_until <= now)
        )
        return result.rowcount or 0

    # -- idempotency -----------------------------------------------------------------

    def stored_response(self, client_id: str, request_id: str) -> StoredResponse | None:
        row = self.connection.execute(
            select(idempotency_keys).where(
                (idempotency_keys.c.client_id == client_id)
                & (idempotency_keys.c.request_id == request_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return StoredResponse(row.request_hash, row.response_status, row.response_body)

    def store_response(
        self, client_id: str, request_id: str, request_hash: str, status: int, body: dict[str, Any]
    ) -> None:
        self.connection.execute(
            insert(idempotency_keys).values(
                client_id=client_id,
                request_id=request_id,
                request_hash=request_hash,
                response_status=status,
                response_body=body,
            )
        )

    # -- communications --------------------------------------------------------------

    def add_communication(self, row: CommunicationRow, signal_id: UUID | None = None) -> bool:
        """Store a Communication for the GP; False if this signal was stored before."""
        if signal_id is not None:
            # Per referral: two referrals' case systems may well pick the same signal id.
            seen = self.connection.execute(
                select(communications.c.communication_id).where(
                    (communications.c.referral_id == row.referral_id)
                    & (communications.c.signal_id == signal_id)
                )
            ).first()
            if seen is not None:
                return False
        self.connection.execute(
            insert(communications).values(
                communication_id=row.communication_id,
                referral_id=row.referral_id,
                category=row.category,
                sender=row.sender,
                payload=row.payload,
                sent_at=row.sent_at,
                signal_id=signal_id,
                action_task_id=row.action_task_id,
            )
        )
        return True

    def communications(self, condition: Any) -> list[CommunicationRow]:
        rows = self.connection.execute(
            select(communications).where(condition).order_by(communications.c.sent_at)
        )
        return [_communication(r) for r in rows]

    # -- receipts --------------------------------------------------------------------

    def record_gp_receipt(
        self, resource_type: str, resource_id: UUID, version: int, channel: str, at: datetime
    ) -> Receipt | None:
        """The GP system has this Task version or Communication (read it: ``pull``; its
        endpoint acknowledged the notification: ``push``). Returns a receipt the first time
        only, and only for what came from the welfare side."""
        if resource_type == "Communication":
            row = self.connection.execute(
                update(communications)
                .where(
                    (communications.c.communication_id == resource_id)
                    & communications.c.gp_received_at.is_(None)
                )
                .values(gp_received_at=at, gp_received_channel=channel)
                .returning(communications.c.referral_id, communications.c.sender)
            ).first()
            if row is None:
                return None
            return Receipt(row.referral_id, row.sender, f"Communication/{resource_id}")
        row = self.connection.execute(
            update(referrals)
            .where(
                (referrals.c.task_id == resource_id)
                & (referrals.c.gp_seen_version < version)
                & referrals.c.welfare_status.is_not(None)
                & referrals.c.organisation_id.is_not(None)
            )
            .values(gp_seen_version=version)
            .returning(referrals.c.referral_id, referrals.c.organisation_id)
        ).first()
        if row is None:
            return None
        return Receipt(
            row.referral_id, row.organisation_id, f"Task/{resource_id}/_history/{version}"
        )

    # -- audit -----------------------------------------------------------------------

    def audit(
        self, *, actor: str, action: str, referral_id: UUID | None, detail: dict[str, Any]
    ) -> None:
        self.connection.execute(
            insert(audit_log).values(
                actor=actor, action=action, referral_id=referral_id, detail=detail
            )
        )

    def _one(self, condition: Any) -> ReferralRow | None:
        row = self.connection.execute(select(referrals).where(condition)).one_or_none()
        return None if row is None else _referral_row(row)

    # -- FHIR search -----------------------------------------------------------------

    def search_tasks(self, query: TaskQuery) -> tuple[list[ReferralRow], int]:
        """One page of the organisation's referral Tasks, and how many match in all."""
        condition = (referrals.c.requester_agb == query.requester_agb) & referrals.c.task_id.is_not(
            None
        )
        if query.task_ids is not None:
            condition &= referrals.c.task_id.in_(query.task_ids)
        if query.referral_ids is not None:
            condition &= referrals.c.referral_id.in_(query.referral_ids)
        if query.owners is not None:
            condition &= referrals.c.organisation_id.in_(query.owners)
        if query.statuses is not None:
            condition &= referrals.c.status.in_(query.statuses)
        for operator, moment in query.updated:
            condition &= _COMPARISONS[operator](referrals.c.updated_at, moment)
        total = self.connection.execute(
            select(func.count()).select_from(referrals).where(condition)
        ).scalar_one()
        order = referrals.c.updated_at.desc() if query.descending else referrals.c.updated_at
        rows = self.connection.execute(
            select(referrals)
            .where(condition)
            .order_by(order, referrals.c.referral_id)
            .limit(query.count)
            .offset(query.offset)
        )
        return [_referral_row(r) for r in rows], total

    def search_communications(
        self, query: CommunicationQuery
    ) -> tuple[list[tuple[CommunicationRow, ReferralRow]], int]:
        """One page of Communications to the organisation, each with its referral."""
        condition = referrals.c.requester_agb == query.requester_agb
        if query.communication_ids is not None:
            condition &= communications.c.communication_id.in_(query.communication_ids)
        if query.referral_ids is not None:
            condition &= communications.c.referral_id.in_(query.referral_ids)
        if query.categories is not None:
            condition &= communications.c.category.in_(query.categories)
        joined = communications.join(
            referrals, communications.c.referral_id == referrals.c.referral_id
        )
        total = self.connection.execute(
            select(func.count()).select_from(joined).where(condition)
        ).scalar_one()
        rows = self.connection.execute(
            select(communications, referrals.c.referral_id.label("referral"))
            .select_from(joined)
            .where(condition)
            .order_by(communications.c.sent_at, communications.c.communication_id)
            .limit(query.count)
            .offset(query.offset)
        ).all()
        # One query for the page's referrals, not one per Communication.
        wanted = {row.referral for row in rows}
        by_id = {
            r.referral_id: _referral_row(r)
            for r in self.connection.execute(
                select(referrals).where(referrals.c.referral_id.in_(wanted))
            )
        }
        return [(_communication(row), by_id[row.referral]) for row in rows], total

    def communication_with_action_task(self, task_id: UUID) -> CommunicationRow | None:
        found = self.communications(communications.c.action_task_id == task_id)
        return found[0] if found else None

    def feedback_communication(self, referral_id: UUID) -> CommunicationRow | None:
        found = self.communications(
            (communications.c.referral_id == referral_id)
            & (communications.c.category == "feedback")
        )
        return found[0] if found else None

    def _append_history(
        self, referral_id: UUID, status: ReferralStatus, source: str, at: datetime
    ) -> None:
        self.connection.execute(
            insert(referral_status_history).values(
                referral_id=referral_id, status=status.value, source=source, occurred_at=at
            )
        )


_ENDED_TASK_STATUSES = tuple(sorted(status.value for status in ENDED_TASK_STATUSES))


def _communication(row: Any) -> CommunicationRow:
    return CommunicationRow(
        communication_id=row.communication_id,
        referral_id=row.referral_id,
        category=row.category,
        sender=row.sender,
        payload=row.payload,
        sent_at=row.sent_at,
        action_task_id=row.action_task_id,
        published=row.published_at is not None,
    )


def _referral_row(row: Any) -> ReferralRow:
    return ReferralRow(
        referral_id=row.referral_id,
        organisation_id=row.organisation_id,
        municipality_code=row.municipality_code,
        status=ReferralStatus(row.status),
        task_id=row.task_id,
        client_id=row.client_id,
        requester_agb=row.requester_agb,
        service_request_system=row.service_request_system,
        service_request_value=row.service_request_value,
        status_reason=row.status_reason,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
        themes=list(row.themes or []),
        age_band=row.age_band,
        urgency=row.urgency,
        submitted_event_published=row.submitted_event_published_at is not None,
        welfare_status=row.welfare_status,
        status_sequence=row.status_sequence,
        business_status=row.business_status,
        outcome=row.outcome,
        received_due_at=row.received_due_at,
        contact_due_at=row.contact_due_at,
        received_overdue_at=row.received_overdue_at,
        contact_overdue_at=row.contact_overdue_at,
        changes_published_version=row.changes_published_version,
        reported_status=row.reported_status,
        reported_sequence=row.reported_sequence,
    )
