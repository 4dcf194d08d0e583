"""FHIR interop for GP vendors (issue 16): the notifications each Subscription was sent, for
``$events`` and for the rest-hook retries.

- ``subscription_events``: one row per event number per Subscription (ids only: the focus
  resource, the referral, when it changed), with ``delivered_at`` once the endpoint took it.
- ``subscriptions`` gains the retry state: ``failing_since`` (the first failed notification
  of the current outage), ``retry_attempts`` and ``retry_at`` (the next try; null: not failing).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "subscriptions", sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "subscriptions",
        sa.Column("retry_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("subscriptions", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_subscriptions_retry_at", "subscriptions", ["retry_at"])
    op.create_table(
        "subscription_events",
        sa.Column(
            "subscription_id",
            sa.Uuid,
            sa.ForeignKey("subscriptions.subscription_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("event_number", sa.BigInteger, primary_key=True),
        sa.Column("referral_id", sa.Uuid, nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.Uuid, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_subscription_events_recorded_at", "subscription_events", ["recorded_at"])


def downgrade() -> None:
    op.drop_table("subscription_events")
    op.drop_index("ix_subscriptions_retry_at", "subscriptions")
    for column in ("retry_at", "retry_attempts", "failing_since"):
        op.drop_column("subscriptions", column)
