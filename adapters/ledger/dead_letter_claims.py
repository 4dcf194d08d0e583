"""Replays' claims on dead letters (SQLAlchemy Core on one connection): which parked letters
a bulk replay's window chooses, the claim that makes each replay happen at most once, and
how a claim ends. The rules (states, stale claims, the window) are ``domain/dead_letters.py``.

A claim is taken under the letter's row lock (``FOR UPDATE SKIP LOCKED``: a letter another
operator is acting on right now is skipped, not waited for) and committed before the letter
is published; ending it checks that the claim is still this one's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Update, select, update

from adapters.ledger.operations import DeadLetterRow
from adapters.ledger.tables import dead_letters
from domain.dead_letters import PARKED, REPLAYED, REPLAYING, ReplayWindow

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Claim:
    """One replay's claim on one letter: who, since when (what ends it must match)."""

    dead_letter_id: str
    by: str
    at: datetime


class DeadLetterClaims:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def in_window(self, window: ReplayWindow, limit: int) -> list[DeadLetterRow]:
        """Parked letters the window chooses, oldest failure first (so one referral's go
        out in the order they failed); nothing locked: each is claimed on its own."""
        rows = self.connection.execute(
            select(dead_letters)
            .where(dead_letters.c.state == PARKED)
            .where(dead_letters.c.reason == window.reason)
            .where(dead_letters.c.failed_at >= window.since)
            .where(dead_letters.c.failed_at < window.until)
            .order_by(dead_letters.c.failed_at, dead_letters.c.dead_letter_id)
            .limit(limit)
        )
        return [DeadLetterRow(**row._mapping) for row in rows]

    def lock(self, dead_letter_id: str) -> DeadLetterRow | None:
        """The letter, locked until the transaction ends; None if it does not exist or
        another transaction holds it (someone is acting on it now)."""
        row = self.connection.execute(
            select(dead_letters)
            .where(dead_letters.c.dead_letter_id == dead_letter_id)
            .with_for_update(skip_locked=True)
        ).one_or_none()
        return None if row is None else DeadLetterRow(**row._mapping)

    def claim(self, dead_letter_id: str, *, by: str, at: datetime) -> Claim:
        """Mark the (locked, checked) letter as being replayed by ``by`` since ``at``."""
        claim = Claim(dead_letter_id, by[:128], at)
        self.connection.execute(
            update(dead_letters)
            .where(dead_letters.c.dead_letter_id == dead_letter_id)
            .values(state=REPLAYING, claimed_by=claim.by, claimed_at=claim.at)
        )
        return claim

    def replayed(self, claim: Claim, *, note: str, at: datetime) -> bool:
        """Kafka took it: ``replayed``, if the claim is still this one's."""
        changed = self.connection.execute(
            _own(claim).values(
                state=REPLAYED, resolved_by=claim.by, resolved_at=at, note=note[:2000]
            )
        )
        return changed.rowcount == 1

    def not_sent(self, claim: Claim, *, error: str, at: datetime) -> bool:
        """Kafka certainly did not take it: ``parked`` again (open to the next replay),
        with the error kept for the operator."""
        changed = self.connection.execute(
            _own(claim).values(
                state=PARKED,
                claimed_by=None,
                claimed_at=None,
                replay_error=error[:MAX_ERROR_LENGTH],
                replay_failed_at=at,
            )
        )
        return changed.rowcount == 1

    def uncertain(self, claim: Claim, *, error: str, at: datetime) -> bool:
        """No answer from Kafka: it may be on the topic. Left ``replaying`` (the claim
        stays), with the error: an operator decides once the claim is stale."""
        changed = self.connection.execute(
            _own(claim).values(replay_error=error[:MAX_ERROR_LENGTH], replay_failed_at=at)
        )
        return changed.rowcount == 1


def _own(claim: Claim) -> Update:
    """An update of the letter only while ``claim`` is still its claim."""
    return (
        update(dead_letters)
        .where(dead_letters.c.dead_letter_id == claim.dead_letter_id)
        .where(dead_letters.c.state == REPLAYING)
        .where(dead_letters.c.claimed_by == claim.by)
        .where(dead_letters.c.claimed_at == claim.at)
    )
