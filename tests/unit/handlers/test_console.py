"""The console's pages in-process: FastAPI's TestClient in front, the real PostgreSQL (a
database of its own) behind, the dev operators file. No broker runs: the Kafka side is
off by settings, and Kafka's address is a closed port: the flows and health pages say
that it does not answer.

What is asserted: logging in (wrong password refused, the right one accepted), a page
without a session sends to the login, a form without its CSRF token is refused, and only a
privacy officer may reveal a referral's details. And the login throttle, kept in the
ledger: a user name blocked after its failures from any address, an address blocked across
user names, a block that a new console instance still sees, a success that clears the
count; sessions ended by a changed operators file and by their absolute lifetime. A bulk
replay's dry run, and its form's bad input refused."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from kafka.errors import KafkaTimeoutError
from sqlalchemy import Engine, delete, func, select

from adapters.ledger.operations import Operations
from adapters.ledger.tables import audit_log, login_failures, operator_sessions
from adapters.runtime.settings import DEPLOY_DIR
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer, SealError, is_sealed
from contracts.events.deadletter import DeadLetter
from services.console.app import create_app
from services.console.auth import SESSION_COOKIE
from services.console.settings import ConsoleSettings
from tests.conftest import free_port
from tests.unit.handlers.support import add_referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

PASSWORDS = {"olga": "dev-operator-olga", "pim": "dev-privacy-pim"}  # deploy/operators/dev.json
LELYSTAD = "GM0995"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


MakeConsole = Callable[..., TestClient]
_audit_mark = [0]  # the audit log's last id when the running test began


@pytest.fixture
def make_console(handler_database: str, ledger_engine: Engine) -> Iterator[MakeConsole]:
    """Consoles on one ledger, each a new app instance, as replicas or a restart make them;
    the ledger's login failures start afresh for each test. Keywords: settings, the clock,
    and the client's source address."""
    with ledger_engine.begin() as connection:
        connection.execute(delete(login_failures))
        _audit_mark[0] = connection.execute(
            select(func.coalesce(func.max(audit_log.c.id), 0))
        ).scalar_one()
    kafka = f"127.0.0.1:{free_port()}"  # nothing listens there

    with ExitStack() as running:

        def make(
            *,
            address: str = "127.0.0.1",
            clock: Callable[[], datetime] | None = None,
            **settings: Any,
        ) -> TestClient:
            app = create_app(
                ConsoleSettings(
                    database_url=handler_database,
                    kafka_bootstrap_servers=kafka,
                    console_kafka_side=False,
                    **settings,
                ),
                **({"clock": clock} if clock else {}),
            )
            # As a context manager: the lifespan runs, and every request shares one event
            # loop, which the engine's pooled connections belong to.
            client = TestClient(app, follow_redirects=False, client=(address, 50_000))
            return running.enter_context(client)

        yield make


@pytest.fixture
def console(make_console: MakeConsole) -> TestClient:
    return make_console()


def log_in(client: TestClient, username: str, password: str) -> Response:
    """Submit the login form as a browser would: its token from the page and the cookie."""
    form = client.get("/login", params={"next": "/stuck"})
    assert form.status_code == 200
    token = _csrf_token(form)
    fields = {"username": username, "password": password, "csrf": token, "next": "/stuck"}
    return client.post("/login", data=fields)


def signed_in(client: TestClient, username: str) -> str:
    """Logs ``username`` in; answers the session's CSRF token, as the pages' forms carry it."""
    assert log_in(client, username, PASSWORDS[username]).status_code == 303
    return _csrf_token(client.get("/stuck"))


def _csrf_token(page: Response) -> str:
    found = CSRF_FIELD.search(page.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def test_a_page_without_a_session_sends_to_the_login(console: TestClient) -> None:
    for path in ("/stuck", "/flows", f"/referrals/{uuid.uuid4()}"):
        answer = console.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == f"/login?next={path}"
    assert console.get("/login").status_code == 200


def test_login_refuses_a_wrong_password(console: TestClient) -> None:
    answer = log_in(console, "olga", "not-her-password")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?failed=1&next=/stuck"
    assert SESSION_COOKIE not in console.cookies
    assert "wrong password" in console.get(answer.headers["location"]).text
    assert console.get("/stuck").status_code == 303  # still not signed in


def test_login_accepts_an_operator(console: TestClient) -> None:
    answer = log_in(console, "olga", PASSWORDS["olga"])
    assert answer.status_code == 303
    assert answer.headers["location"] == "/stuck"
    assert console.cookies.get(SESSION_COOKIE)
    stuck = console.get("/stuck")
    assert stuck.status_code == 200
    assert "olga" in stuck.text
    assert stuck.headers["X-Frame-Options"] == "DENY"


def test_the_kafka_pages_say_that_the_broker_does_not_answer(
    console: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(bootstrap_servers: str) -> NoReturn:
        # What kafka-python raises for a broker that is away, without its 30 s bootstrap wait.
        raise KafkaTimeoutError(f"Unable to bootstrap from {bootstrap_servers}")

    monkeypatch.setattr("services.console.flows.kafka_flows", unreachable)
    signed_in(console, "olga")
    flows = console.get("/flows")
    assert flows.status_code == 200
    assert "Kafka did not answer (KafkaTimeoutError)" in flows.text
    assert "dead letters parked" in flows.text  # the ledger's figures are there all the same
    health = console.get("/health")  # asks the closed port itself (3 s)
    assert health.status_code == 200
    assert re.search(r"Kafka</td><td><span[^>]*>unreachable", health.text)
    assert re.search(r"PostgreSQL</td><td><span[^>]*>reachable", health.text)


def test_a_login_without_its_form_token_is_refused(console: TestClient) -> None:
    console.get("/login")  # the login cookie is set, but the form's token is not sent
    fields = {"username": "olga", "password": PASSWORDS["olga"], "next": "/stuck"}
    answer = console.post("/login", data=fields)
    assert answer.status_code == 403
    assert "login form expired" in answer.text
    assert SESSION_COOKIE not in console.cookies


def test_a_post_without_the_csrf_token_is_refused(console: TestClient) -> None:
    token = signed_in(console, "olga")
    refused = console.post("/logout", data={})
    assert refused.status_code == 403
    assert "CSRF check failed" in refused.text
    assert console.post("/logout", data={"csrf": "a-guess"}).status_code == 403
    assert console.get("/stuck").status_code == 200  # the session is still open
    assert console.post("/logout", data={"csrf": token}).status_code == 303
    assert console.get("/stuck").status_code == 303  # and now it is closed


def test_only_a_privacy_officer_may_reveal(console: TestClient, ledger_engine: Engine) -> None:
    referral_id = add_referral(ledger_engine, LELYSTAD)
    reveal = f"/referrals/{referral_id}/reveal"
    reason = {"reason": "the welfare organisation asked which GP referred"}

    token = signed_in(console, "olga")
    refused = console.post(reveal, data={**reason, "csrf": token})
    assert refused.status_code == 403
    assert "Only a privacy officer" in refused.text
    assert _reveals(ledger_engine, referral_id) == []

    console.cookies.clear()
    token = signed_in(console, "pim")
    assert console.post(reveal, data=reason).status_code == 403  # the CSRF token, again
    revealed = console.post(reveal, data={**reason, "csrf": token})
    assert revealed.status_code == 200
    assert "this reveal is in the audit log" in revealed.text
    assert _reveals(ledger_engine, referral_id) == ["operator:pim"]


def test_a_dead_letter_is_sealed_at_rest_and_the_privacy_officer_reveals_it_opened(
    console: TestClient, ledger_engine: Engine
) -> None:
    letter_id, marker = str(uuid.uuid4()), f"Angststoornis-{uuid.uuid4().hex[:8]}"
    letter = DeadLetter(
        reason="gave-up",
        detail="the handler kept failing",
        service="feedback",
        original_topic="brug.social.status.dynamo-amsterdam.v1",
        original_partition=0,
        original_offset=8,
        original_key="not-a-referral",
        original_value=json.dumps({"diagnosis": marker}),
        attempts=5,
        failed_at=datetime.now(UTC),
    )
    with ledger_engine.begin() as connection:
        Operations(connection).record_dead_letter(
            letter_id, letter, Sealer.parse(DEV_DEAD_LETTER_KEYS)
        )
    with ledger_engine.connect() as connection:
        stored = Operations(connection).dead_letter(letter_id)
    assert stored is not None and is_sealed(stored.original_value)
    assert marker not in stored.original_value

    token = signed_in(console, "pim")
    page = console.get(f"/dead-letters/{letter_id}")
    assert page.status_code == 200 and marker not in page.text
    reason = {"reason": "which record failed", "csrf": token}
    revealed = console.post(f"/dead-letters/{letter_id}/reveal", data=reason)
    assert revealed.status_code == 200
    assert marker in revealed.text, "the reveal shows the original, opened"


def test_the_console_refuses_to_start_without_a_dead_letter_key(
    make_console: MakeConsole, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BRUG_DEAD_LETTER_KEYS", raising=False)
    with pytest.raises(SealError, match="BRUG_DEAD_LETTER_KEYS is not set"):
        make_console()


def _reveals(engine: Engine, referral_id: uuid.UUID) -> list[str]:
    """Who revealed the referral's details, as the audit log tells it."""
    query = select(audit_log.c.actor).where(
        audit_log.c.referral_id == referral_id, audit_log.c.action == "revealed-details"
    )
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def test_failed_logins_block_the_user_name_from_any_address(
    make_console: MakeConsole, ledger_engine: Engine
) -> None:
    console = make_console()  # the defaults: 5 per user name, 20 per address
    for _ in range(5):
        assert (
            log_in(console, "olga", "not-her-password")
            .headers["location"]
            .startswith("/login?failed=1")
        )
    elsewhere = make_console(address="127.0.0.2")
    for client in (console, elsewhere):
        blocked = log_in(client, "olga", PASSWORDS["olga"])
        assert blocked.status_code == 403
        assert "Too many failed logins for this user; try again in 15 min." in blocked.text
        assert SESSION_COOKIE not in client.cookies
    assert log_in(console, "pim", PASSWORDS["pim"]).status_code == 303  # another name may
    here = {"username": "olga", "source_address": "127.0.0.1"}
    assert _audited(ledger_engine, "authentication-failed") == [here] * 5
    assert _audited(ledger_engine, "console-login-blocked") == [
        {**here, "scope": "user", "minutes": 15}
    ]


def test_failed_logins_block_the_source_address_across_user_names(
    make_console: MakeConsole, ledger_engine: Engine
) -> None:
    console = make_console(login_failures_per_address=4)
    for username in ("olga", "pim", "nobody", "OLGA-x"):
        assert (
            log_in(console, username, "a-guess").headers["location"].startswith("/login?failed=1")
        )
    blocked = log_in(console, "pim", PASSWORDS["pim"])
    assert blocked.status_code == 403
    assert "Too many failed logins for this address" in blocked.text
    elsewhere = make_console(address="127.0.0.2", login_failures_per_address=4)
    assert log_in(elsewhere, "pim", PASSWORDS["pim"]).status_code == 303
    # Only names of operators reach the audit trail (a typed password would be a name).
    failed = _audited(ledger_engine, "authentication-failed")
    assert [entry["username"] for entry in failed] == ["olga", "pim", None, None]
    assert {entry["source_address"] for entry in failed} == {"127.0.0.1"}
    assert _audited(ledger_engine, "console-login-blocked")[-1]["scope"] == "address"


def test_a_block_holds_for_a_new_console_instance(make_console: MakeConsole) -> None:
    first = make_console()
    for _ in range(5):
        log_in(first, "olga", "not-her-password")
    restarted = make_console()
    assert log_in(restarted, "olga", PASSWORDS["olga"]).status_code == 403


def test_a_block_ends_when_the_failures_age_out_of_the_window(
    make_console: MakeConsole,
) -> None:
    now = [datetime.now(UTC)]
    console = make_console(clock=lambda: now[0])
    for _ in range(5):
        log_in(console, "olga", "not-her-password")
        now[0] += timedelta(minutes=1)
    assert "try again in 10 min." in log_in(console, "olga", PASSWORDS["olga"]).text
    now[0] += timedelta(minutes=9, seconds=30)
    assert "try again in 1 min." in log_in(console, "olga", PASSWORDS["olga"]).text
    now[0] += timedelta(seconds=30)  # the first failure is 15 minutes old: out of the window
    assert log_in(console, "olga", PASSWORDS["olga"]).status_code == 303


def test_a_successful_login_clears_the_user_names_failures(
    make_console: MakeConsole, ledger_engine: Engine
) -> None:
    console = make_console()
    for _ in range(4):
        log_in(console, "olga", "not-her-password")
    assert _failures(ledger_engine, "olga") == 4
    assert log_in(console, "olga", PASSWORDS["olga"]).status_code == 303
    assert _failures(ledger_engine, "olga") == 0
    console.cookies.clear()
    for _ in range(4):  # four more would be nine without the clearing: blocked
        log_in(console, "olga", "not-her-password")
    assert log_in(console, "olga", PASSWORDS["olga"]).headers["location"] == "/stuck"


def test_sessions_end_when_the_operators_role_changes_or_the_operator_is_removed(
    make_console: MakeConsole, ledger_engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "operators.json"
    registry = json.loads((DEPLOY_DIR / "operators" / "dev.json").read_text())
    path.write_text(json.dumps(registry))
    console = make_console(operators_path=path)
    signed_in(console, "pim")
    assert console.get("/stuck").status_code == 200

    for operator in registry["operators"]:
        if operator["username"] == "pim":
            operator["role"] = "operator"
    path.write_text(json.dumps(registry))
    os.utime(path, ns=(1, 1))  # a distinct stamp even on coarse file systems
    answer = console.get("/stuck")  # the same console reads the file again
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/stuck"
    assert _sessions(ledger_engine, "pim") == 0
    assert _audited(ledger_engine, "console-session-ended")[-1] == {
        "username": "pim",
        "reason": "role changed",
    }
    signed_in(console, "pim")  # a new login, in the new role
    console.cookies.clear()

    signed_in(console, "olga")
    registry["operators"] = [o for o in registry["operators"] if o["username"] != "olga"]
    path.write_text(json.dumps(registry))
    os.utime(path, ns=(2, 2))
    restarted = make_console(operators_path=path)  # a new instance reads it at its start
    restarted.cookies.set(SESSION_COOKIE, console.cookies[SESSION_COOKIE])
    assert restarted.get("/stuck").headers["location"] == "/login?next=/stuck"
    assert _sessions(ledger_engine, "olga") == 0
    assert (
        log_in(restarted, "olga", PASSWORDS["olga"])
        .headers["location"]
        .startswith("/login?failed=1")
    )


def test_a_session_ends_after_its_lifetime_however_busy(make_console: MakeConsole) -> None:
    now = [datetime.now(UTC)]
    # An idle timeout longer than the lifetime: only the lifetime can end the session.
    console = make_console(clock=lambda: now[0], session_idle_minutes=24 * 60)
    signed_in(console, "olga")
    now[0] += timedelta(hours=11, minutes=59)
    assert console.get("/stuck").status_code == 200
    now[0] += timedelta(minutes=2)  # 12 h and a minute after the login
    answer = console.get("/stuck")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=/stuck"


def _audited(engine: Engine, action: str) -> list[dict[str, Any]]:
    """The details of the audit entries of ``action`` since the test began, oldest first."""
    query = (
        select(audit_log.c.detail)
        .where(audit_log.c.action == action, audit_log.c.id > _audit_mark[0])
        .order_by(audit_log.c.id)
    )
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())


def _failures(engine: Engine, username: str) -> int:
    query = select(func.count()).where(login_failures.c.username == username)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def _sessions(engine: Engine, username: str) -> int:
    query = select(func.count()).where(operator_sessions.c.username == username)
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def test_a_bulk_replay_dry_run_says_what_would_be_replayed_and_changes_nothing(
    console: TestClient, ledger_engine: Engine
) -> None:
    hour = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=uuid.uuid4().int % 8000)
    letter_id = str(uuid.uuid4())
    with ledger_engine.begin() as connection:
        Operations(connection).record_dead_letter(
            letter_id,
            DeadLetter(
                reason="gave-up",
                detail="the handler kept failing",
                service="feedback",
                original_topic="brug.social.status.dynamo-amsterdam.v1",
                original_partition=0,
                original_offset=7,
                original_key="not-a-referral",
                original_value="{}",
                attempts=5,
                failed_at=hour + timedelta(minutes=30),
            ),
            Sealer.parse(DEV_DEAD_LETTER_KEYS),
        )
    token = signed_in(console, "olga")
    assert 'action="/dead-letters/bulk-replay"' in console.get("/stuck").text
    window = {
        "reason": "gave-up",
        "since": hour.strftime("%Y-%m-%dT%H:%M"),  # datetime-local: UTC, as the page says
        "until": (hour + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        "csrf": token,
    }

    dry = console.post("/dead-letters/bulk-replay", data={**window, "dry_run": "1"})
    assert dry.status_code == 303
    notice = console.get(dry.headers["location"]).text
    assert "dry run, nothing changed: 1 parked" in notice and "1 would-replay" in notice
    no_note = console.post("/dead-letters/bulk-replay", data=window)
    assert no_note.status_code == 403 and "a note is required" in no_note.text
    backwards = console.post(
        "/dead-letters/bulk-replay", data={**window, "until": window["since"], "note": "x"}
    )
    assert backwards.status_code == 400 and "--since must be before --until" in backwards.text
    garbled = console.post("/dead-letters/bulk-replay", data={**window, "since": "gisteren"})
    assert garbled.status_code == 400
    forged = console.post("/dead-letters/bulk-replay", data={**window, "csrf": "x"})
    assert forged.status_code == 403
    with ledger_engine.connect() as connection:
        letter = Operations(connection).dead_letter(letter_id)
    assert letter is not None and (letter.state, letter.claimed_at) == ("parked", None)
