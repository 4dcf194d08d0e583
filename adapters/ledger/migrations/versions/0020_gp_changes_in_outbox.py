"""GP systems' change notices go through the outbox: what the old announcement loop still
owed is queued there now, and the columns and indexes it polled are dropped.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from adapters.ledger.gp_changes import announce_change

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

_OWED_TASKS = sa.text(
    "SELECT referral_id, client_id, task_id, version, updated_at AS at FROM referrals "
    "WHERE version > changes_published_version AND version > 1"
)
_OWED_COMMUNICATIONS = sa.text(
    "SELECT c.communication_id, c.action_task_id, c.sent_at AS at, r.referral_id, "
    "r.client_id, r.task_id FROM communications c JOIN referrals r USING (referral_id) "
    "WHERE c.published_at IS NULL"
)


def upgrade() -> None:
    bind = op.get_bind()
    owed = [("task", row) for row in bind.execute(_OWED_TASKS)]
    owed += [("communication", row) for row in bind.execute(_OWED_COMMUNICATIONS)]
    # A Task's change before the Communication made with it, as the loop sent them.
    for kind, row in sorted(owed, key=lambda item: (item[1].at, item[0] != "task")):
        if kind == "task":
            made = [("Task", row.task_id, row.version)]
        else:
            made = [("Communication", row.communication_id, 1)]
            if row.action_task_id is not None:
                made.append(("Task", row.action_task_id, 1))
        for resource in made:
            announce_change(
                bind,
                referral_id=row.referral_id,
                client_id=row.client_id,
                task_id=row.task_id,
                resource=resource,  # type: ignore[arg-type]
                at=row.at,
            )
    op.drop_index("ix_communications_unpublished", table_name="communications")
    op.drop_index("ix_referrals_unannounced", table_name="referrals")
    op.drop_column("referrals", "changes_published_version")


def downgrade() -> None:
    # Everything counts as announced: the outbox holds what is still owed.
    op.add_column(
        "referrals",
        sa.Column("changes_published_version", sa.Integer(), nullable=False, server_default="0"),
    )
    op.execute("UPDATE referrals SET changes_published_version = version")
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
