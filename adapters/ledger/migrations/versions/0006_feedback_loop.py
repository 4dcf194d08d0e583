"""The closed loop: completion outcome, service-level timers, what the GP was told and
has seen, Communications (feedback, signals), and FHIR Subscriptions.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TIMESTAMPS = ("received_due_at", "contact_due_at", "received_overdue_at", "contact_overdue_at")
VERSIONS = ("changes_published_version", "gp_seen_version")


def upgrade() -> None:
    op.add_column("referrals", sa.Column("outcome", JSONB, nullable=True))
    for column in TIMESTAMPS:
        op.add_column("referrals", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    for column in VERSIONS:
        op.add_column(
            "referrals",
            sa.Column(column, sa.Integer(), nullable=False, server_default=sa.text("0")),
        )
    op.create_index("ix_referrals_requester_updated", "referrals", ["requester_agb", "updated_at"])
    op.create_table(
        "communications",
        sa.Column("communication_id", sa.Uuid(), primary_key=True),
        sa.Column(
            "referral_id",
            sa.Uuid(),
            sa.ForeignKey("referrals.referral_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("sender", sa.String(63), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("signal_id", sa.Uuid(), nullable=True, unique=True),
        sa.Column("action_task_id", sa.Uuid(), nullable=True, unique=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gp_received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("gp_received_channel", sa.String(8), nullable=True),
    )
    op.create_index("ix_communications_referral", "communications", ["referral_id", "sent_at"])
    op.create_table(
        "subscriptions",
        sa.Column("subscription_id", sa.Uuid(), primary_key=True),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("organisation", sa.String(16), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(2000), nullable=False),
        sa.Column("headers", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("heartbeat_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column(
            "events_since_start", sa.BigInteger(), nullable=False, server_default=sa.text("0")
        ),
        sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resource", JSONB, nullable=False),
    )
    op.create_index("ix_subscriptions_organisation", "subscriptions", ["organisation", "status"])


def downgrade() -> None:
    op.drop_table("subscriptions")
    op.drop_table("communications")
    op.drop_index("ix_referrals_requester_updated", "referrals")
    for column in (*VERSIONS, *TIMESTAMPS, "outcome"):
        op.drop_column("referrals", column)
