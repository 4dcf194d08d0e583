"""Reads and writes of the referral ledger (SQLAlchemy Core on one connection/transaction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from adapters.ledger.tables import audit_log, referral_status_history, referrals
from contracts.codes import ReferralStatus


@dataclass(frozen=True)
class ReferralRow:
    referral_id: UUID
    organisation_id: str | None
    municipality_code: str | None
    status: ReferralStatus


@dataclass(frozen=True)
class StatusChange:
    status: ReferralStatus
    source: str
    occurred_at: datetime


class Ledger:
    """The ledger seen through one open connection; the caller owns the transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def add_referral(self, referral_id: UUID, municipality_code: str, at: datetime) -> None:
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

    def change_status(
        self,
        referral_id: UUID,
        status: ReferralStatus,
        *,
        source: str,
        at: datetime,
        organisation_id: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"status": status.value, "updated_at": at}
        if organisation_id is not None:
            values["organisation_id"] = organisation_id
        self.connection.execute(
            update(referrals).where(referrals.c.referral_id == referral_id).values(**values)
        )
        self._append_history(referral_id, status, source, at)

    def referral(self, referral_id: UUID) -> ReferralRow | None:
        row = self.connection.execute(
            select(referrals).where(referrals.c.referral_id == referral_id)
        ).one_or_none()
        if row is None:
            return None
        return ReferralRow(
            referral_id=row.referral_id,
            organisation_id=row.organisation_id,
            municipality_code=row.municipality_code,
            status=ReferralStatus(row.status),
        )

    def history(self, referral_id: UUID) -> list[StatusChange]:
        rows = self.connection.execute(
            select(referral_status_history)
            .where(referral_status_history.c.referral_id == referral_id)
            .order_by(referral_status_history.c.occurred_at, referral_status_history.c.id)
        )
        return [StatusChange(ReferralStatus(r.status), r.source, r.occurred_at) for r in rows]

    def audit(
        self, *, actor: str, action: str, referral_id: UUID | None, detail: dict[str, Any]
    ) -> None:
        self.connection.execute(
            insert(audit_log).values(
                actor=actor, action=action, referral_id=referral_id, detail=detail
            )
        )

    def _append_history(
        self, referral_id: UUID, status: ReferralStatus, source: str, at: datetime
    ) -> None:
        self.connection.execute(
            insert(referral_status_history).values(
                referral_id=referral_id, status=status.value, source=source, occurred_at=at
            )
        )
