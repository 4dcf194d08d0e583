"""What an operator may do with something stuck: replay it or discard it, each audited.

Shared by the console and ``brug dlq``. A replay re-checks the referral first — withdrawn by
the GP, ended, or its details erased (retention or consent withdrawn) means nothing is
re-sent. A dead letter without a referral (e.g. a GP system's Bundle that could not be read)
goes back through the FHIR edge's own checks, consent included.

Each dead letter is replayed at most once, one by one or in bulk (``replay_dead_letters``:
a reason and a time window), however many operators or runs try at the same time: the
replay claims the letter (``replaying``, ``domain/dead_letters.py``) and commits the claim
before publishing. Kafka refusing the record puts the letter back to ``parked`` with the
error (open again, to be replayed later); no acknowledgement leaves it ``replaying`` with
the error (it may be on the topic: an operator decides once the claim is stale).

A letter's original is sealed in the ledger (``adapters/sealing.py``): the replay opens it
with the ``Sealer`` it is given; one that does not open (its key dropped, or altered) is
refused and left as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from kafka.errors import KafkaError
from sqlalchemy import Connection, Engine

from adapters.kafka_admin import NotSent, Republisher, SentUnconfirmed
from adapters.ledger.dead_letter_claims import Claim, DeadLetterClaims
from adapters.ledger.operations import DeadLetterRow, Operations, ParkedDelivery, original_of
from adapters.ledger.repository import Ledger, ReferralRow
from adapters.sealing import Sealer, SealError
from domain.dead_letters import REPLAYING, ReplayWindow, may_act_on, why_not
from domain.status_machine import has_ended, was_withdrawn

REPLAY_HEADER = "brug-replay-of"
BULK_LIMIT = 1000  # letters per bulk run; a rerun takes the rest (each at most once)


class ActionRefused(Exception):
    """The action was not taken; the message says why, for the operator."""


@dataclass(frozen=True)
class ActionResult:
    message: str
    referral_id: uuid.UUID | None = None


class Outcome(StrEnum):
    REPLAYED = "replayed"  # on its topic again (or its webhook delivery requeued)
    REFUSED = "refused"  # withdrawn, ended, erased...: left as it was
    TAKEN = "taken"  # another operator or run has it, or it is no longer parked
    NOT_SENT = "not-sent"  # Kafka did not take it: parked again, the error kept
    UNCONFIRMED = "unconfirmed"  # no acknowledgement: left replaying, for an operator
    WOULD_REPLAY = "would-replay"  # a dry run's answer


@dataclass(frozen=True)
class LetterOutcome:
    dead_letter_id: str
    failed_at: datetime
    referral_id: uuid.UUID | None
    outcome: Outcome
    message: str


@dataclass(frozen=True)
class BulkReplay:
    window: ReplayWindow
    dry_run: bool
    letters: list[LetterOutcome]
    more: bool  # BULK_LIMIT reached: run it again for the rest

    def count(self, outcome: Outcome) -> int:
        return sum(1 for letter in self.letters if letter.outcome is outcome)

    def summary(self) -> str:
        shown: tuple[Outcome, ...]
        if self.dry_run:
            shown = (Outcome.WOULD_REPLAY, Outcome.REFUSED)
        else:
            shown = (Outcome.REPLAYED, Outcome.REFUSED, Outcome.TAKEN, Outcome.NOT_SENT)
            shown += (Outcome.UNCONFIRMED,) if self.count(Outcome.UNCONFIRMED) else ()
        counted = ", ".join(f"{self.count(outcome)} {outcome.value}" for outcome in shown)
        what = "dry run, nothing changed: " if self.dry_run else ""
        more = f"; more than {BULK_LIMIT} matched: run it again for the rest" if self.more else ""
        return f"{what}{len(self.letters)} parked ({self.window.describe()}): {counted}{more}"


def replay_refusal(referral: ReferralRow | None, details_kept: bool) -> str | None:
    """Why a referral's message must not be sent again, or None when it may."""
    if referral is None:
        return "the referral is not in the ledger"
    if was_withdrawn(referral.status):
        return "the referral was withdrawn; nothing is re-sent"
    if has_ended(referral.status):
        return f"the referral has ended ({referral.status.value}); nothing is re-sent"
    if not details_kept:
        return "the referral's details were erased (retention or consent); nothing is re-sent"
    return None


def replay_dead_letter(
    engine: Engine,
    bootstrap_servers: str,
    dead_letter_id: str,
    *,
    actor: str,
    note: str,
    sealer: Sealer,
) -> ActionResult:
    with Republisher(bootstrap_servers) as publisher:
        done = _replay_one(engine, publisher, sealer, dead_letter_id, actor=actor, note=note)
    if done.outcome is not Outcome.REPLAYED:
        raise ActionRefused(done.message)
    return ActionResult(done.message, done.referral_id)


def replay_dead_letters(
    engine: Engine,
    bootstrap_servers: str,
    window: ReplayWindow,
    *,
    actor: str,
    note: str,
    sealer: Sealer,
    dry_run: bool = False,
    timeout_seconds: float = 10.0,
) -> BulkReplay:
    """Every parked dead letter in ``window``, oldest first, each claimed and replayed at
    most once (a letter another run claimed first is skipped as taken). A dry run says what
    would happen and changes nothing."""
    if not dry_run and not note.strip():
        raise ActionRefused("say what was fixed: a note is required for a bulk replay")
    with engine.connect() as connection:
        chosen = DeadLetterClaims(connection).in_window(window, BULK_LIMIT + 1)
        more, chosen = len(chosen) > BULK_LIMIT, chosen[:BULK_LIMIT]
        if dry_run:
            dry = [_dry(connection, letter, sealer) for letter in chosen]
            return BulkReplay(window, True, dry, more)
    publisher = Republisher(bootstrap_servers, timeout_seconds=timeout_seconds)
    if chosen:
        try:
            publisher.connect()
        except KafkaError as error:
            raise ActionRefused(
                f"Kafka is unreachable ({type(error).__name__}); nothing was claimed"
            ) from None
    with publisher:
        done = [
            _replay_one(
                engine,
                publisher,
                sealer,
                letter.dead_letter_id,
                actor=actor,
                note=note,
                context=f" (bulk: {window.describe()})",
            )
            for letter in chosen
        ]
    return BulkReplay(window, False, done, more)


def _replay_one(
    engine: Engine,
    publisher: Republisher,
    sealer: Sealer,
    dead_letter_id: str,
    *,
    actor: str,
    note: str,
    context: str = "",
) -> LetterOutcome:
    """Claim (committed), publish, settle: a letter is published only by the replay whose
    claim committed, and once. A crash after the claim leaves it ``replaying``."""
    with engine.begin() as connection:
        letter, claim = _claim(connection, sealer, dead_letter_id, actor, note, datetime.now(UTC))
    if isinstance(claim, LetterOutcome):
        return claim
    try:
        publisher.send(
            letter.original_topic,
            original_of(letter, sealer).encode(),  # it opened in _refusal
            letter.original_key.encode() if letter.original_key is not None else None,
            [*_headers(letter), (REPLAY_HEADER, dead_letter_id.encode())],
        )
    except NotSent as error:
        message = f"not sent ({error}): parked again"
        with engine.begin() as connection:
            DeadLetterClaims(connection).not_sent(
                claim, error=f"not sent: {error}", at=datetime.now(UTC)
            )
            _audit_replay(connection, actor, "replay-failed-dead-letter", letter, note, message)
        return _outcome(letter, Outcome.NOT_SENT, message)
    except SentUnconfirmed as error:
        message = (
            f"no acknowledgement ({error}): it may be on {letter.original_topic}; "
            "left replaying for an operator"
        )
        with engine.begin() as connection:
            DeadLetterClaims(connection).uncertain(
                claim, error=f"unconfirmed: {error}", at=datetime.now(UTC)
            )
            _audit_replay(connection, actor, "replay-failed-dead-letter", letter, note, message)
        return _outcome(letter, Outcome.UNCONFIRMED, message)
    message = f"replayed to {letter.original_topic}"
    with engine.begin() as connection:
        claims = DeadLetterClaims(connection)
        if not claims.replayed(claim, note=note, at=datetime.now(UTC)):
            message += " (its stale claim had been taken over meanwhile)"
        _audit_replay(connection, actor, "replayed-dead-letter", letter, note, message + context)
    return _outcome(letter, Outcome.REPLAYED, message)


def _claim(
    connection: Connection,
    sealer: Sealer,
    dead_letter_id: str,
    actor: str,
    note: str,
    now: datetime,
) -> tuple[DeadLetterRow, Claim | LetterOutcome]:
    """Lock and check the letter, then claim it; or finish it here: taken, refused, or a
    webhook's delivery requeued (nothing to publish)."""
    claims = DeadLetterClaims(connection)
    letter = claims.lock(dead_letter_id)
    if letter is None:
        found = Operations(connection).dead_letter(dead_letter_id)
        if found is None:
            raise ActionRefused("no dead letter with that id")
        return found, _outcome(found, Outcome.TAKEN, "another operator is acting on it now")
    if not may_act_on(letter.state, letter.claimed_at, now):
        return letter, _outcome(letter, Outcome.TAKEN, _why_not(letter, now))
    refusal = _refusal(connection, letter, sealer)
    if refusal is not None:
        return letter, _outcome(letter, Outcome.REFUSED, refusal)
    if letter.reason == "undeliverable":
        message = _requeue_for(connection, letter)
        _resolve(connection, letter, "replayed", actor, note, message)
        return letter, _outcome(letter, Outcome.REPLAYED, message)
    return letter, claims.claim(dead_letter_id, by=actor, at=now)


def _dry(connection: Connection, letter: DeadLetterRow, sealer: Sealer) -> LetterOutcome:
    refusal = _refusal(connection, letter, sealer)
    if refusal is not None:
        return _outcome(letter, Outcome.REFUSED, refusal)
    if letter.reason == "undeliverable":
        return _outcome(letter, Outcome.WOULD_REPLAY, "its webhook delivery would be requeued")
    return _outcome(letter, Outcome.WOULD_REPLAY, f"would be replayed to {letter.original_topic}")


def _refusal(connection: Connection, letter: DeadLetterRow, sealer: Sealer) -> str | None:
    """Why this letter must not be replayed (its referral, nothing left to send, or its
    sealed original does not open)."""
    if letter.erased_at is not None:
        return "its original record was erased (retention or erasure): nothing to replay"
    if letter.reason == "undeliverable":
        if not _parked_deliveries(connection, letter):
            return "its webhook delivery is no longer parked"
    else:
        try:
            original_of(letter, sealer)
        except SealError as error:
            return f"its original record does not open ({error}); left as it was"
    if letter.referral_id is None:
        return None
    ledger = Ledger(connection)
    referral_id = letter.referral_id
    return replay_refusal(ledger.referral(referral_id), ledger.details(referral_id) is not None)


def _outcome(letter: DeadLetterRow, outcome: Outcome, message: str) -> LetterOutcome:
    return LetterOutcome(
        letter.dead_letter_id, letter.failed_at, letter.referral_id, outcome, message
    )


def _why_not(letter: DeadLetterRow, now: datetime) -> str:
    by = letter.claimed_by if letter.state == REPLAYING else letter.resolved_by
    return why_not(letter.state, by, letter.claimed_at, now)


def _audit_replay(
    connection: Connection,
    actor: str,
    action: str,
    letter: DeadLetterRow,
    note: str,
    outcome: str,
) -> None:
    subject = letter.dead_letter_id
    audit_action(connection, actor, action, letter.referral_id, subject, note, outcome)


def discard_dead_letter(
    engine: Engine, dead_letter_id: str, *, actor: str, note: str
) -> ActionResult:
    if not note.strip():
        raise ActionRefused("say why it is discarded: a note is required")
    with engine.begin() as connection:
        letter = _parked_letter(connection, dead_letter_id)
        _resolve(connection, letter, "discarded", actor, note, "discarded")
    return ActionResult("discarded", letter.referral_id)


def _parked_letter(connection: Connection, dead_letter_id: str) -> DeadLetterRow:
    """The letter locked, if an operator may act on it (parked, or a stale claim)."""
    letter = Operations(connection).dead_letter(dead_letter_id, for_update=True)
    if letter is None:
        raise ActionRefused("no dead letter with that id")
    now = datetime.now(UTC)
    if not may_act_on(letter.state, letter.claimed_at, now):
        raise ActionRefused(_why_not(letter, now))
    return letter


def check_referral(connection: Connection, referral_id: uuid.UUID | None) -> None:
    """Refuse (``ActionRefused``) when the referral may no longer be acted on."""
    if referral_id is None:
        return
    ledger = Ledger(connection)
    refusal = replay_refusal(ledger.referral(referral_id), ledger.details(referral_id) is not None)
    if refusal is not None:
        raise ActionRefused(refusal)


def _requeue_for(connection: Connection, letter: DeadLetterRow) -> str:
    """A parked webhook's dead letter: replaying the record would be deduplicated by
    webhook_delivery, so the parked delivery itself is tried again (``_refusal`` saw that
    one is parked)."""
    operations = Operations(connection)
    for delivery in _parked_deliveries(connection, letter):
        operations.requeue_delivery(delivery.event_id, datetime.now(UTC))
    return "webhook delivery requeued"


def _parked_deliveries(connection: Connection, letter: DeadLetterRow) -> list[ParkedDelivery]:
    if letter.referral_id is None:
        return []
    return Operations(connection).parked_deliveries(referral_id=letter.referral_id)


def _headers(letter: DeadLetterRow) -> list[tuple[str, bytes]]:
    return [
        (name, value.encode())
        for name, value in letter.original_headers.items()
        if name != REPLAY_HEADER
    ]


def _resolve(
    connection: Connection, letter: DeadLetterRow, state: str, actor: str, note: str, what: str
) -> None:
    Operations(connection).resolve_dead_letter(
        letter.dead_letter_id, state, by=actor, note=note, at=datetime.now(UTC)
    )
    action = "replayed-dead-letter" if state == "replayed" else "discarded-dead-letter"
    audit_action(connection, actor, action, letter.referral_id, letter.dead_letter_id, note, what)


def audit_action(
    connection: Connection,
    actor: str,
    action: str,
    referral_id: uuid.UUID | None,
    subject: str,
    note: str,
    outcome: str = "",
) -> None:
    Ledger(connection).audit(
        actor=actor,
        action=action,
        referral_id=referral_id,
        detail={"subject": subject, "note": note[:2000], "outcome": outcome},
    )
