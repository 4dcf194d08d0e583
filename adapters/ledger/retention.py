"""Retention: one sweep over every ledger table that holds personal data or free text.

Each table's retention is a period counted from a time the row already has (when the
referral ended, when a Communication was sent, when a record failed, when a delivery
finished, when an answer was stored), so a period set shorter applies to existing rows at
the next sweep, and no writer has to stamp a date. Past it:

| table | counted from | default | what happens |
|---|---|---|---|
| ``referral_details`` | intake (``retain_until``), or the end | 365 d / 90 d | deleted |
| ``referrals`` texts | the end (``updated_at``) | 90 d | replaced (``ERASED_TEXT``) |
| ``communications`` | ``sent_at`` | 90 d | payload replaced |
| ``dead_letters`` | ``failed_at`` | 3 d | original emptied; parked ones discarded |
| ``webhook_deliveries`` | ``finished_at`` | 30 d | deleted (pending rows stay) |
| ``idempotency_keys`` | ``created_at`` | 7 d | deleted |

The console runs the sweep every ``BRUG_RETENTION_SWEEP_MINUTES``
(``services/console/retention.py``); ``brug ledger purge`` runs it once. Concurrent
sweeps (several console replicas) take turns on an advisory lock. Each sweep that changed
something is audited as ``purged`` with its counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import Field
from sqlalchemy import Connection, delete, text

from adapters.ledger.audit_trail import enqueue, new_entry
from adapters.ledger.erasure import (
    Erased,
    empty_dead_letters,
    redact_communications,
    redact_referral_texts,
)
from adapters.ledger.tables import (
    communications,
    dead_letters,
    idempotency_keys,
    referral_details,
    referrals,
    webhook_deliveries,
)
from adapters.runtime.settings import ServiceSettings
from domain.status_machine import ENDED_TASK_STATUSES

RETENTION_LOCK = 7513_0017  # pg_advisory_xact_lock key: one sweep at a time
_ENDED = tuple(sorted(status.value for status in ENDED_TASK_STATUSES))


class RetentionSettings(ServiceSettings):
    """How long each kind of personal data stays in the ledger (``BRUG_*``). The dead
    letters' copy uses ``BRUG_DEAD_LETTER_RETENTION_DAYS``, as their topic does."""

    retention_after_end_days: float = Field(
        default=90,
        gt=0,
        description="After a referral ended: its details are deleted and its decline text "
        "and outcome replaced (the GP had them in its own record long before).",
    )
    communication_retention_days: float = Field(
        default=90, gt=0, description="After it was sent: a Communication's texts replaced."
    )
    webhook_delivery_retention_days: float = Field(
        default=30, gt=0, description="After a delivery finished (sent or parked): deleted."
    )
    idempotency_retention_days: float = Field(
        default=7, gt=0, description="After a stored answer: deleted (a retry is hours late)."
    )
    retention_sweep_minutes: float = Field(
        default=15, gt=0, description="How often the console runs the retention sweep."
    )

    def retention_policy(self) -> RetentionPolicy:
        return RetentionPolicy(
            after_end=timedelta(days=self.retention_after_end_days),
            communications=timedelta(days=self.communication_retention_days),
            dead_letters=timedelta(days=self.dead_letter_retention_days),
            webhook_deliveries=timedelta(days=self.webhook_delivery_retention_days),
            idempotency_keys=timedelta(days=self.idempotency_retention_days),
        )


@dataclass(frozen=True)
class RetentionPolicy:
    after_end: timedelta = timedelta(days=90)
    communications: timedelta = timedelta(days=90)
    dead_letters: timedelta = timedelta(days=3)
    webhook_deliveries: timedelta = timedelta(days=30)
    idempotency_keys: timedelta = timedelta(days=7)


def sweep(
    connection: Connection, policy: RetentionPolicy, now: datetime, actor: str
) -> Erased | None:
    """Apply ``policy`` once, in the caller's transaction; None if another sweep holds
    the lock (it does the same work)."""
    locked = connection.execute(
        text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": RETENTION_LOCK}
    ).scalar()
    if not locked:
        return None
    done = Erased()
    ended_before = now - policy.after_end
    ended = referrals.c.status.in_(_ENDED) & (referrals.c.updated_at <= ended_before)
    done.details = connection.execute(
        delete(referral_details).where(
            (referral_details.c.retain_until <= now)
            | referral_details.c.referral_id.in_(
                referrals.select().with_only_columns(referrals.c.referral_id).where(ended)
            )
        )
    ).rowcount
    done.referrals = redact_referral_texts(
        connection,
        ended
        & referrals.c.erased_at.is_(None)
        & (referrals.c.outcome.is_not(None) | referrals.c.status_reason.is_not(None)),
        now,
    )
    done.communications = redact_communications(
        connection,
        (communications.c.sent_at <= now - policy.communications)
        & communications.c.erased_at.is_(None),
        now,
    )
    done.dead_letters = empty_dead_letters(
        connection, dead_letters.c.failed_at <= now - policy.dead_letters, now, actor
    )
    done.webhook_deliveries = connection.execute(
        delete(webhook_deliveries).where(
            webhook_deliveries.c.finished_at <= now - policy.webhook_deliveries
        )
    ).rowcount
    done.idempotency_keys = connection.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.created_at <= now - policy.idempotency_keys
        )
    ).rowcount
    if done.total():
        enqueue(
            connection,
            new_entry(
                actor=actor, action="purged", referral_id=None, detail={"purged": done.counts()}
            ),
        )
    return done
