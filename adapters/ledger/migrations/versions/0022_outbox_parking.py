"""An outbox event Kafka will not take (its topic is missing or may not be written) is
parked with the reason, instead of holding up every event behind it.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("outbox", sa.Column("parked_reason", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "parked_reason")
    op.drop_column("outbox", "parked_at")
