"""Erasing one patient's personal data from the ledger (``brug erase``), and the redactions
that retention (``adapters/ledger/retention.py``) applies to rows past their time.

What goes, per referral:

- ``referral_details``: deleted (the only table with the patient's identity);
- ``referrals``: the decline text (``status_reason``) and the outcome (closing summary,
  activities, Positive Health scores) are replaced by ``ERASED_TEXT``; ids, codes and
  the BSN's pseudonym stay (the GP's Task, and the audit trail's link to the patient);
- ``communications``: the payload (feedback texts, signal text) is replaced likewise, so the
  GP's Communication still reads as one that was sent;
- ``webhook_deliveries`` and ``outbox`` rows of the referral: deleted (nothing is sent);
- ``dead_letters`` of the referral, and any whose original record names the patient's
  BSN, the referral, its Task or its ServiceRequest identifier (originals are sealed,
  ``adapters/sealing.py``: each is opened here to be searched, so erasure needs the keys
  and refuses, erasing nothing, if one does not open): the original record and its
  headers are emptied; a parked one is discarded;
- ``idempotency_keys`` whose stored answer names the referral or its Task: deleted.

``audit_log`` is never touched (insert only): an ``erased`` row records what was done.
``referral_status_history`` holds ids and codes only, and the monitor's rows are
pseudonymous by design: both stay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from adapters.ledger.audit_trail import enqueue, new_entry
from adapters.ledger.tables import (
    communications,
    dead_letters,
    idempotency_keys,
    outbox,
    referral_details,
    referrals,
    webhook_deliveries,
)
from adapters.sealing import Sealer, SealError

# What replaces a free text: fixed, so nothing of the original can be recovered from it.
ERASED_TEXT = "[removed by Brug: retention period over or erased on request]"


def erased_outcome(_: dict[str, Any] | None = None) -> dict[str, Any]:
    """An outcome (or feedback payload) without its texts and scores."""
    return {"summary": ERASED_TEXT}


def erased_payload(category: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A Communication's payload without its texts: a signal keeps its kind (a code)."""
    if category == "signal":
        return {"kind": payload.get("kind", "other"), "text": ERASED_TEXT}
    return erased_outcome(payload)


@dataclass
class Erased:
    """What one erasure (or one retention sweep) changed, per table."""

    referrals: int = 0
    details: int = 0
    communications: int = 0
    dead_letters: int = 0
    webhook_deliveries: int = 0
    outbox: int = 0
    idempotency_keys: int = 0
    referral_ids: list[uuid.UUID] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "referrals": self.referrals,
            "details": self.details,
            "communications": self.communications,
            "dead_letters": self.dead_letters,
            "webhook_deliveries": self.webhook_deliveries,
            "outbox": self.outbox,
            "idempotency_keys": self.idempotency_keys,
        }

    def total(self) -> int:
        return sum(self.counts().values())


def referrals_of_patient(connection: Connection, pseudonym: str) -> list[uuid.UUID]:
    rows = connection.execute(
        select(referrals.c.referral_id)
        .where(referrals.c.patient_pseudonym == pseudonym)
        .order_by(referrals.c.created_at)
    )
    return [row.referral_id for row in rows]


def redact_referral_texts(
    connection: Connection, condition: ColumnElement[bool], now: datetime
) -> int:
    """Replace the decline text and the outcome of the referrals matching ``condition``
    (NULL stays NULL: a referral without them shows none)."""
    return connection.execute(
        update(referrals)
        .where(condition)
        .values(
            status_reason=case(
                (referrals.c.status_reason.is_(None), None), else_=literal(ERASED_TEXT)
            ),
            outcome=case(
                (referrals.c.outcome.is_(None), None),
                else_=func.jsonb_build_object("summary", ERASED_TEXT),
            ),
            erased_at=now,
        )
    ).rowcount


def redact_communications(
    connection: Connection, condition: ColumnElement[bool], now: datetime
) -> int:
    """Replace the payload of the Communications matching ``condition``."""
    rows = connection.execute(
        select(
            communications.c.communication_id, communications.c.category, communications.c.payload
        )
        .where(condition)
        .with_for_update()
    ).all()
    for row in rows:
        connection.execute(
            update(communications)
            .where(communications.c.communication_id == row.communication_id)
            .values(payload=erased_payload(row.category, row.payload), erased_at=now)
        )
    return len(rows)


def empty_dead_letters(
    connection: Connection, condition: ColumnElement[bool], now: datetime, by: str
) -> int:
    """Empty the original record (and headers) of the dead letters matching ``condition``;
    a parked one is discarded, since there is nothing left to replay."""
    emptied = connection.execute(
        update(dead_letters)
        .where(condition & dead_letters.c.erased_at.is_(None))
        .values(original_value="", original_headers={}, erased_at=now)
        .returning(dead_letters.c.dead_letter_id, dead_letters.c.state)
    ).all()
    parked = [row.dead_letter_id for row in emptied if row.state == "parked"]
    if parked:
        connection.execute(
            update(dead_letters)
            .where(dead_letters.c.dead_letter_id.in_(parked))
            .values(
                state="discarded",
                resolved_at=now,
                resolved_by=by[:128],
                note="original record erased (retention or erasure): nothing to replay",
            )
        )
    return len(emptied)


def erase_referrals(
    connection: Connection,
    referral_ids: list[uuid.UUID],
    *,
    now: datetime,
    actor: str,
    bsn: str | None = None,
    pseudonym: str | None = None,
    sealer: Sealer,
) -> Erased:
    """Erase the personal data of these referrals (one patient's) and of dead letters that
    name them or the BSN; audit one ``erased`` row per referral (or one for the patient
    when no referral matched), in the caller's transaction."""
    erased = Erased(referral_ids=list(referral_ids))
    rows = (
        connection.execute(
            select(
                referrals.c.referral_id,
                referrals.c.task_id,
                referrals.c.service_request_value,
                referrals.c.patient_pseudonym,
            )
            .where(referrals.c.referral_id.in_(referral_ids))
            .with_for_update()
        ).all()
        if referral_ids
        else []
    )
    needles = [bsn] if bsn else []
    for row in rows:
        needles += [str(row.referral_id)]
        if row.task_id is not None:
            needles.append(str(row.task_id))
        if row.service_request_value:
            needles.append(row.service_request_value)
    ids = [row.referral_id for row in rows]
    if ids:
        erased.details = connection.execute(
            delete(referral_details).where(referral_details.c.referral_id.in_(ids))
        ).rowcount
        erased.referrals = redact_referral_texts(connection, referrals.c.referral_id.in_(ids), now)
        erased.communications = redact_communications(
            connection, communications.c.referral_id.in_(ids), now
        )
        erased.webhook_deliveries = connection.execute(
            delete(webhook_deliveries).where(webhook_deliveries.c.referral_id.in_(ids))
        ).rowcount
        erased.outbox = connection.execute(
            delete(outbox).where(
                or_(outbox.c.referral_id.in_(ids), *[_bytes_contain(n) for n in needles])
            )
        ).rowcount
        erased.idempotency_keys = connection.execute(
            delete(idempotency_keys).where(
                or_(
                    *[
                        cast(idempotency_keys.c.response_body, String).contains(n, autoescape=True)
                        for n in needles
                    ]
                )
            )
        ).rowcount
    elif needles:
        erased.outbox = connection.execute(
            delete(outbox).where(or_(*[_bytes_contain(n) for n in needles]))
        ).rowcount
    letters: list[ColumnElement[bool]] = []
    if naming := _letters_naming(connection, needles, sealer):
        letters.append(dead_letters.c.dead_letter_id.in_(naming))
    if ids:
        letters.append(dead_letters.c.referral_id.in_(ids))
    if letters:
        erased.dead_letters = empty_dead_letters(connection, or_(*letters), now, actor)
    detail = {"erased": erased.counts()}
    for row in rows:
        enqueue(
            connection,
            new_entry(
                actor=actor,
                action="erased",
                referral_id=row.referral_id,
                detail=detail,
                patient_pseudonym=row.patient_pseudonym or pseudonym,
            ),
        )
    if not rows:
        enqueue(
            connection,
            new_entry(
                actor=actor,
                action="erased",
                referral_id=None,
                detail=detail,
                patient_pseudonym=pseudonym,
            ),
        )
    return erased


def _letters_naming(connection: Connection, needles: list[str], sealer: Sealer) -> list[str]:
    """Dead letters whose (opened) original names one of ``needles``: opened in Python,
    since they are sealed at rest (dead letters are few). One that does not open stops
    the erasure (``SealError``): it might name the patient."""
    if not needles:
        return []
    rows = connection.execute(
        select(dead_letters.c.dead_letter_id, dead_letters.c.original_value)
        .where(dead_letters.c.erased_at.is_(None))
        .where(dead_letters.c.original_value != "")
        .with_for_update()
    ).all()
    found = []
    for row in rows:
        try:
            original = sealer.open(row.original_value, bound_to=row.dead_letter_id)
        except SealError as error:
            raise SealError(
                f"dead letter {row.dead_letter_id}'s original does not open ({error}): "
                "nothing was erased"
            ) from None
        if any(needle in original for needle in needles):
            found.append(row.dead_letter_id)
    return found


def _bytes_contain(needle: str) -> ColumnElement[bool]:
    """The outbox keeps its values as bytes: does this value contain ``needle``?"""
    name = f"needle_{uuid.uuid4().hex[:12]}"  # one bind parameter per needle
    clause = text(f"position(convert_to(:{name}, 'UTF8') in outbox.value) > 0")
    return clause.bindparams(**{name: needle})  # type: ignore[return-value]
