"""Webhook delivery's Kafka handler in-process: FastStream's in-memory broker in front, the
real PostgreSQL behind, the sample directory (``xtra-zoetermeer`` is its one webhook
organisation). The handler only queues; the delivery loop is not started here."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream import FastStream
from faststream.kafka import KafkaBroker, TestKafkaBroker
from sqlalchemy import Engine, insert, select

from adapters.ledger.repository import Ledger
from adapters.ledger.tables import referral_details, webhook_deliveries
from adapters.ledger.webhooks import Delivery
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, Urgency, WorTheme
from contracts.events import ReferralCreated, ReferralWithdrawn
from contracts.events.status import WelfareStatus
from domain.status_machine import TASK_VIEW
from services.webhook_delivery.app import create_app
from services.webhook_delivery.delivery import _deliverable_details
from services.webhook_delivery.settings import WebhookSettings
from tests.unit.handlers.support import CLOUDEVENTS, DeadLetters, add_referral, handled

pytestmark = pytest.mark.integration  # the real PostgreSQL

SERVICE = "webhook-delivery"
WEBHOOK_ORGANISATION = ("xtra-zoetermeer", "GM0637")
KAFKA_ORGANISATION = ("dynamo-amsterdam", "GM0363")


@pytest.fixture
async def app(handler_database: str) -> AsyncIterator[FastStream]:
    app = create_app(WebhookSettings(database_url=handler_database))
    yield app
    await app.stop()  # the root's shutdown hooks: the engine is disposed


@pytest.fixture
def broker(app: FastStream) -> KafkaBroker:
    assert isinstance(app.broker, KafkaBroker)
    return app.broker


@pytest.fixture
def dead_letters(broker: KafkaBroker) -> DeadLetters:
    return DeadLetters(broker)


def _created(referral_id: uuid.UUID, organisation_id: str, municipality_code: str) -> Any:
    now = datetime.now(UTC)
    data = ReferralCreated(
        referral_id=referral_id,
        organisation_id=organisation_id,
        municipality_code=municipality_code,
        themes=[WorTheme.LONELINESS],
        age_band=AgeBand.FROM_75,
        urgency=Urgency.ROUTINE,
        submitted_at=now,
        routed_at=now,
        details_url=f"http://127.0.0.1:8081/social/v1/referrals/{referral_id}",
    )
    return CloudEvent[ReferralCreated].wrap(data, service="router")


async def _deliver(broker: KafkaBroker, event: CloudEvent[Any]) -> None:
    """One record on the organisation's topic, as the relay writes it."""
    await broker.publish(
        event.to_json_bytes(),
        topics.social_referrals(event.data.organisation_id),
        key=str(event.data.referral_id).encode(),
        headers=CLOUDEVENTS,
    )


def _assigned_referral(engine: Engine, municipality_code: str, organisation_id: str) -> uuid.UUID:
    """A referral the router assigned to ``organisation_id``."""
    referral_id = add_referral(engine, municipality_code)
    with engine.begin() as connection:
        Ledger(connection).assign(referral_id, organisation_id, at=datetime.now(UTC))
    return referral_id


def _queued(engine: Engine, referral_id: uuid.UUID) -> list[Any]:
    with engine.connect() as connection:
        query = select(webhook_deliveries).where(webhook_deliveries.c.referral_id == referral_id)
        return list(connection.execute(query).all())


async def test_a_referral_for_a_webhook_organisation_is_queued_once(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    organisation_id, municipality_code = WEBHOOK_ORGANISATION
    referral_id = _assigned_referral(ledger_engine, municipality_code, organisation_id)
    event = _created(referral_id, organisation_id, municipality_code)

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, event)
        await _deliver(br, event)  # a redelivered record

    [queued] = _queued(ledger_engine, referral_id)
    assert queued.event_id == event.id
    assert queued.organisation_id == organisation_id
    assert queued.state == "pending"
    assert queued.attempts == 0
    assert queued.event == event.model_dump(mode="json", exclude_none=True)
    assert dead_letters.received == []


async def test_a_referral_for_a_kafka_organisation_is_left_to_its_case_system(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    organisation_id, municipality_code = KAFKA_ORGANISATION
    referral_id = add_referral(ledger_engine, municipality_code)
    before = handled(SERVICE, ReferralCreated.EVENT_TYPE)

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, _created(referral_id, organisation_id, municipality_code))

    assert handled(SERVICE, ReferralCreated.EVENT_TYPE) == before + 1, "it saw the record"
    assert _queued(ledger_engine, referral_id) == []
    assert dead_letters.received == []


async def test_a_withdrawal_for_a_webhook_organisation_is_not_queued(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    organisation_id, municipality_code = WEBHOOK_ORGANISATION
    referral_id = add_referral(ledger_engine, municipality_code)
    withdrawn = CloudEvent[ReferralWithdrawn].wrap(
        ReferralWithdrawn(
            referral_id=referral_id,
            organisation_id=organisation_id,
            withdrawn_at=datetime.now(UTC),
        ),
        service="fhir-gateway",
    )
    before = handled(SERVICE, ReferralWithdrawn.EVENT_TYPE)

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, withdrawn)

    assert handled(SERVICE, ReferralWithdrawn.EVENT_TYPE) == before + 1, "it saw the record"
    # Its pending delivery, if any, is parked as withdrawn when its turn comes.
    assert _queued(ledger_engine, referral_id) == []
    assert dead_letters.received == []


async def test_a_forged_referral_for_another_organisation_is_refused_not_delivered(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    """An event naming the webhook organisation for a referral the ledger assigned
    elsewhere (or to nobody) never sends that patient's details to its webhook."""
    organisation_id, municipality_code = WEBHOOK_ORGANISATION
    elsewhere, other_municipality = KAFKA_ORGANISATION
    theirs = _assigned_referral(ledger_engine, other_municipality, elsewhere)
    unassigned = add_referral(ledger_engine, municipality_code)

    async with TestKafkaBroker(broker) as br:
        for referral_id in (theirs, unassigned):
            await _deliver(br, _created(referral_id, organisation_id, municipality_code))

    for referral_id in (theirs, unassigned):
        assert _queued(ledger_engine, referral_id) == []
        [dead] = dead_letters.for_key(str(referral_id))
        assert dead.reason == "refused"
        assert organisation_id in dead.detail


async def test_an_event_on_another_organisations_topic_is_refused(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    organisation_id, municipality_code = WEBHOOK_ORGANISATION
    elsewhere, _ = KAFKA_ORGANISATION
    referral_id = _assigned_referral(ledger_engine, municipality_code, organisation_id)
    event = _created(referral_id, organisation_id, municipality_code)

    async with TestKafkaBroker(broker) as br:
        await br.publish(
            event.to_json_bytes(),
            topics.social_referrals(elsewhere),
            key=str(referral_id).encode(),
            headers=CLOUDEVENTS,
        )

    assert _queued(ledger_engine, referral_id) == []
    [dead] = dead_letters.for_key(str(referral_id))
    assert dead.reason == "refused"


@pytest.mark.parametrize(
    ("ending", "grace", "pushed"),
    [
        (None, timedelta(0), True),
        (WelfareStatus.COMPLETED, timedelta(0), False),
        (WelfareStatus.DECLINED, timedelta(0), False),
        (WelfareStatus.COMPLETED, timedelta(days=1), True),
        (WelfareStatus.WITHDRAWN_BY_PATIENT, timedelta(days=1), False),
    ],
)
def test_the_details_are_pushed_only_while_the_organisation_may_read_them(
    ledger_engine: Engine, ending: WelfareStatus | None, grace: timedelta, pushed: bool
) -> None:
    """Checked at every attempt (a dead letter's replay queues the delivery again), by the
    rule the details endpoint uses (``domain.access``)."""
    referral_id = add_referral(ledger_engine, WEBHOOK_ORGANISATION[1])
    now = datetime.now(UTC)
    with ledger_engine.begin() as connection:
        ledger = Ledger(connection)
        ledger.connection.execute(
            insert(referral_details).values(
                referral_id=referral_id,
                details={"question": "Graag een maatje."},
                retain_until=now + timedelta(days=1),
            )
        )
        if ending is not None:
            task_status, business_status = TASK_VIEW[ending]
            ledger.record_welfare_status(
                referral_id,
                welfare_status=ending.value,
                sequence=1,
                task_status=task_status,
                business_status=business_status.value,
                reason=None,
                source="welfare:test",
                at=now,
            )
    delivery = Delivery(
        event_id=str(uuid.uuid4()),
        referral_id=referral_id,
        organisation_id=WEBHOOK_ORGANISATION[0],
        event={},
        attempts=0,
        created_at=now,
    )

    with ledger_engine.connect() as connection:
        details = _deliverable_details(connection, delivery, datetime.now(UTC), grace)

    assert (details == {"question": "Graag een maatje."}) is pushed
    assert (details is None) is not pushed
