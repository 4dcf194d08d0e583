"""The NEN 7513 audit trail (``adapters/ledger/audit_trail.py``).

- ``referrals.patient_pseudonym``: the keyed pseudonym of the patient's BSN, written at intake.
- ``audit_log`` gains who the person was, on whom (the pseudonym), why (purpose), the result,
  and the hash chain (``seq``, ``previous_hash``, ``row_hash``). Existing rows are chained
  here, in id order, with their action's purpose and result, without person or pseudonym.
- Insert only: UPDATE, DELETE and TRUNCATE are revoked from PUBLIC and from the migrating
  role, and a trigger refuses them for every role, the table's owner included (the dev and
  test databases connect as the owner). A superuser can still disable the trigger; the
  chain then shows what changed (``brug audit verify``).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-12
"""

import sqlalchemy as sa
from alembic import op

from adapters.ledger.audit_trail import (
    GENESIS,
    AuditEntry,
    chain_hash,
    default_purpose,
    default_result,
)

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

CHAIN_COLUMNS = ("purpose", "result", "seq", "previous_hash", "row_hash")


def upgrade() -> None:
    op.add_column("referrals", sa.Column("patient_pseudonym", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("person", sa.String(128), nullable=True))
    op.add_column("audit_log", sa.Column("patient_pseudonym", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("purpose", sa.String(32), nullable=True))
    op.add_column("audit_log", sa.Column("result", sa.String(16), nullable=True))
    op.add_column("audit_log", sa.Column("seq", sa.BigInteger, nullable=True))
    op.add_column("audit_log", sa.Column("previous_hash", sa.String(64), nullable=True))
    op.add_column("audit_log", sa.Column("row_hash", sa.String(64), nullable=True))
    _chain_existing_rows()
    for column in CHAIN_COLUMNS:
        op.alter_column("audit_log", column, nullable=False)
    op.create_unique_constraint("uq_audit_log_seq", "audit_log", ["seq"])
    op.create_index("ix_audit_log_patient", "audit_log", ["patient_pseudonym", "at"])
    op.execute(
        """
        CREATE FUNCTION audit_log_insert_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is insert-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_insert_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_insert_only()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_insert_only()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC, CURRENT_USER")


def _chain_existing_rows() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, at, actor, action, referral_id, detail FROM audit_log ORDER BY id")
    ).all()
    previous = GENESIS
    for seq, row in enumerate(rows, start=1):
        entry = AuditEntry(
            at=row.at,
            actor=row.actor,
            action=row.action,
            referral_id=row.referral_id,
            detail=row.detail,
            person=None,
            purpose=default_purpose(row.action),
            result=default_result(row.action),
            patient_pseudonym=None,
        )
        row_hash = chain_hash(previous, seq, entry)
        connection.execute(
            sa.text(
                "UPDATE audit_log SET purpose = :purpose, result = :result, seq = :seq, "
                "previous_hash = :previous, row_hash = :row_hash WHERE id = :id"
            ),
            {
                "purpose": str(entry.purpose),
                "result": str(entry.result),
                "seq": seq,
                "previous": previous,
                "row_hash": row_hash,
                "id": row.id,
            },
        )
        previous = row_hash


def downgrade() -> None:
    op.execute("GRANT UPDATE, DELETE, TRUNCATE ON audit_log TO CURRENT_USER")
    op.execute("DROP TRIGGER audit_log_no_truncate ON audit_log")
    op.execute("DROP TRIGGER audit_log_insert_only ON audit_log")
    op.execute("DROP FUNCTION audit_log_insert_only()")
    op.drop_index("ix_audit_log_patient", table_name="audit_log")
    op.drop_constraint("uq_audit_log_seq", "audit_log", type_="unique")
    for column in ("person", "patient_pseudonym", *CHAIN_COLUMNS):
        op.drop_column("audit_log", column)
    op.drop_column("referrals", "patient_pseudonym")
