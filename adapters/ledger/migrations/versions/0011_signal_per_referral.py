"""A signal id is unique per referral, not across all referrals: two case systems (or one,
for two referrals) may pick the same id, and the second signal must not be dropped.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("communications_signal_id_key", "communications", type_="unique")
    op.create_unique_constraint(
        "uq_communications_referral_signal", "communications", ["referral_id", "signal_id"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_communications_referral_signal", "communications", type_="unique")
    op.create_unique_constraint("communications_signal_id_key", "communications", ["signal_id"])
