"""Retention and erasure of personal data (issue 13; ``adapters/ledger/retention.py`` and
``adapters/ledger/erasure.py``).

- ``erased_at`` on ``referrals`` (the free texts: decline text, outcome), ``communications``
  (the payload) and ``dead_letters`` (the original record): when retention or an erasure
  replaced them, so the sweep passes each row once and readers can say so.
- Indexes for the sweep's cut-offs and for erasure by patient.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

ERASED_AT = ("referrals", "communications", "dead_letters")


def upgrade() -> None:
    for table in ERASED_AT:
        op.add_column(table, sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_referrals_patient_pseudonym", "referrals", ["patient_pseudonym"])
    op.create_index("ix_communications_sent_at", "communications", ["sent_at"])
    op.create_index("ix_dead_letters_failed_at", "dead_letters", ["failed_at"])
    op.create_index("ix_webhook_deliveries_finished_at", "webhook_deliveries", ["finished_at"])
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_created_at", "idempotency_keys")
    op.drop_index("ix_webhook_deliveries_finished_at", "webhook_deliveries")
    op.drop_index("ix_dead_letters_failed_at", "dead_letters")
    op.drop_index("ix_communications_sent_at", "communications")
    op.drop_index("ix_referrals_patient_pseudonym", "referrals")
    for table in ERASED_AT:
        op.drop_column(table, "erased_at")
