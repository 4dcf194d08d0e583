"""The console's login throttle moves from process memory to the ledger, so it survives a
restart and every replica shares it: one row per login attempt that did not succeed, by
user name and source address.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("source_address", sa.String(64), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_login_failures_username", "login_failures", ["username", "failed_at"])
    op.create_index(
        "ix_login_failures_source_address", "login_failures", ["source_address", "failed_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_login_failures_source_address", table_name="login_failures")
    op.drop_index("ix_login_failures_username", table_name="login_failures")
    op.drop_table("login_failures")
