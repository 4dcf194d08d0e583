"""Ledger core: referrals, their status history, the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("referral_id", sa.Uuid(), primary_key=True),
        sa.Column("organisation_id", sa.String(63), nullable=True),
        sa.Column("municipality_code", sa.String(6), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_table(
        "referral_status_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "referral_id",
            sa.Uuid(),
            sa.ForeignKey("referrals.referral_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source", sa.String(63), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_referral_status_history_referral",
        "referral_status_history",
        ["referral_id", "occurred_at"],
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("referral_id", sa.Uuid(), nullable=True),
        sa.Column("detail", JSONB(), nullable=False, server_default="{}"),
    )
    op.create_index("ix_audit_log_referral", "audit_log", ["referral_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("referral_status_history")
    op.drop_table("referrals")
