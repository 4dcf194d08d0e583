"""The console's pages in-process: FastAPI's TestClient in front, the real PostgreSQL (a
database of its own) behind, the dev operators file. No broker runs: the Kafka side is
off by settings, and Kafka's address is a closed port: the flows and health pages say
that it does not answer.

What is asserted: logging in (wrong password refused, the right one accepted), a page
without a session sends to the login, a form without its CSRF token is refused, and only a
privacy officer may reveal a referral's details."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import NoReturn

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from kafka.errors import KafkaTimeoutError
from sqlalchemy import Engine, select

from adapters.ledger.tables import audit_log
from services.console.app import create_app
from services.console.auth import SESSION_COOKIE
from services.console.settings import ConsoleSettings
from tests.conftest import free_port
from tests.unit.handlers.support import add_referral

pytestmark = pytest.mark.integration  # the real PostgreSQL

PASSWORDS = {"olga": "dev-operator-olga", "pim": "dev-privacy-pim"}  # deploy/operators/dev.json
LELYSTAD = "GM0995"
CSRF_FIELD = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def console(handler_database: str) -> Iterator[TestClient]:
    """A console of its own per test: the login throttle starts afresh."""
    settings = ConsoleSettings(
        database_url=handler_database,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
        console_kafka_side=False,
    )
    # As a context manager: the lifespan runs, and every request shares one event loop,
    # which the engine's pooled connections belong to.
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


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


def _reveals(engine: Engine, referral_id: uuid.UUID) -> list[str]:
    """Who revealed the referral's details, as the audit log tells it."""
    query = select(audit_log.c.actor).where(
        audit_log.c.referral_id == referral_id, audit_log.c.action == "revealed-details"
    )
    with engine.connect() as connection:
        return list(connection.execute(query).scalars())
