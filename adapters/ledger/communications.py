"""The Communications to the GP (closing feedback, signals) and the GP's receipts of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from adapters.ledger.gp_changes import announce_change
from adapters.ledger.rows import CommunicationRow, Receipt, communication_row, referral_row
from adapters.ledger.tables import (
    communications,
    referrals,
)
from domain.events import ReceiptRecorded
from domain.referral import Referral, events_of


class Communications:
    """Communications and receipts on the caller's connection."""

    connection: Connection

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
        self._announce_communication(row)
        return True

    def _announce_communication(self, row: CommunicationRow) -> None:
        """The Communication, and the Task it asks the practice to do (its version 1)."""
        referral = self.connection.execute(
            select(referrals.c.client_id, referrals.c.task_id).where(
                referrals.c.referral_id == row.referral_id
            )
        ).one()
        made: list[tuple[Literal["Task", "Communication"], UUID, int]] = [
            ("Communication", row.communication_id, 1)
        ]
        if row.action_task_id is not None:
            made.append(("Task", row.action_task_id, 1))
        for resource in made:
            announce_change(
                self.connection,
                referral_id=row.referral_id,
                client_id=referral.client_id,
                task_id=referral.task_id,
                resource=resource,
                at=row.sent_at,
            )

    def communications(self, condition: Any) -> list[CommunicationRow]:
        rows = self.connection.execute(
            select(communications).where(condition).order_by(communications.c.sent_at)
        )
        return [communication_row(r) for r in rows]

    # -- receipts --------------------------------------------------------------------

    def record_gp_receipt(
        self, resource_type: str, resource_id: UUID, version: int, channel: str, at: datetime
    ) -> Receipt | None:
        """The GP system has this Task version or Communication (read it: ``pull``; its
        endpoint acknowledged the notification: ``push``). Returns a receipt the first time
        only; for a Task, the aggregate says whether this version earns one."""
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
        found = self.connection.execute(
            select(referrals).where(referrals.c.task_id == resource_id)
        ).one_or_none()
        if found is None:
            return None
        outcome = Referral.of(referral_row(found)).record_receipt(version)
        recorded = [e for e in events_of(outcome) if isinstance(e, ReceiptRecorded)]
        if not recorded:
            return None
        # Compare and set: of two reads of the same version at once, one is the receipt.
        stamped = self.connection.execute(
            update(referrals)
            .where((referrals.c.task_id == resource_id) & (referrals.c.gp_seen_version < version))
            .values(gp_seen_version=version)
            .returning(referrals.c.referral_id)
        ).first()
        if stamped is None:
            return None
        receipt = recorded[0]
        return Receipt(
            receipt.referral_id,
            receipt.organisation_id,
            f"Task/{resource_id}/_history/{receipt.task_version}",
        )

    def communication_with_action_task(self, task_id: UUID) -> CommunicationRow | None:
        found = self.communications(communications.c.action_task_id == task_id)
        return found[0] if found else None

    def feedback_communication(self, referral_id: UUID) -> CommunicationRow | None:
        found = self.communications(
            (communications.c.referral_id == referral_id)
            & (communications.c.category == "feedback")
        )
        return found[0] if found else None
