"""Record when each referral's events were published (the gateway's submitted event, the
router's referral event), so the ledger commits before an event becomes visible and a
retry or redelivery knows whether to publish again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for column in ("submitted_event_published_at", "routed_event_published_at"):
        op.add_column("referrals", sa.Column(column, sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for column in ("submitted_event_published_at", "routed_event_published_at"):
        op.drop_column("referrals", column)
