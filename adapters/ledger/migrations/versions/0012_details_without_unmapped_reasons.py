"""The details contract no longer carries ``unmapped_reasons`` (the GP's wording of reasons
no table maps, often a diagnosis): stored details lose the key, so a case system never
reads it again. The details are JSONB, so there is no column to drop; the key is removed.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-09
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "UPDATE referral_details SET details = details - 'unmapped_reasons' "
        "WHERE details ? 'unmapped_reasons'"
    )


def downgrade() -> None:
    """Nothing to restore: the removed wording is gone on purpose."""
