"""The social gateway in-process, as ``services/social_gateway/app.py`` builds it: FastAPI's
TestClient in front (started on FastStream's in-memory broker), the real PostgreSQL (a
database of its own) behind.

What is asserted: the assigned organisation fetches the details (200), another one is
refused (403), a withdrawn referral is gone (410), and so is a completed or declined one
unless a grace period is set, each attempt audited; a valid status
POST is 202 with one status-reported event in the outbox for the organisation's status
topic, an illegal one is a 409 problem document and puts nothing in the outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from faststream.kafka import TestKafkaBroker
from sqlalchemy import Engine, select

from adapters.ledger.repository import Ledger, NewReferral
from adapters.ledger.tables import audit_log
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import ReferralStatus
from contracts.events.status import ReferralStatusReported, WelfareStatus
from deploy.devstack.stack import dev_tokens
from domain.status_machine import TASK_VIEW
from services.social_gateway.app import create_app
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port
from tests.unit.handlers.support import outbox_rows

pytestmark = pytest.mark.integration  # the real PostgreSQL

ORGANISATION = "dynamo-amsterdam"
TOKENS = dev_tokens()
ASSIGNED = {"Authorization": f"Bearer {TOKENS['case-dynamo-amsterdam']}"}
OTHER = {"Authorization": f"Bearer {TOKENS['case-welzijn-lelystad']}"}
PROBLEM_JSON = "application/problem+json"


@pytest.fixture
async def social(handler_database: str) -> AsyncIterator[TestClient]:
    """A gateway of its own per test, started (lifespan) on the in-memory broker."""
    async with _gateway(handler_database) as client:
        yield client


@pytest.fixture
async def social_with_grace(handler_database: str) -> AsyncIterator[TestClient]:
    """The same, with details readable for a day after a referral ended."""
    async with _gateway(handler_database, details_grace_after_end_seconds=86400) as client:
        yield client


@asynccontextmanager
async def _gateway(database_url: str, **settings: Any) -> AsyncIterator[TestClient]:
    app = create_app(
        SocialGatewaySettings(
            database_url=database_url,
            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # nothing listens there
            **settings,
        )
    )
    async with TestKafkaBroker(app.state.broker):
        with TestClient(app) as client:
            yield client


def routed_referral(engine: Engine, organisation: str = ORGANISATION) -> uuid.UUID:
    """A referral with its minimised details, as the intake and the router leave it."""
    now = datetime.now(UTC)
    referral_id = uuid.uuid4()
    new = NewReferral(
        referral_id=referral_id,
        task_id=uuid.uuid4(),
        client_id="his-amsterdam-centrum",
        requester_agb="01999001",
        service_request_system="urn:test",
        service_request_value=str(uuid.uuid4()),
        municipality_code="GM0363",
        themes=["loneliness"],
        age_band="75-84",
        urgency="routine",
        submitted_at=now,
        details={"referral_id": str(referral_id), "question": "Graag een maatje."},
        retain_until=now + timedelta(days=1),
    )
    with engine.begin() as connection:
        ledger = Ledger(connection)
        ledger.record_intake(new)
        ledger.assign(referral_id, organisation, at=now)
    return referral_id


def _withdraw(engine: Engine, referral_id: uuid.UUID) -> None:
    """As the FHIR gateway leaves a referral the GP withdrew."""
    with engine.begin() as connection:
        Ledger(connection).change_status(
            referral_id, ReferralStatus.CANCELLED, source="gp:test", at=datetime.now(UTC)
        )


def _end(engine: Engine, referral_id: uuid.UUID, welfare_status: WelfareStatus) -> None:
    """As the feedback service leaves a referral the organisation completed or declined."""
    task_status, business_status = TASK_VIEW[welfare_status]
    with engine.begin() as connection:
        Ledger(connection).record_welfare_status(
            referral_id,
            welfare_status=welfare_status.value,
            sequence=1,
            task_status=task_status,
            business_status=business_status.value,
            reason=None,
            source=f"welfare:{ORGANISATION}",
            at=datetime.now(UTC),
        )


def _audited(engine: Engine, referral_id: uuid.UUID) -> list[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(audit_log.c.action)
            .where(audit_log.c.referral_id == referral_id)
            .order_by(audit_log.c.id)
        )
        return list(rows.scalars())


def _status(status: WelfareStatus, sequence: int) -> dict[str, Any]:
    return {
        "status": status.value,
        "sequence": sequence,
        "occurred_at": datetime.now(UTC).isoformat(),
    }


def _assert_problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM_JSON
    problem: dict[str, Any] = answer.json()
    assert problem["status"] == status
    return problem


def test_the_assigned_organisation_fetches_the_details(
    social: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)

    answer = social.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)

    assert answer.status_code == 200, answer.text
    assert answer.json()["question"] == "Graag een maatje."
    assert answer.headers["cache-control"] == "no-store"
    assert "read-details" in _audited(ledger_engine, referral_id)


def test_another_organisation_is_refused_the_details(
    social: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)

    answer = social.get(f"/social/v1/referrals/{referral_id}", headers=OTHER)

    _assert_problem(answer, 403)
    assert "read-details-refused" in _audited(ledger_engine, referral_id)


def test_a_withdrawn_referral_is_gone(social: TestClient, ledger_engine: Engine) -> None:
    referral_id = routed_referral(ledger_engine)
    _withdraw(ledger_engine, referral_id)

    answer = social.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)

    _assert_problem(answer, 410)


@pytest.mark.parametrize("ending", [WelfareStatus.COMPLETED, WelfareStatus.DECLINED])
def test_an_ended_referral_is_gone(
    social: TestClient, ledger_engine: Engine, ending: WelfareStatus
) -> None:
    referral_id = routed_referral(ledger_engine)
    before = social.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)
    assert before.status_code == 200, before.text
    _end(ledger_engine, referral_id, ending)

    answer = social.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)

    problem = _assert_problem(answer, 410)
    assert "has ended" in problem["detail"]
    assert "Graag een maatje" not in answer.text
    assert _audited(ledger_engine, referral_id)[-1] == "read-details-refused"


def test_a_completed_referral_stays_readable_within_the_grace_period(
    social_with_grace: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)
    _end(ledger_engine, referral_id, WelfareStatus.COMPLETED)

    answer = social_with_grace.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)

    assert answer.status_code == 200, answer.text
    assert answer.json()["question"] == "Graag een maatje."


def test_a_withdrawn_referral_is_gone_even_within_the_grace_period(
    social_with_grace: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)
    _withdraw(ledger_engine, referral_id)

    answer = social_with_grace.get(f"/social/v1/referrals/{referral_id}", headers=ASSIGNED)

    _assert_problem(answer, 410)


def test_a_valid_status_is_accepted_into_the_outbox(
    social: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)

    answer = social.post(
        f"/social/v1/referrals/{referral_id}/status",
        json=_status(WelfareStatus.RECEIVED, 1),
        headers=ASSIGNED,
    )

    assert answer.status_code == 202, answer.text
    [message] = outbox_rows(ledger_engine, referral_id)
    assert message.topic == topics.social_status(ORGANISATION)
    assert message.event_type == ReferralStatusReported.EVENT_TYPE
    assert message.key == str(referral_id)
    event = CloudEvent[ReferralStatusReported].model_validate_json(message.value)
    assert event.id == answer.json()["event_id"]
    assert event.data.status is WelfareStatus.RECEIVED
    assert event.data.organisation_id == ORGANISATION


def test_an_illegal_status_is_a_409_problem_and_queues_nothing(
    social: TestClient, ledger_engine: Engine
) -> None:
    referral_id = routed_referral(ledger_engine)

    answer = social.post(
        f"/social/v1/referrals/{referral_id}/status",
        json=_status(WelfareStatus.FIRST_CONTACT, 1),  # never heard of, so not yet contacted
        headers=ASSIGNED,
    )

    problem = _assert_problem(answer, 409)
    assert problem["detail"].startswith("illegal-transition")
    assert outbox_rows(ledger_engine, referral_id) == []
    assert "reported-status" in _audited(ledger_engine, referral_id), "refusals are audited"
