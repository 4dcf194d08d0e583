"""Reserved for the national monitor's pseudonymous dataset (issue 14).
A no-op until that work fills it in.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
