"""The ledger through one connection: its repositories in one object, so callers keep one
name while the rules move into the aggregate (``domain/``). The parts: ``referrals.py``,
``communications.py`` (both queue the GP systems' change notices, ``gp_changes.py``),
``records.py`` (idempotency answers, audit) and ``queries.py`` (the read side); the row
types are in ``rows.py``."""

from __future__ import annotations

from sqlalchemy import Connection

from adapters.ledger.communications import Communications
from adapters.ledger.queries import CommunicationQuery, Searches, TaskQuery
from adapters.ledger.records import Records
from adapters.ledger.referrals import Referrals
from adapters.ledger.rows import (
    Assignment,
    CommunicationRow,
    DueTimer,
    NewReferral,
    Receipt,
    ReferralRow,
    StatusChange,
    StoredResponse,
)

__all__ = [
    "Assignment",
    "CommunicationQuery",
    "CommunicationRow",
    "DueTimer",
    "Ledger",
    "NewReferral",
    "Receipt",
    "ReferralRow",
    "StatusChange",
    "StoredResponse",
    "TaskQuery",
]


class Ledger(Referrals, Communications, Records, Searches):
    """The ledger seen through one open connection; the caller owns the transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
