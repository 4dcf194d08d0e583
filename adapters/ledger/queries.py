"""Read models: the FHIR searches of GP systems over Tasks and Communications (the write
side is in the repositories beside this module)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, select

from adapters.ledger.rows import CommunicationRow, ReferralRow, communication_row, referral_row
from adapters.ledger.tables import (
    communications,
    referrals,
)


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


class Searches:
    """FHIR search over the ledger on the caller's connection."""

    connection: Connection

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
        return [referral_row(r) for r in rows], total

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
            r.referral_id: referral_row(r)
            for r in self.connection.execute(
                select(referrals).where(referrals.c.referral_id.in_(wanted))
            )
        }
        return [(communication_row(row), by_id[row.referral]) for row in rows], total
