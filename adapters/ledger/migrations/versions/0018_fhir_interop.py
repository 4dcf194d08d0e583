"""Reserved for FHIR interop for GP vendors (issue 16).
A no-op until that work fills it in.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
