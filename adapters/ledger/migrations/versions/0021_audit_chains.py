"""The audit trail in several hash chains side by side (``audit_log.chain``), so audited
commits of different referrals no longer wait for each other's flush to disk. The rows
written so far are chain 0, unchanged: their hashes stay valid.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A constant default writes no row, so the insert-only trigger does not object.
    op.add_column(
        "audit_log",
        sa.Column("chain", sa.SmallInteger(), nullable=False, server_default=sa.text("0")),
    )
    op.drop_constraint("uq_audit_log_seq", "audit_log", type_="unique")
    op.create_unique_constraint("uq_audit_log_chain_seq", "audit_log", ["chain", "seq"])


def downgrade() -> None:
    # Only possible while every row is in chain 0 (the unique seq fails otherwise).
    op.drop_constraint("uq_audit_log_chain_seq", "audit_log", type_="unique")
    op.create_unique_constraint("uq_audit_log_seq", "audit_log", ["seq"])
    op.drop_column("audit_log", "chain")
