"""The console's monitor page in-process (TestClient in front, the real PostgreSQL behind):
the figures of a municipality after disclosure control, a small count drawn as "too few to
show" and never as a number, no row of the dataset on the page, bad choices answered 400."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.monitor.projection import apply_record
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.monitor.settings import DEV_MONITOR_KEY
from tests.conftest import free_port
from tests.monitor_story import told
from tests.unit.handlers.test_console import signed_in

pytestmark = pytest.mark.integration  # the real PostgreSQL

# A year and a municipality no other handler test counts in.
START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
LELYSTAD = "GM0995"


@pytest.fixture(scope="module")
def pseudonyms(ledger_engine: Engine) -> list[str]:
    """Six referrals in Lelystad in March 2025: two of each story."""
    stories = told("welzijn-lelystad", LELYSTAD, START, DEV_MONITOR_KEY)
    stories += told("welzijn-lelystad", LELYSTAD, START, DEV_MONITOR_KEY)
    with ledger_engine.begin() as connection:
        for story, _ in stories:
            for topic, event in story.records:
                apply_record(connection, topic, event.to_json_bytes(), DEV_MONITOR_KEY)
    return [expected.pseudonym for _, expected in stories]


@pytest.fixture
def console(handler_database: str) -> Iterator[TestClient]:
    app = create_app(
        ConsoleSettings(
            database_url=handler_database,
            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
            console_kafka_side=False,
        )
    )
    with TestClient(app, follow_redirects=False) as client:
        yield client


def _cell(page: str, figure: str, category: str) -> str:
    found = re.search(rf'<td class="mono">{figure}</td><td>{category}</td><td>([^<]*)</td>', page)
    assert found, (figure, category)
    return found.group(1)


def test_the_page_needs_a_session(console: TestClient) -> None:
    answer = console.get("/monitor")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/login")


def test_a_municipality_sees_its_figures_with_small_counts_hidden(
    console: TestClient, pseudonyms: list[str]
) -> None:
    signed_in(console, "olga")

    page = console.get(
        "/monitor", params={"period": "2025-Q1", "scope": f"municipality:{LELYSTAD}"}
    )

    assert page.status_code == 200, page.text
    assert _cell(page.text, "referrals", "all") == "6"
    assert _cell(page.text, "referrals", "gp") == "—"  # two: too few to show
    assert _cell(page.text, "funnel", "received") == "6"
    assert 'aria-label="referrals per month of referral"' in page.text
    assert "<title>2025-03: 6</title>" in page.text
    assert "too few to show" in page.text
    assert not [p for p in pseudonyms if p in page.text], "aggregates only"


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"period": "2025-Q5"}, "A period is"),
        ({"period": "2025", "scope": "municipality:Lelystad"}, "Choose the nation"),
        ({"period": "2025", "profile": "k1"}, "A disclosure profile"),
    ],
)
def test_a_choice_that_cannot_be_read_is_a_400(
    console: TestClient, params: dict[str, str], why: str
) -> None:
    signed_in(console, "olga")
    answer = console.get("/monitor", params=params)
    assert answer.status_code == 400
    assert why in answer.text
