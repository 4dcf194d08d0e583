"""What GP systems were not told yet: the Task changes and Communications the feedback
service announces on ``brug.gp.changes.<client>.v1``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection, select, text, update

from adapters.ledger.rows import Announcement, StatusChange
from adapters.ledger.tables import (
    UNANNOUNCED_TASK,
    communications,
    referral_status_history,
    referrals,
)
from contracts.codes import ReferralStatus


class Announcements:
    """Claim and mark what is announced; the caller owns the transaction."""

    connection: Connection

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
