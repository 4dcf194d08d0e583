"""The NEN 7513 audit trail: what a row holds, how rows are chained, how the chain is checked
and how one patient's accesses are listed (``brug audit …``).

A row holds who (``actor``: the client system or operator; ``person``: the person the caller
names, ``X-Brug-Person``), what (``action``), when (``at``), on whom (``patient_pseudonym``:
the keyed pseudonym of the BSN, copied from the referral; never the BSN), why (``purpose``,
the fixed vocabulary below, defaulting by action) and the result (``allowed``/``refused``).

**Insert only.** Migration 0015 revokes UPDATE, DELETE and TRUNCATE from PUBLIC and puts a
trigger on the table that refuses them for every role, the owner too (the dev and test
databases connect as the owner). Only a superuser can get past it (disable the trigger, or
``session_replication_role = replica``), and the hash chain shows what it did.

**The chains.** There are ``AUDIT_CHAINS`` chains side by side; a transaction's rows go to
the chain of its first row's referral (rows about no referral: chain 0), so one referral's
rows stay in one chain. In its chain each row has ``seq`` (1, 2, 3, … without gaps),
``previous_hash`` (the row before's ``row_hash``; the first row's is 64 zeros) and
``row_hash`` = SHA-256 over the previous hash and the row's canonical content (which names
the chain). ``Ledger.audit`` only queues the row on its connection; the rows are chained and
inserted at the very end of the transaction, just before COMMIT, under the chain's
``pg_advisory_xact_lock``. So writers append to a chain one at a time, a rolled-back
transaction leaves neither row nor gap, and a transaction holds the lock only while it
commits (never while it waits for a row lock: no deadlock with ``FOR UPDATE``). Several
chains, because the lock is held through the commit's flush to disk: with one chain every
audited commit in Brug waited for the one before (measured in ``bench/README.md``).
A transaction does not see its own audit rows before it commits.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import weakref
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, event, insert, or_, select, text

from adapters.ledger.tables import audit_log, referrals

GENESIS = "0" * 64
AUDIT_CHAIN_LOCK = 7513_0001  # pg_advisory_xact_lock(key, chain): one appender per chain
AUDIT_CHAINS = 16
PERSON_HEADER = "X-Brug-Person"
MAX_PERSON = 128  # audit_log.person

# The person a caller names for the request being handled (set by adapters/audit_http.py
# from the header; a token's person claim may set it too). Ledger.audit records it.
acting_person: ContextVar[str | None] = ContextVar("brug_acting_person", default=None)

_PERSON = re.compile(rf"[\x21-\x7e](?:[\x20-\x7e]{{0,{MAX_PERSON - 2}}}[\x21-\x7e])?")


class Purpose(StrEnum):
    """Why data was accessed: a small fixed vocabulary."""

    CARE_REFERRAL = "care-referral"  # submitting, routing, reading and withdrawing a referral
    FEEDBACK = "feedback"  # the welfare side's statuses and signals, and the GP reading them
    OPERATIONS = "operations"  # operators keeping the flow running (replays, purges, timelines)
    PRIVACY_OFFICER = "privacy-officer"  # a revealed detail, a patient's access report
    SECURITY = "security"  # failed authentications


class Result(StrEnum):
    ALLOWED = "allowed"
    REFUSED = "refused"


PURPOSE_BY_ACTION: dict[str, Purpose] = {
    **dict.fromkeys(
        [
            "submitted",
            "resubmitted",
            "routed",
            "withdrawn",
            "read-details",
            "read-details-refused",
            "delivered-details",
            "read-task",
            "read-task-refused",
            "search-task",
        ],
        Purpose.CARE_REFERRAL,
    ),
    **dict.fromkeys(
        [
            "reported-status",
            "raised-signal",
            "read-status",
            "read-status-refused",
            "read-communication",
            "search-communication",
            "notified-gp",
            "subscription-created",
            "subscription-deleted",
            "read-subscription",
            "read-subscription-status",
            "read-subscription-events",
        ],
        Purpose.FEEDBACK,
    ),
    **dict.fromkeys(
        ["revealed-details", "revealed-dead-letter", "reported-accesses", "erased"],
        Purpose.PRIVACY_OFFICER,
    ),
    "authentication-failed": Purpose.SECURITY,
}


def default_purpose(action: str) -> Purpose:
    return PURPOSE_BY_ACTION.get(action, Purpose.OPERATIONS)


def default_result(action: str) -> Result:
    refused = action.endswith("-refused") or action == "authentication-failed"
    return Result.REFUSED if refused else Result.ALLOWED


def person_named(value: str | None) -> str | None:
    """The person a caller names, if it is printable ASCII of at most 128 characters."""
    if value is None:
        return None
    value = value.strip()
    return value if _PERSON.fullmatch(value) else None


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    referral_id: uuid.UUID | None
    detail: dict[str, Any]
    person: str | None
    purpose: str
    result: str
    patient_pseudonym: str | None


def new_entry(
    *,
    actor: str,
    action: str,
    referral_id: uuid.UUID | None,
    detail: dict[str, Any],
    person: str | None = None,
    purpose: str | None = None,
    result: str | None = None,
    patient_pseudonym: str | None = None,
) -> AuditEntry:
    return AuditEntry(
        at=datetime.now(UTC),
        actor=actor,
        action=action,
        referral_id=referral_id,
        detail=_plain(detail),
        person=person_named(person if person is not None else acting_person.get()),
        purpose=Purpose(purpose) if purpose is not None else default_purpose(action),
        result=Result(result) if result is not None else default_result(action),
        patient_pseudonym=patient_pseudonym,
    )


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    """JSON as PostgreSQL gives it back, so the hash can be recomputed from the stored row:
    non-JSON values as text, floats as text (jsonb rewrites 1e16 as 10000000000000000)."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(key): plain(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [plain(item) for item in value]
        if isinstance(value, float):
            return repr(value)
        if value is None or isinstance(value, bool | int | str):
            return value
        return str(value)

    plained: dict[str, Any] = plain(detail)
    return plained


def canonical(seq: int, entry: AuditEntry, chain: int = 0) -> bytes:
    """The row's content as hashed: sorted, compact, ASCII-only JSON (version 1). Chain 0
    is left out, so rows from before there were several chains keep their hashes."""
    content: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "at": entry.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": entry.actor,
        "person": entry.person,
        "action": entry.action,
        "purpose": str(entry.purpose),
        "result": str(entry.result),
        "referral_id": str(entry.referral_id) if entry.referral_id else None,
        "patient_pseudonym": entry.patient_pseudonym,
        "detail": entry.detail,
    }
    if chain:
        content["chain"] = chain
    return json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")


def chain_hash(previous_hash: str, seq: int, entry: AuditEntry, chain: int = 0) -> str:
    content = canonical(seq, entry, chain)
    return hashlib.sha256(previous_hash.encode("ascii") + b"\n" + content).hexdigest()


def chain_of(entries: list[AuditEntry]) -> int:
    """The chain a transaction's rows join: its first referral's (stable across processes)."""
    referral_id = next((e.referral_id for e in entries if e.referral_id is not None), None)
    return 0 if referral_id is None else referral_id.int % AUDIT_CHAINS


# Rows queued per connection until its transaction commits (or dropped when it rolls back).
_pending: weakref.WeakKeyDictionary[Connection, list[AuditEntry]] = weakref.WeakKeyDictionary()


def enqueue(connection: Connection, entry: AuditEntry) -> None:
    _pending.setdefault(connection, []).append(entry)


def append(connection: Connection, entries: list[AuditEntry]) -> None:
    """Chain and insert ``entries`` after the newest row, in the caller's transaction."""
    wanted = {e.referral_id for e in entries if e.referral_id and e.patient_pseudonym is None}
    pseudonyms: dict[uuid.UUID, str | None] = {}
    if wanted:
        found = connection.execute(
            select(referrals.c.referral_id, referrals.c.patient_pseudonym).where(
                referrals.c.referral_id.in_(wanted)
            )
        )
        pseudonyms = {row.referral_id: row.patient_pseudonym for row in found}
    chain = chain_of(entries)
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:key, :chain)"),
        {"key": AUDIT_CHAIN_LOCK, "chain": chain},
    )
    last = connection.execute(
        select(audit_log.c.seq, audit_log.c.row_hash)
        .where(audit_log.c.chain == chain)
        .order_by(audit_log.c.seq.desc())
        .limit(1)
    ).one_or_none()
    seq, previous = (last.seq, last.row_hash) if last else (0, GENESIS)
    rows = []
    for entry in entries:
        if entry.patient_pseudonym is None and entry.referral_id is not None:
            entry = _with_pseudonym(entry, pseudonyms.get(entry.referral_id))
        seq += 1
        row_hash = chain_hash(previous, seq, entry, chain)
        chained = {"chain": chain, "seq": seq, "previous_hash": previous, "row_hash": row_hash}
        rows.append(_values(entry) | chained)
        previous = row_hash
    connection.execute(insert(audit_log), rows)


def _with_pseudonym(entry: AuditEntry, pseudonym: str | None) -> AuditEntry:
    return AuditEntry(**(_values(entry) | {"patient_pseudonym": pseudonym}))


def _values(entry: AuditEntry) -> dict[str, Any]:
    return {
        "at": entry.at,
        "actor": entry.actor,
        "action": entry.action,
        "referral_id": entry.referral_id,
        "detail": entry.detail,
        "person": entry.person,
        "purpose": str(entry.purpose),
        "result": str(entry.result),
        "patient_pseudonym": entry.patient_pseudonym,
    }


@event.listens_for(Engine, "commit")
def _append_before_commit(connection: Connection) -> None:
    entries = _pending.pop(connection, None)
    if entries:
        append(connection, entries)


@event.listens_for(Engine, "rollback")
def _drop_on_rollback(connection: Connection) -> None:
    _pending.pop(connection, None)


# Checking the chain.


@dataclass(frozen=True)
class Verification:
    rows: int
    heads: dict[int, tuple[int, str]]  # per chain: its last row's seq and hash
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def verify_chain(connection: Connection) -> Verification:
    """Walk every chain in ``seq`` order; report each gap (deleted rows), each row whose
    content no longer matches its hash (altered) and each broken link (rewritten)."""
    problems: list[str] = []
    heads: dict[int, tuple[int, str]] = {}
    count = 0
    for row in _rows_in_order(connection):
        count += 1
        last_seq, previous = heads.get(row.chain, (0, GENESIS))
        prefix = f"chain {row.chain} " if row.chain else ""
        expected = last_seq + 1
        if row.seq > expected:
            last = row.seq - 1
            missing = f"row {expected}" if last == expected else f"rows {expected} to {last}"
            problems.append(
                f"{prefix}{missing} missing: deleted (the chain resumes at row {row.seq})"
            )
        elif row.previous_hash != previous:
            problems.append(
                f"{prefix}row {row.seq} (id {row.id}): its previous_hash is not row "
                f"{row.seq - 1}'s hash: a row before it was rewritten"
            )
        if chain_hash(row.previous_hash, row.seq, _entry_of(row), row.chain) != row.row_hash:
            problems.append(
                f"{prefix}row {row.seq} (id {row.id}, {row.action} at {row.at.isoformat()}): "
                "altered: its content does not match its hash"
            )
        heads[row.chain] = (row.seq, row.row_hash)
    return Verification(count, heads, problems)


def _rows_in_order(connection: Connection) -> Iterator[Any]:
    result = connection.execution_options(yield_per=1000).execute(
        select(audit_log).order_by(audit_log.c.chain, audit_log.c.seq)
    )
    yield from result


def _entry_of(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        referral_id=row.referral_id,
        detail=row.detail,
        person=row.person,
        purpose=row.purpose,
        result=row.result,
        patient_pseudonym=row.patient_pseudonym,
    )


# A patient's accesses (AVG art. 15).


@dataclass(frozen=True)
class Access:
    at: datetime
    actor: str
    person: str | None
    action: str
    purpose: str
    result: str
    referral_id: uuid.UUID | None

    def line(self) -> str:
        who = self.actor + (f" ({self.person})" if self.person else "")
        referral = str(self.referral_id) if self.referral_id else "-"
        return (
            f"{self.at.astimezone(UTC).isoformat(timespec='seconds')}  {who}  {self.action}  "
            f"purpose {self.purpose}  {self.result}  referral {referral}"
        )


def accesses_of(connection: Connection, pseudonym: str) -> list[Access]:
    """Every audit row about the patient with this pseudonym, oldest first."""
    theirs = select(referrals.c.referral_id).where(referrals.c.patient_pseudonym == pseudonym)
    rows = connection.execute(
        select(audit_log)
        .where(
            or_(
                audit_log.c.patient_pseudonym == pseudonym,
                audit_log.c.referral_id.in_(theirs),
            )
        )
        .order_by(audit_log.c.at, audit_log.c.id)
    )
    return [
        Access(r.at, r.actor, r.person, r.action, r.purpose, r.result, r.referral_id) for r in rows
    ]
