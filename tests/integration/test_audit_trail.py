"""The NEN 7513 audit trail in a real PostgreSQL: insert only, hash-chained, checked by
``brug audit verify``; a patient's accesses listed by ``brug audit report --bsn``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from adapters.database import make_engine
from adapters.ledger.audit_trail import AUDIT_CHAINS, GENESIS, acting_person, verify_chain
from adapters.ledger.repository import Ledger, NewReferral
from adapters.ledger.tables import audit_log
from adapters.pseudonyms import DEV_PSEUDONYM_KEY, bsn_pseudonym
from deploy.cli import app
from tests.conftest import database_of_its_own

pytestmark = pytest.mark.integration

BSN = "999911120"  # passes the elfproef; a test number


@pytest.fixture
def audit_database(database_url: str) -> Iterator[str]:
    """A database of its own per test: the tamper test must touch no other test's chain."""
    with database_of_its_own(database_url, "brug_audit") as url:
        yield url


@pytest.fixture
def engine(audit_database: str) -> Iterator[Engine]:
    engine = make_engine(audit_database)
    yield engine
    engine.dispose()


def _write(engine: Engine, count: int, referral_id: uuid.UUID | None = None) -> None:
    for index in range(count):
        with engine.begin() as connection:
            Ledger(connection).audit(
                actor="client:his-test",
                action="read-task",
                referral_id=referral_id,
                detail={"index": index, "note": "ë"},
            )


def _cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", *args, "--database-url", url])
    return result.exit_code, result.output


def test_rows_are_chained_in_commit_order_and_a_rollback_leaves_no_gap(
    engine: Engine, audit_database: str
) -> None:
    _write(engine, 2)
    with engine.connect() as connection:  # never committed: neither row nor gap
        Ledger(connection).audit(actor="client:x", action="read-task", referral_id=None, detail={})
        connection.rollback()
    with engine.begin() as connection:  # two in one transaction
        ledger = Ledger(connection)
        ledger.audit(actor="operator:olga", action="viewed-timeline", referral_id=None, detail={})
        ledger.audit(actor="operator:olga", action="revealed-details", referral_id=None, detail={})
    with engine.connect() as connection:
        rows = connection.execute(select(audit_log).order_by(audit_log.c.seq)).all()
        checked = verify_chain(connection)

    assert [r.seq for r in rows] == [1, 2, 3, 4]
    assert rows[0].previous_hash == GENESIS
    assert all(b.previous_hash == a.row_hash for a, b in pairwise(rows))
    assert [(r.purpose, r.result) for r in rows] == [
        ("care-referral", "allowed"),
        ("care-referral", "allowed"),
        ("operations", "allowed"),
        ("privacy-officer", "allowed"),
    ]
    assert checked.intact and checked.rows == 4 and checked.heads == {0: (4, rows[-1].row_hash)}
    code, output = _cli(audit_database, "verify")
    assert code == 0, output
    assert "audit trail intact: 4 row(s)" in output


def test_referrals_chain_side_by_side_and_a_tampered_chain_is_named(
    engine: Engine, audit_database: str
) -> None:
    # Referral ids picked so that they fall in chains 0, 1 and 2.
    referrals = [uuid.UUID(int=(n << 64) * AUDIT_CHAINS + n) for n in range(3)]
    for _ in range(3):
        for referral_id in referrals:
            _write(engine, 1, referral_id)
    with engine.connect() as connection:
        rows = connection.execute(select(audit_log).order_by(audit_log.c.id)).all()
        checked = verify_chain(connection)
    assert {r.referral_id: r.chain for r in rows} == dict(zip(referrals, range(3), strict=True))
    for chain in range(3):
        mine = [r for r in rows if r.chain == chain]
        assert [r.seq for r in mine] == [1, 2, 3], "gapless in each chain"
        assert mine[0].previous_hash == GENESIS
        assert all(b.previous_hash == a.row_hash for a, b in pairwise(mine))
    assert checked.intact and set(checked.heads) == {0, 1, 2}

    with engine.begin() as connection:  # a row moved from chain 2 into chain 0's place
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text("DELETE FROM audit_log WHERE chain = 0 AND seq = 3"))
        connection.execute(text("UPDATE audit_log SET chain = 0 WHERE chain = 2 AND seq = 3"))
    code, output = _cli(audit_database, "verify")
    assert code == 1, output
    problems = [line for line in output.splitlines() if not line.startswith("audit trail")]
    assert problems and all(p.startswith("row 3 (id") for p in problems), output
    assert any("altered" in p for p in problems), output


def test_the_application_may_not_update_delete_or_truncate(engine: Engine) -> None:
    _write(engine, 1)
    for statement in (
        "UPDATE audit_log SET detail = '{}'::jsonb",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(DBAPIError, match="insert-only"), engine.begin() as connection:
            connection.execute(text(statement))
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(audit_log)).scalar() == 1


def test_tampering_as_the_superuser_is_reported(engine: Engine, audit_database: str) -> None:
    _write(engine, 6)
    with engine.begin() as connection:  # the triggers do not fire for a replica session
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(
            text("""UPDATE audit_log SET detail = '{"index": 99}'::jsonb WHERE seq = 2""")
        )
        connection.execute(text("DELETE FROM audit_log WHERE seq IN (4, 5)"))

    code, output = _cli(audit_database, "verify")

    assert code == 1, output
    assert "row 2 (id" in output and "altered" in output
    assert "rows 4 to 5 missing: deleted" in output
    assert "audit trail NOT intact: 2 problem(s)" in output
    assert "row 3 " not in output and "row 6 (" not in output  # the others are fine


def test_a_rewritten_hash_shows_in_the_next_link(engine: Engine) -> None:
    _write(engine, 3)
    with engine.begin() as connection:
        connection.execute(text("SET LOCAL session_replication_role = replica"))
        connection.execute(text("UPDATE audit_log SET row_hash = repeat('a', 64) WHERE seq = 2"))
    with engine.connect() as connection:
        problems = verify_chain(connection).problems
    assert any(p.startswith("row 2 (") and "altered" in p for p in problems)
    assert any(p.startswith("row 3 (") and "rewritten" in p for p in problems)


def _referral(engine: Engine, pseudonym: str | None) -> uuid.UUID:
    referral_id = uuid.uuid4()
    now = datetime.now(UTC)
    with engine.begin() as connection:
        Ledger(connection).record_intake(
            NewReferral(
                referral_id=referral_id,
                task_id=uuid.uuid4(),
                client_id="his-test",
                requester_agb="01999009",
                service_request_system="urn:test",
                service_request_value=str(referral_id),
                municipality_code="GM0363",
                themes=["loneliness"],
                age_band="75-84",
                urgency="routine",
                submitted_at=now,
                details={"person": {"display_name": "Test Persoon"}},
                retain_until=now + timedelta(days=1),
                patient_pseudonym=pseudonym,
            )
        )
    return referral_id


def test_the_patient_report_lists_who_accessed_their_data(
    engine: Engine, audit_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUG_PSEUDONYM_KEY", DEV_PSEUDONYM_KEY)
    theirs = _referral(engine, bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY))
    someone_elses = _referral(engine, bsn_pseudonym("111222333", DEV_PSEUDONYM_KEY))
    with engine.begin() as connection:
        ledger = Ledger(connection)
        ledger.audit(actor="client:his-test", action="submitted", referral_id=theirs, detail={})
        marker = acting_person.set("uzi:012345678")
        try:
            ledger.audit(
                actor="client:org-dynamo", action="read-details", referral_id=theirs, detail={}
            )
        finally:
            acting_person.reset(marker)
        ledger.audit(
            actor="client:org-other",
            action="read-details-refused",
            referral_id=theirs,
            detail={"status": 403},
        )
        ledger.audit(
            actor="client:his-test", action="read-task", referral_id=someone_elses, detail={}
        )

    code, output = _cli(audit_database, "report", "--bsn", BSN)

    assert code == 0, output
    assert BSN not in output
    lines = [line for line in output.splitlines() if f"referral {theirs}" in line]
    assert len(lines) == 3, output
    assert "client:his-test  submitted  purpose care-referral  allowed" in lines[0]
    assert (
        "client:org-dynamo (uzi:012345678)  read-details  purpose care-referral  allowed"
        in (lines[1])
    )
    assert "client:org-other  read-details-refused  purpose care-referral  refused" in lines[2]
    assert str(someone_elses) not in output
    with engine.connect() as connection:
        last = connection.execute(select(audit_log).order_by(audit_log.c.id.desc())).first()
        stored = connection.execute(text("SELECT string_agg(t::text, ' ') FROM audit_log t"))
        assert BSN not in (stored.scalar() or "")
    assert last is not None
    assert (last.action, last.purpose, last.patient_pseudonym) == (
        "reported-accesses",
        "privacy-officer",
        bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY),
    )
    code, _ = _cli(audit_database, "verify")
    assert code == 0
