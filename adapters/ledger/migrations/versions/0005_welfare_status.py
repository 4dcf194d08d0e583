"""The welfare side's status per referral: last status, the sender's sequence, and the
WoR business status shown on the GP's Task.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("referrals", sa.Column("welfare_status", sa.String(32), nullable=True))
    op.add_column(
        "referrals",
        sa.Column("status_sequence", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.add_column("referrals", sa.Column("business_status", sa.String(64), nullable=True))


def downgrade() -> None:
    for column in ("business_status", "status_sequence", "welfare_status"):
        op.drop_column("referrals", column)
