"""The ledger's tables as SQLAlchemy Core metadata; migrations must produce exactly this
(tests/integration/test_ledger.py compares them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    String,
    Table,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

referrals = Table(
    "referrals",
    metadata,
    Column("referral_id", Uuid, primary_key=True),
    Column("organisation_id", String(63), nullable=True),
    Column("municipality_code", String(6), nullable=True),
    Column("status", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

referral_status_history = Table(
    "referral_status_history",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column(
        "referral_id",
        Uuid,
        ForeignKey("referrals.referral_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(32), nullable=False),
    Column("source", String(63), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_referral_status_history_referral", "referral_id", "occurred_at"),
)

# NEN 7513-style access log: who did what to which referral, when. Append-only.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("referral_id", Uuid, nullable=True),
    Column("detail", JSONB, nullable=False, server_default="{}"),
    Index("ix_audit_log_referral", "referral_id", "at"),
)
