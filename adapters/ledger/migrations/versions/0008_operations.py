"""What operators act on: dead letters parked for inspection, replay or discard, and the
console's login sessions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("dead_letter_id", sa.String(64), primary_key=True),
        sa.Column("referral_id", sa.Uuid(), nullable=True, index=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.String(2000), nullable=False),
        sa.Column("service", sa.String(63), nullable=False),
        sa.Column("original_topic", sa.String(255), nullable=False),
        sa.Column("original_partition", sa.Integer(), nullable=False),
        sa.Column("original_offset", sa.BigInteger(), nullable=False),
        sa.Column("original_key", sa.String(255), nullable=True),
        sa.Column("original_value", sa.Text(), nullable=False),
        sa.Column("original_headers", JSONB(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),  # parked | replayed | discarded
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(128), nullable=True),
        sa.Column("note", sa.String(2000), nullable=True),
    )
    op.create_index(
        "ix_dead_letters_parked",
        "dead_letters",
        ["failed_at"],
        postgresql_where=sa.text("state = 'parked'"),
    )
    op.create_table(
        "operator_sessions",
        sa.Column("session_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("operator_sessions")
    op.drop_index("ix_dead_letters_parked", table_name="dead_letters")
    op.drop_table("dead_letters")
