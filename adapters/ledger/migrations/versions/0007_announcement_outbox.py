"""The outbox of what the GP system has not been told yet (partial indexes over Task
versions and Communications not yet announced on brug.gp.changes), and the latest status a
case system POSTed over HTTPS.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("referrals", sa.Column("reported_status", sa.String(32), nullable=True))
    op.add_column(
        "referrals",
        sa.Column("reported_sequence", sa.Integer(), nullable=False, server_default=sa.text("0")),
    )
    op.create_index(
        "ix_referrals_unannounced",
        "referrals",
        ["updated_at"],
        postgresql_where=sa.text("version > changes_published_version AND version > 1"),
    )
    op.create_index(
        "ix_communications_unpublished",
        "communications",
        ["sent_at"],
        postgresql_where=sa.text("published_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_communications_unpublished", table_name="communications")
    op.drop_index("ix_referrals_unannounced", table_name="referrals")
    op.drop_column("referrals", "reported_sequence")
    op.drop_column("referrals", "reported_status")
