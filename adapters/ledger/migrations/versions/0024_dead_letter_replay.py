"""Bulk replay of dead letters (issue 16): a replay claims its letter (state ``replaying``,
by whom, since when) and commits before publishing, so each is sent at most once; a
failed publish is kept on the letter.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dead_letters", sa.Column("claimed_by", sa.String(128), nullable=True))
    op.add_column(
        "dead_letters", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("dead_letters", sa.Column("replay_error", sa.String(500), nullable=True))
    op.add_column(
        "dead_letters", sa.Column("replay_failed_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.execute(
        "UPDATE dead_letters SET state = 'parked' WHERE state = 'replaying'"
    )  # an interrupted claim is parked again: an operator decides
    for column in ("replay_failed_at", "replay_error", "claimed_at", "claimed_by"):
        op.drop_column("dead_letters", column)
