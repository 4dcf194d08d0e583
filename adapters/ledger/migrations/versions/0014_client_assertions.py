"""SMART Backend Services: each client assertion's ``jti`` is used once. The ones seen are
kept, per client, until their assertion expires (``adapters/smart.py`` prunes the rest).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-11
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_assertions",
        sa.Column("client_id", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(255), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_client_assertions_expires_at", "client_assertions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_client_assertions_expires_at", table_name="client_assertions")
    op.drop_table("client_assertions")
