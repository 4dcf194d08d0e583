"""Retention and erasure in a real PostgreSQL: ``brug erase --bsn/--referral`` leaves no
marker of the patient in any ledger table but keeps the GP's Task and the audit trail; the
retention sweep (``brug ledger purge``) treats exactly the rows past their time."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, Engine, insert, select, text
from typer.testing import CliRunner

from adapters.database import make_engine
from adapters.ledger.audit_trail import verify_chain
from adapters.ledger.erasure import ERASED_TEXT
from adapters.ledger.retention import RetentionPolicy, sweep
from adapters.ledger.tables import (
    audit_log,
    communications,
    dead_letters,
    idempotency_keys,
    metadata,
    outbox,
    referral_details,
    referrals,
    webhook_deliveries,
)
from adapters.pseudonyms import DEV_PSEUDONYM_KEY, bsn_pseudonym
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer
from deploy.cli import app
from tests.conftest import database_of_its_own

pytestmark = pytest.mark.integration

BSN = "999911120"  # passes the elfproef; a test number
OTHER_BSN = "999912136"
SEALER = Sealer.parse(DEV_DEAD_LETTER_KEYS)  # what the suite's BRUG_DEAD_LETTER_KEYS holds


@pytest.fixture(scope="module")
def url(database_url: str) -> Iterator[str]:
    with database_of_its_own(database_url, "brug_erasure") as own:
        yield own


@pytest.fixture(scope="module")
def engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    yield engine
    engine.dispose()


@dataclass(frozen=True)
class Seeded:
    referral_id: uuid.UUID
    task_id: uuid.UUID
    marker: str
    bsn_only_marker: str  # in a dead letter that names nothing but the BSN


def seed(
    engine: Engine, bsn: str, *, at: datetime | None = None, status: str = "completed"
) -> Seeded:
    """One referral with the patient's data in every place the ledger can hold it, each
    carrying a distinctive marker (and the BSN where a GP Bundle would)."""
    at = at or datetime.now(UTC)
    marker = f"Merkteken{uuid.uuid4().hex[:10]}"
    bsn_only = f"Alleenbsn{uuid.uuid4().hex[:10]}"
    referral_id, task_id = uuid.uuid4(), uuid.uuid4()
    service_request = f"WOR-{uuid.uuid4()}"
    with engine.begin() as connection:
        connection.execute(
            insert(referrals).values(
                referral_id=referral_id,
                task_id=task_id,
                status=status,
                organisation_id="dynamo-amsterdam",
                client_id="his-amsterdam-centrum",
                requester_agb="01999001",
                service_request_system="urn:test",
                service_request_value=service_request,
                status_reason=f"Afgewezen {marker} decline",
                outcome={"summary": f"Samenvatting {marker}", "activities": []},
                patient_pseudonym=bsn_pseudonym(bsn, DEV_PSEUDONYM_KEY),
                created_at=at,
                updated_at=at,
            )
        )
        connection.execute(
            insert(referral_details).values(
                referral_id=referral_id,
                details={"patient": {"family_name": f"Naam{marker}"}},
                retain_until=at + timedelta(days=365),
            )
        )
        for category, payload in (
            ("feedback", {"summary": f"Terugkoppeling {marker}", "activities": []}),
            ("signal", {"kind": "health-concern", "text": f"Signaal {marker}"}),
        ):
            connection.execute(
                insert(communications).values(
                    communication_id=uuid.uuid4(),
                    referral_id=referral_id,
                    category=category,
                    sender="dynamo-amsterdam",
                    payload=payload,
                    sent_at=at,
                )
            )
        connection.execute(
            insert(webhook_deliveries).values(
                event_id=str(uuid.uuid4()),
                referral_id=referral_id,
                organisation_id="xtra-zoetermeer",
                event={"data": {"referral_id": str(referral_id), "note": marker}},
                state="delivered",
                next_attempt_at=at,
                created_at=at,
                finished_at=at,
            )
        )
        connection.execute(
            insert(outbox).values(
                topic="brug.social.status.dynamo-amsterdam.v1",
                key=str(referral_id),
                value=json.dumps({"text": f"Wachtend {marker}"}).encode(),
                event_type="nl.brug.referral.status.v1",
                referral_id=referral_id,
            )
        )
        connection.execute(
            insert(idempotency_keys).values(
                client_id="his-amsterdam-centrum",
                request_id=str(uuid.uuid4()),
                request_hash="0" * 64,
                response_status=201,
                response_body={"entry": [{"response": {"location": f"Task/{task_id}"}}]},
                created_at=at,
            )
        )
        for letter_referral, value in (
            (referral_id, {"referral_id": str(referral_id), "summary": marker}),
            # GP Bundles that failed once the referral existed (a resubmission, naming its
            # ServiceRequest) and before any did: only its BSN names the patient.
            (None, {"identifier": service_request, "bsn": bsn, "diagnosis": marker}),
            (None, {"resourceType": "Bundle", "bsn": bsn, "diagnosis": bsn_only}),
        ):
            # The two found only by what their original names are sealed, as the console
            # keeps them; the referral's is plain text, as one stored before sealing.
            letter_id = str(uuid.uuid4())
            original = json.dumps(value)
            if letter_referral is None:
                original = SEALER.seal(original, bound_to=letter_id)
            connection.execute(
                insert(dead_letters).values(
                    dead_letter_id=letter_id,
                    referral_id=letter_referral,
                    reason="invalid-payload",
                    detail="test",
                    service="fhir_gateway",
                    original_topic="brug.gp.referrals.his-amsterdam-centrum.v1",
                    original_partition=0,
                    original_offset=0,
                    original_value=original,
                    original_headers={"x-marker": value.get("summary") or value["diagnosis"]},
                    attempts=1,
                    failed_at=at,
                    state="parked",
                )
            )
    return Seeded(referral_id, task_id, marker, bsn_only)


def everything_but_the_audit_log(connection: Connection, *, outbox_too: bool = True) -> str:
    """Every row of every ledger table, as text (the audit log is kept by design)."""
    dumped = []
    for table in metadata.sorted_tables:
        if table is audit_log or (table is outbox and not outbox_too):
            continue
        rows = connection.execute(text(f"SELECT row_to_json(t)::text FROM {table.name} t"))  # noqa: S608
        dumped += [row[0] for row in rows]
        if table is outbox:
            values = connection.execute(select(outbox.c.value))
            dumped += [bytes(row.value).decode() for row in values]
    return "\n".join(dumped)


def cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--database-url", url])
    return result.exit_code, result.output


def test_erase_by_bsn_leaves_no_marker_but_keeps_the_task_and_audits(
    engine: Engine, url: str
) -> None:
    first, second = seed(engine, BSN), seed(engine, BSN, status="accepted")
    other = seed(engine, OTHER_BSN)
    with engine.connect() as connection:
        before = everything_but_the_audit_log(connection)
    assert first.marker in before
    assert BSN not in before, "the BSN is only in dead letters' originals, sealed at rest"
    with engine.connect() as connection:
        sealed = connection.execute(
            select(dead_letters.c.original_value)
            .where(dead_letters.c.referral_id.is_(None))
            .where(dead_letters.c.original_value.like("sealed:%"))
        ).scalars()
        assert not [value for value in sealed if BSN in value or first.bsn_only_marker in value]

    code, output = cli(url, "erase", "--bsn", BSN, "--yes")

    assert code == 0, output
    assert "erased 2 referral(s)" in output
    with engine.connect() as connection:
        after = everything_but_the_audit_log(connection)
        tasks = connection.execute(
            select(referrals.c.task_id, referrals.c.status, referrals.c.outcome).where(
                referrals.c.referral_id.in_([first.referral_id, second.referral_id])
            )
        ).all()
        audited = connection.execute(
            select(audit_log).where(audit_log.c.action == "erased").order_by(audit_log.c.seq)
        ).all()
        assert verify_chain(connection).intact
    for marker in (first.marker, second.marker, first.bsn_only_marker, BSN):
        assert marker not in after, f"{marker} survived the erasure"
    assert other.marker in after, "another patient's data is untouched"
    assert {t.task_id for t in tasks} == {first.task_id, second.task_id}, "the Tasks stay"
    assert tasks[0].outcome == {"summary": ERASED_TEXT}
    assert {a.referral_id for a in audited} == {first.referral_id, second.referral_id}
    assert {a.patient_pseudonym for a in audited} == {bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY)}
    assert {a.purpose for a in audited} == {"privacy-officer"}
    assert audited[0].detail["erased"]["details"] == 2
    # Run again: nothing is left to erase, and saying so is audited too.
    code, output = cli(url, "erase", "--bsn", BSN, "--yes")
    assert code == 0 and "details 0" in output, output


def test_erase_by_referral_touches_that_referral_only(engine: Engine, url: str) -> None:
    patient = f"99991{uuid.uuid4().int % 10_000:04d}"  # only a pseudonym is made of it
    one, two = seed(engine, patient), seed(engine, patient)

    code, output = cli(url, "erase", "--referral", str(one.task_id), "--yes")

    assert code == 0, output
    with engine.connect() as connection:
        after = everything_but_the_audit_log(connection)
    assert one.marker not in after
    assert two.marker in after
    # Nothing ties a Bundle that failed before intake to the referral: that takes --bsn.
    assert one.bsn_only_marker in after


def test_erase_refuses_when_a_dead_letter_does_not_open_and_erases_nothing(
    engine: Engine, url: str
) -> None:
    patient = f"99992{uuid.uuid4().int % 10_000:04d}"
    seeded = seed(engine, patient)
    foreign = Sealer.parse("kid9:" + "b3RoZXIta2V5LW5vdC10aGUtb25lLWl0LXVzZWQtMzI=")
    letter_id = str(uuid.uuid4())
    with engine.begin() as connection:
        connection.execute(
            insert(dead_letters).values(
                dead_letter_id=letter_id,
                reason="invalid-payload",
                detail="sealed under a key that is gone",
                service="fhir_gateway",
                original_topic="brug.gp.referrals.his-amsterdam-centrum.v1",
                original_partition=0,
                original_offset=0,
                original_value=foreign.seal("{}", bound_to=letter_id),
                original_headers={},
                attempts=1,
                failed_at=datetime.now(UTC),
                state="parked",
            )
        )
    try:
        result = CliRunner().invoke(
            app, ["erase", "--bsn", patient, "--yes", "--database-url", url]
        )
        assert result.exit_code != 0
        assert "does not open" in str(result.exception) + result.output
        with engine.connect() as connection:
            assert seeded.marker in everything_but_the_audit_log(connection), "nothing erased"
    finally:
        with engine.begin() as connection:
            connection.execute(
                dead_letters.delete().where(dead_letters.c.dead_letter_id == letter_id)
            )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "either --referral or --bsn"),
        (("--bsn", BSN, "--referral", "x"), "either --referral or --bsn"),
        (("--bsn", "12345"), "nine digits"),
        (("--referral", "WOR-no-such-referral"), "no referral"),
    ],
)
def test_erase_refuses_what_it_cannot_act_on(
    url: str, args: tuple[str, ...], expected: str
) -> None:
    result = CliRunner().invoke(app, ["erase", *args, "--yes", "--database-url", url])
    assert result.exit_code != 0
    assert expected in " ".join(result.output.replace("│", " ").split())


def test_the_sweep_treats_the_rows_past_their_time_and_only_those(engine: Engine) -> None:
    now = datetime.now(UTC)
    policy = RetentionPolicy()
    old = seed(engine, OTHER_BSN, at=now - timedelta(days=400))
    fresh = seed(engine, OTHER_BSN, at=now - timedelta(hours=1))
    open_old = seed(engine, OTHER_BSN, at=now - timedelta(days=400), status="in-progress")

    with engine.begin() as connection:
        done = sweep(connection, policy, now, actor="test:sweep")
    with engine.begin() as connection:
        again = sweep(connection, policy, now, actor="test:sweep")
        # Unpublished outbox rows wait for the relay, which purges them once published.
        dump = everything_but_the_audit_log(connection, outbox_too=False)
        open_texts = connection.execute(
            select(referrals.c.outcome, referrals.c.status_reason).where(
                referrals.c.referral_id == open_old.referral_id
            )
        ).one()
        letters = connection.execute(
            select(dead_letters.c.state, dead_letters.c.original_value).where(
                dead_letters.c.referral_id == old.referral_id
            )
        ).all()
        purged = connection.execute(
            select(audit_log.c.detail).where(audit_log.c.action == "purged")
        ).all()

    assert done is not None and again is not None
    assert old.marker not in dump
    assert fresh.marker in dump
    # An open referral keeps its texts (the coach's answer is still to come), but its old
    # Communications, dead letters and deliveries still age out, and its details go at
    # their retain_until.
    assert open_texts.outcome["summary"].startswith("Samenvatting")
    assert open_texts.status_reason.startswith("Afgewezen")
    assert f"Signaal {open_old.marker}" not in dump
    assert f"Naam{open_old.marker}" not in dump
    assert letters == [("discarded", "")]
    assert done.referrals >= 1 and done.communications >= 4 and done.dead_letters >= 6
    assert done.webhook_deliveries >= 2 and done.idempotency_keys >= 2 and done.details >= 1
    assert again.total() == 0, "a second sweep finds nothing left"
    assert any(row.detail["purged"]["details"] >= 1 for row in purged)
