"""Reads and writes of the referral rows (one aggregate): intake, assignment, statuses,
service-level timers, personal details. On the caller's connection and transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from adapters.ledger.gp_changes import announce_change
from adapters.ledger.rows import (
    Assignment,
    DueTimer,
    NewReferral,
    ReferralRow,
    StatusChange,
    referral_row,
)
from adapters.ledger.tables import (
    referral_details,
    referral_status_history,
    referrals,
)
from contracts.codes import ReferralStatus
from domain.referral import AWAITING_CONTACT, TIMER_RECEIVED
from domain.status_machine import ENDED_TASK_STATUSES


class Referrals:
    """The referral rows: intake, routing, statuses, timers and the personal details."""

    connection: Connection

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
                patient_pseudonym=new.patient_pseudonym,
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
        return None if row is None else referral_row(row)

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
        changed = self.connection.execute(
            update(referrals)
            .where(referrals.c.referral_id == referral_id)
            .values(**values)
            .returning(referrals.c.client_id, referrals.c.task_id, referrals.c.version)
        ).one()
        self._append_history(referral_id, status, source, at)
        self._announce_task_version(referral_id, changed, at)

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
        """Referrals whose timer may have run out: the candidates, not the decision. The
        aggregate decides under the row lock (``Referral.mark_overdue``); this query only
        keeps the candidates few, with the domain's own sets of statuses."""
        open_referral = referrals.c.status.not_in(
            _ENDED_TASK_STATUSES
        ) & referrals.c.organisation_id.is_not(None)
        not_received = (
            referrals.c.welfare_status.is_(None)
            & (referrals.c.received_due_at <= now)
            & referrals.c.received_overdue_at.is_(None)
        )
        no_contact = (
            referrals.c.welfare_status.in_(_AWAITING_CONTACT)
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
            # A timer runs once the organisation was told of the referral.
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

    def stamp_overdue(self, referral_id: UUID, timer: str, at: datetime) -> None:
        """Stamp the timer the aggregate found run out, and give the GP's Task a new
        version (it shows the delay)."""
        column = "received_overdue_at" if timer == TIMER_RECEIVED else "contact_overdue_at"
        stamped = self.connection.execute(
            update(referrals)
            .where(referrals.c.referral_id == referral_id)
            .values({column: at, "version": referrals.c.version + 1, "updated_at": at})
            .returning(referrals.c.client_id, referrals.c.task_id, referrals.c.version)
        ).one()
        self._announce_task_version(referral_id, stamped, at)

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

    def history(self, referral_id: UUID) -> list[StatusChange]:
        """The Task's statuses in the order they were reached."""
        rows = self.connection.execute(
            select(referral_status_history)
            .where(referral_status_history.c.referral_id == referral_id)
            .order_by(referral_status_history.c.occurred_at, referral_status_history.c.id)
        )
        return [StatusChange(ReferralStatus(r.status), r.source, r.occurred_at) for r in rows]

    def _one(self, condition: Any) -> ReferralRow | None:
        row = self.connection.execute(select(referrals).where(condition)).one_or_none()
        return None if row is None else referral_row(row)

    def _announce_task_version(self, referral_id: UUID, changed: Any, at: datetime) -> None:
        announce_change(
            self.connection,
            referral_id=referral_id,
            client_id=changed.client_id,
            task_id=changed.task_id,
            resource=("Task", changed.task_id, changed.version),
            at=at,
        )

    def _append_history(
        self, referral_id: UUID, status: ReferralStatus, source: str, at: datetime
    ) -> None:
        self.connection.execute(
            insert(referral_status_history).values(
                referral_id=referral_id, status=status.value, source=source, occurred_at=at
            )
        )


_ENDED_TASK_STATUSES = tuple(sorted(status.value for status in ENDED_TASK_STATUSES))
_AWAITING_CONTACT = tuple(sorted(status.value for status in AWAITING_CONTACT))
