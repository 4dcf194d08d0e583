"""The idempotency answers (one per client and X-Request-ID) and the audit trail."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select

from adapters.ledger.audit_trail import enqueue, new_entry
from adapters.ledger.rows import StoredResponse
from adapters.ledger.tables import idempotency_keys


class Records:
    """Stored answers and audit rows on the caller's connection."""

    connection: Connection

    def stored_response(self, client_id: str, request_id: str) -> StoredResponse | None:
        row = self.connection.execute(
            select(idempotency_keys).where(
                (idempotency_keys.c.client_id == client_id)
                & (idempotency_keys.c.request_id == request_id)
            )
        ).one_or_none()
        if row is None:
            return None
        return StoredResponse(row.request_hash, row.response_status, row.response_body)

    def store_response(
        self, client_id: str, request_id: str, request_hash: str, status: int, body: dict[str, Any]
    ) -> None:
        self.connection.execute(
            insert(idempotency_keys).values(
                client_id=client_id,
                request_id=request_id,
                request_hash=request_hash,
                response_status=status,
                response_body=body,
            )
        )

    def audit(
        self,
        *,
        actor: str,
        action: str,
        referral_id: UUID | None,
        detail: dict[str, Any],
        person: str | None = None,
        purpose: str | None = None,
        result: str | None = None,
        patient_pseudonym: str | None = None,
    ) -> None:
        """Queue an audit row; it is chained and inserted as this transaction commits
        (``adapters/ledger/audit_trail.py``). ``person`` defaults to the one the caller
        named (``X-Brug-Person``), ``purpose`` and ``result`` to the action's, and the
        pseudonym to the referral's."""
        enqueue(
            self.connection,
            new_entry(
                actor=actor,
                action=action,
                referral_id=referral_id,
                detail=detail,
                person=person,
                purpose=purpose,
                result=result,
                patient_pseudonym=patient_pseudonym,
            ),
        )
