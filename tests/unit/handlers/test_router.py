"""The router's handler in-process: FastStream's in-memory broker in front, the real
PostgreSQL behind, the sample directory. What routing commits is asserted in the ledger
and the outbox (the relay publishes, not the router)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream import FastStream
from faststream.kafka import KafkaBroker, TestKafkaBroker
from prometheus_client import REGISTRY
from sqlalchemy import Engine

from adapters.ledger.repository import Ledger
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, ReferralStatus, WorTheme
from contracts.events import ReferralCreated, ReferralSubmitted
from services.router.app import create_app
from services.router.settings import RouterSettings
from tests.unit.handlers.support import (
    CLOUDEVENTS,
    DeadLetters,
    add_referral,
    handled,
    outbox_rows,
    referral,
)

pytestmark = pytest.mark.integration  # the real PostgreSQL

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
async def app(handler_database: str) -> AsyncIterator[FastStream]:
    app = create_app(RouterSettings(database_url=handler_database, router_workers=1))
    yield app
    await app.stop()  # the root's shutdown hooks: the engine is disposed


@pytest.fixture
def broker(app: FastStream) -> KafkaBroker:
    assert isinstance(app.broker, KafkaBroker)
    return app.broker


@pytest.fixture
def dead_letters(broker: KafkaBroker) -> DeadLetters:
    return DeadLetters(broker)


def _submitted(referral_id: uuid.UUID, municipality_code: str) -> CloudEvent[ReferralSubmitted]:
    data = ReferralSubmitted(
        referral_id=referral_id,
        municipality_code=municipality_code,
        themes=[WorTheme.LONELINESS],
        age_band=AgeBand.FROM_75,
        submitted_at=datetime.now(UTC),
    )
    return CloudEvent[ReferralSubmitted].wrap(data, service="test-gp-edge", traceparent=TRACEPARENT)


async def _deliver(broker: KafkaBroker, event: CloudEvent[Any]) -> None:
    """One record on the submitted topic, as the relay writes it; handled before it returns."""
    await broker.publish(
        event.to_json_bytes(),
        topics.REFERRALS_SUBMITTED,
        key=str(event.data.referral_id).encode(),
        headers=CLOUDEVENTS,
    )


def _orphans_dropped() -> float:
    labels = {"service": "router", "type": ReferralSubmitted.EVENT_TYPE}
    return REGISTRY.get_sample_value("brug_orphan_events_dropped_total", labels) or 0.0


async def test_a_submitted_referral_is_assigned_and_its_event_put_in_the_outbox(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    referral_id = add_referral(ledger_engine, "GM0995")  # Lelystad
    event = _submitted(referral_id, "GM0995")

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, event)

    row = referral(ledger_engine, referral_id)
    assert row.organisation_id == "welzijn-lelystad"
    assert row.status is ReferralStatus.REQUESTED
    assert row.received_due_at is not None and row.contact_due_at is not None
    [message] = outbox_rows(ledger_engine, referral_id)
    assert message.topic == topics.social_referrals("welzijn-lelystad")
    assert message.key == str(referral_id)
    assert message.published_at is None, "the relay publishes it, not the router"
    assert message.headers["ce-causationid"] == event.id
    created = CloudEvent[ReferralCreated].model_validate_json(message.value)
    assert created.type == ReferralCreated.EVENT_TYPE == message.event_type
    assert created.id == str(uuid.uuid5(referral_id, ReferralCreated.EVENT_TYPE))
    assert created.data.organisation_id == "welzijn-lelystad"
    assert created.data.details_url.endswith(f"/{referral_id}")
    assert created.traceparent == TRACEPARENT, "the trace continues across the hop"
    assert dead_letters.received == []


async def test_a_redelivered_referral_is_skipped(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    referral_id = add_referral(ledger_engine, "GM0505")  # Dordrecht
    event = _submitted(referral_id, "GM0505")

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, event)
        await _deliver(br, event)

    assert len(outbox_rows(ledger_engine, referral_id)) == 1
    assert referral(ledger_engine, referral_id).organisation_id == "buurtwerk-dordrecht"
    assert dead_letters.received == []


async def test_an_event_for_a_referral_the_ledger_never_held_is_dropped_and_counted(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    orphan = _submitted(uuid.uuid4(), "GM0363")
    before = _orphans_dropped()

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, orphan)

    assert _orphans_dropped() == before + 1
    assert dead_letters.received == [], "dropped, not parked"
    assert outbox_rows(ledger_engine, orphan.data.referral_id) == []


async def test_a_withdrawn_referral_is_not_assigned(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    referral_id = add_referral(ledger_engine, "GM0363")  # Amsterdam
    with ledger_engine.begin() as connection:
        Ledger(connection).change_status(
            referral_id, ReferralStatus.CANCELLED, source="gp", at=datetime.now(UTC)
        )

    before = handled("router", ReferralSubmitted.EVENT_TYPE)

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, _submitted(referral_id, "GM0363"))

    assert handled("router", ReferralSubmitted.EVENT_TYPE) == before + 1, "it saw the record"
    row = referral(ledger_engine, referral_id)
    assert row.organisation_id is None
    assert row.status is ReferralStatus.CANCELLED
    assert outbox_rows(ledger_engine, referral_id) == []
    assert dead_letters.received == []


async def test_an_unroutable_referral_is_held_for_the_gp_and_dead_lettered(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    referral_id = add_referral(ledger_engine, "GM9999")  # served by nobody
    event = _submitted(referral_id, "GM9999")

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, event)

    row = referral(ledger_engine, referral_id)
    assert row.status is ReferralStatus.ON_HOLD
    assert "GM9999" in (row.status_reason or "")
    assert row.organisation_id is None
    assert outbox_rows(ledger_engine, referral_id) == []
    [dead] = dead_letters.for_key(str(referral_id))
    assert dead.reason == "unroutable"
    assert dead.service == "router"
    assert dead.original_topic == topics.REFERRALS_SUBMITTED
    assert "GM9999" in dead.detail
    assert CloudEvent[ReferralSubmitted].model_validate_json(dead.original_value).id == event.id


async def test_an_event_that_disagrees_with_the_ledger_is_refused_and_parked(
    broker: KafkaBroker, dead_letters: DeadLetters, ledger_engine: Engine
) -> None:
    """A forged ``ReferralSubmitted`` naming another municipality must not move a patient
    to another organisation: the router routes on what the intake stored."""
    referral_id = add_referral(ledger_engine, "GM0363")  # Amsterdam
    forged = _submitted(referral_id, "GM0995")  # claims Lelystad

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, forged)

    row = referral(ledger_engine, referral_id)
    assert row.organisation_id is None, "not assigned to the organisation the event named"
    assert outbox_rows(ledger_engine, referral_id) == []
    [dead] = dead_letters.for_key(str(referral_id))
    assert dead.reason == "refused"
    assert "municipality_code" in dead.detail

    async with TestKafkaBroker(broker) as br:
        await _deliver(br, _submitted(referral_id, "GM0363"))  # the genuine event still routes
    assert referral(ledger_engine, referral_id).organisation_id == "dynamo-amsterdam"
