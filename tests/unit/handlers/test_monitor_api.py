"""The monitor API in-process (TestClient in front, the real PostgreSQL behind): a
municipality reads its own figures and the nation's after disclosure control, small
counts as suppressed (null and named), never another municipality's (403); a period or
profile it cannot read is a 400, no or another kind of token a 401; every call audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from adapters.ledger.tables import audit_log
from adapters.monitor.projection import apply_record
from deploy.devstack.stack import DEFAULT_CLIENTS
from services.monitor.settings import DEV_MONITOR_KEY
from services.monitor_api.app import create_app
from services.monitor_api.settings import MonitorApiSettings
from tests.monitor_story import told

pytestmark = pytest.mark.integration  # the real PostgreSQL

# A year no other handler test counts in: the national figures are these referrals only.
START = datetime(2023, 5, 8, 9, 0, tzinfo=UTC)
AMSTERDAM, LELYSTAD = "GM0363", "GM0995"
AMSTERDAM_TOKEN = "dev-municipality-amsterdam"  # deploy/clients/dev-tokens.txt
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def pseudonyms(ledger_engine: Engine) -> list[str]:
    """Six referrals in Amsterdam and six in Lelystad in May 2023 (two of each story)."""
    stories = []
    for organisation, municipality in (
        ("dynamo-amsterdam", AMSTERDAM),
        ("welzijn-lelystad", LELYSTAD),
    ):
        stories += told(organisation, municipality, START, DEV_MONITOR_KEY)
        stories += told(organisation, municipality, START, DEV_MONITOR_KEY)
    with ledger_engine.begin() as connection:
        for story, _ in stories:
            for topic, event in story.records:
                apply_record(connection, topic, event.to_json_bytes(), DEV_MONITOR_KEY)
    return [expected.pseudonym for _, expected in stories]


@pytest.fixture
def api(handler_database: str) -> Iterator[TestClient]:
    app = create_app(
        MonitorApiSettings(
            database_url=handler_database,
            clients_path=DEFAULT_CLIENTS,
            allow_static_tokens=True,
        )
    )
    with TestClient(app) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audited(engine: Engine, action: str) -> list[dict[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(audit_log.c.detail)
            .where(audit_log.c.actor == "gemeente-amsterdam", audit_log.c.action == action)
            .order_by(audit_log.c.id)
        )
        return [row.detail for row in rows]


def test_a_municipality_reads_its_own_figures_with_small_counts_suppressed(
    api: TestClient, pseudonyms: list[str], ledger_engine: Engine
) -> None:
    answer = api.get(
        f"/monitor/v1/municipalities/{AMSTERDAM}/report",
        params={"period": "2023-Q2"},
        headers=_as(AMSTERDAM_TOKEN),
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    report = answer.json()
    assert report["scope"] == {"kind": "municipality", "code": AMSTERDAM}
    assert (report["period"], report["disclosure"]) == ("2023-Q2", "k5")
    assert report["counts"]["referrals"]["all"] == 6
    assert report["counts"]["funnel"]["received"] == 6
    assert report["counts"]["referrals"]["gp"] is None  # two: too few to show
    assert "referrals.gp" in report["suppressed"]
    assert all(
        report["counts"][f][c] is None for f, c in (s.split(".") for s in report["suppressed"])
    )
    assert not [p for p in pseudonyms if p in answer.text], "aggregates only"
    assert {"scope": f"municipality:{AMSTERDAM}", "period": "2023-Q2", "profile": "k5"} in (
        _audited(ledger_engine, "read-monitor-report")
    )


def test_the_cbs_profile_rounds_and_hides_more(api: TestClient, pseudonyms: list[str]) -> None:
    answer = api.get(
        f"/monitor/v1/municipalities/{AMSTERDAM}/report",
        params={"period": "2023", "profile": "cbs"},
        headers=_as(AMSTERDAM_TOKEN),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["disclosure"] == "cbs"
    assert answer.json()["counts"]["referrals"]["all"] is None  # six: CBS hides up to 7


def test_another_municipality_is_refused_and_audited(
    api: TestClient, pseudonyms: list[str], ledger_engine: Engine
) -> None:
    answer = api.get(
        f"/monitor/v1/municipalities/{LELYSTAD}/report",
        params={"period": "2023-Q2"},
        headers=_as(AMSTERDAM_TOKEN),
    )
    assert answer.status_code == 403
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["status"] == 403
    assert {"scope": f"municipality:{LELYSTAD}", "period": "2023-Q2", "profile": ""} in (
        _audited(ledger_engine, "read-monitor-report-refused")
    )


def test_the_national_figures_after_disclosure_control(
    api: TestClient, pseudonyms: list[str]
) -> None:
    answer = api.get(
        "/monitor/v1/national/report", params={"period": "2023-05"}, headers=_as(AMSTERDAM_TOKEN)
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["scope"] == {"kind": "national", "code": "NL"}
    assert report["counts"]["referrals"]["all"] == 12
    assert report["suppressed"], "small categories are hidden nationally too"
    assert all(
        report["counts"][f][c] is None for f, c in (s.split(".") for s in report["suppressed"])
    )


def test_each_municipality_reads_its_own(api: TestClient, pseudonyms: list[str]) -> None:
    answer = api.get(
        f"/monitor/v1/municipalities/{LELYSTAD}/report",
        params={"period": "2023-05"},
        headers=_as("dev-municipality-lelystad"),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["scope"]["code"] == LELYSTAD


@pytest.mark.parametrize(
    ("path", "params", "why"),
    [
        (f"/monitor/v1/municipalities/{AMSTERDAM}/report", {"period": "2023-Q5"}, "period"),
        ("/monitor/v1/national/report", {"period": "last year"}, "period"),
        ("/monitor/v1/national/report", {}, "period"),
        ("/monitor/v1/national/report", {"period": "2023", "profile": "k1"}, "profile"),
    ],
)
def test_a_query_it_cannot_read_is_a_400(
    api: TestClient, path: str, params: dict[str, str], why: str
) -> None:
    answer = api.get(path, params=params, headers=_as(AMSTERDAM_TOKEN))
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert why in answer.json()["detail"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        _as("not-a-token"),
        _as("dev-welfare-dynamo-amsterdam"),  # a case system's token: not a municipality's
        {"Authorization": "Basic Z2VtZWVudGU6eA=="},
    ],
)
def test_without_a_municipality_token_it_is_a_401(api: TestClient, headers: dict[str, str]) -> None:
    answer = api.get(
        f"/monitor/v1/municipalities/{AMSTERDAM}/report",
        params={"period": "2023"},
        headers=headers,
    )
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_an_unknown_path_is_a_problem_not_a_500(api: TestClient) -> None:
    answer = api.get("/monitor/v1/organisations/dynamo-amsterdam/report")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
