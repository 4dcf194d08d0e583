"""The national monitor's dataset (issue 14): one pseudonymous row per referral, live and
the table ``brug monitor rebuild`` fills before it swaps (``adapters/ledger/tables.py``).
No personal data: a keyed pseudonym, days, codes and flags.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

TABLES = ("monitor_referrals", "monitor_rebuild_referrals")


def _json_list() -> sa.TextClause:
    return sa.text("'[]'::jsonb")


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("pseudonym", sa.String(64), primary_key=True),
        sa.Column("submitted_on", sa.Date, nullable=True),
        sa.Column("municipality_code", sa.String(6), nullable=True),
        sa.Column("organisation_id", sa.String(63), nullable=True),
        sa.Column("referrer_discipline", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("age_band", sa.String(8), nullable=True),
        sa.Column("themes", JSONB, nullable=False, server_default=_json_list()),
        sa.Column("urgency", sa.String(16), nullable=True),
        sa.Column("welfare_status", sa.String(32), nullable=True),
        sa.Column("status_sequence", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("received_on", sa.Date, nullable=True),
        sa.Column("accepted_on", sa.Date, nullable=True),
        sa.Column("first_contact_on", sa.Date, nullable=True),
        sa.Column("welfare_ended_on", sa.Date, nullable=True),
        sa.Column("welfare_end", sa.String(32), nullable=True),
        sa.Column("decline_reason", sa.String(32), nullable=True),
        sa.Column("gp_withdrawn_on", sa.Date, nullable=True),
        sa.Column("activity_kinds", JSONB, nullable=False, server_default=_json_list()),
        sa.Column("feedback_to_gp_on", sa.Date, nullable=True),
        sa.Column("feedback_to_gp_channel", sa.String(8), nullable=True),
        sa.Column("overdue_received", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column(
            "overdue_first_contact", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
        sa.Column("signal_kinds", JSONB, nullable=False, server_default=_json_list()),
        sa.Column(
            "positive_health_consented", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
        sa.Column(
            "positive_health_change", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("seen_events", JSONB, nullable=False, server_default=_json_list()),
    )
    op.create_index(f"ix_{name}_submitted_on", name, ["submitted_on"])


def upgrade() -> None:
    for name in TABLES:
        _create(name)


def downgrade() -> None:
    for name in TABLES:
        op.drop_table(name)
