"""Referral intake: id mappings, minimised attributes, personal details with retention,
idempotency keys.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("referrals", sa.Column("task_id", sa.Uuid(), nullable=True))
    op.create_unique_constraint("referrals_task_id_key", "referrals", ["task_id"])
    op.add_column("referrals", sa.Column("client_id", sa.String(64), nullable=True))
    op.add_column("referrals", sa.Column("requester_agb", sa.String(16), nullable=True))
    op.add_column("referrals", sa.Column("service_request_system", sa.String(255), nullable=True))
    op.add_column("referrals", sa.Column("service_request_value", sa.String(255), nullable=True))
    op.add_column(
        "referrals",
        sa.Column("themes", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    op.add_column("referrals", sa.Column("age_band", sa.String(8), nullable=True))
    op.add_column("referrals", sa.Column("urgency", sa.String(16), nullable=True))
    op.add_column("referrals", sa.Column("status_reason", sa.String(500), nullable=True))
    op.add_column(
        "referrals",
        sa.Column("version", sa.Integer(), nullable=False, server_default=sa.text("1")),
    )
    op.create_unique_constraint(
        "uq_referrals_service_request",
        "referrals",
        ["requester_agb", "service_request_system", "service_request_value"],
    )
    op.create_table(
        "referral_details",
        sa.Column(
            "referral_id",
            sa.Uuid(),
            sa.ForeignKey("referrals.referral_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("details", JSONB(), nullable=False),
        sa.Column("retain_until", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_referral_details_retain_until", "referral_details", ["retain_until"])
    op.create_table(
        "idempotency_keys",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("client_id", "request_id", name="pk_idempotency_keys"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_keys")
    op.drop_table("referral_details")
    op.drop_constraint("uq_referrals_service_request", "referrals")
    op.drop_constraint("referrals_task_id_key", "referrals")
    for column in (
        "version",
        "status_reason",
        "urgency",
        "age_band",
        "themes",
        "service_request_value",
        "service_request_system",
        "requester_agb",
        "client_id",
        "task_id",
    ):
        op.drop_column("referrals", column)
