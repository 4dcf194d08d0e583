"""The router as a real process against the real broker and ledger: route, skip what was
routed, hold and dead-letter what cannot be routed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.database import make_engine
from adapters.ledger.repository import Ledger
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, ReferralStatus, WorTheme
from contracts.events import DeadLetter, ReferralCreated, ReferralSubmitted
from deploy.devstack.stack import DevStack, StackConfig
from tests.conftest import free_port
from tests.helpers import produce, records_with_key, wait_for_record

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def router(
    kafka_topics: str,
    database_url: str,
    infrastructure_dir: Path,
    monkeypatch_module: pytest.MonkeyPatch,
) -> Iterator[DevStack]:
    # Two attempts keep the "gave up" test short; the policy itself is unit-tested.
    monkeypatch_module.setenv("BRUG_MAX_HANDLER_ATTEMPTS", "2")
    stack = DevStack(
        StackConfig(
            state_dir=infrastructure_dir / "router-test",
            external_kafka=kafka_topics,
            external_database=database_url,
            metrics_ports={"router": free_port(), "relay": free_port()},
        ),
        services=("router", "relay"),
        simulated_organisations=(),
    )
    stack.start_services()
    yield stack
    stack.stop_services()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def _submitted(database_url: str, municipality_code: str, *, in_ledger: bool = True):  # type: ignore[no-untyped-def]
    data = ReferralSubmitted(
        referral_id=uuid.uuid4(),
        municipality_code=municipality_code,
        themes=[WorTheme.LONELINESS],
        age_band=AgeBand.FROM_75,
        submitted_at=datetime.now(UTC),
    )
    if in_ledger:
        engine = make_engine(database_url)
        with engine.begin() as connection:
            Ledger(connection).add_referral(data.referral_id, municipality_code, data.submitted_at)
        engine.dispose()
    return CloudEvent[ReferralSubmitted].wrap(
        data,
        service="test-gp-edge",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )


def _ledger_row(database_url: str, referral_id: uuid.UUID):  # type: ignore[no-untyped-def]
    engine = make_engine(database_url)
    with engine.connect() as connection:
        row = Ledger(connection).referral(referral_id)
    engine.dispose()
    return row


def test_a_referral_is_routed_to_the_organisation_serving_its_municipality(
    router: DevStack, kafka_topics: str, database_url: str
) -> None:
    event = _submitted(database_url, "GM0995")  # Lelystad
    key = str(event.data.referral_id).encode()

    produce(kafka_topics, topics.REFERRALS_SUBMITTED, event.to_json_bytes(), key)

    record = wait_for_record(
        kafka_topics, topics.social_referrals("welzijn-lelystad"), lambda r: r.key == key
    )
    delivered = CloudEvent[ReferralCreated].model_validate_json(record.value)
    assert delivered.type == "nl.brug.referral.created.v1"
    assert delivered.data.organisation_id == "welzijn-lelystad"
    assert delivered.data.referral_id == event.data.referral_id
    assert delivered.data.details_url.endswith(str(event.data.referral_id))
    assert delivered.traceparent == event.traceparent, "the trace continues across the hop"
    assert dict(record.headers)["ce-causationid"] == event.id.encode()
    assert _ledger_row(database_url, event.data.referral_id).organisation_id == "welzijn-lelystad"


def test_a_referral_nobody_serves_is_held_for_the_gp_and_dead_lettered(
    router: DevStack, kafka_topics: str, database_url: str
) -> None:
    event = _submitted(database_url, "GM9999")
    key = str(event.data.referral_id).encode()

    produce(kafka_topics, topics.REFERRALS_SUBMITTED, event.to_json_bytes(), key)

    record = wait_for_record(kafka_topics, topics.DEAD_LETTER, lambda r: r.key == key)
    dead = CloudEvent[DeadLetter].model_validate_json(record.value).data
    assert dead.reason == "unroutable"
    assert "GM9999" in dead.detail
    assert dead.service == "router"
    assert dead.original_topic == topics.REFERRALS_SUBMITTED
    assert json.loads(dead.original_value)["id"] == event.id, "the original is kept for replay"
    row = _ledger_row(database_url, event.data.referral_id)
    assert row.status is ReferralStatus.ON_HOLD
    assert "GM9999" in (row.status_reason or "")


def test_a_payload_that_breaks_the_contract_is_dead_lettered_and_does_not_block(
    router: DevStack, kafka_topics: str, database_url: str
) -> None:
    bad_key = f"bad-{uuid.uuid4()}".encode()
    broken = json.dumps({"specversion": "1.0", "type": "nl.brug.referral.submitted.v1"})
    produce(kafka_topics, topics.REFERRALS_SUBMITTED, broken.encode(), bad_key)
    good = _submitted(database_url, "GM0505")  # Dordrecht, sent after the broken one
    good_key = str(good.data.referral_id).encode()
    produce(kafka_topics, topics.REFERRALS_SUBMITTED, good.to_json_bytes(), good_key)

    dead_record = wait_for_record(kafka_topics, topics.DEAD_LETTER, lambda r: r.key == bad_key)
    dead = CloudEvent[DeadLetter].model_validate_json(dead_record.value).data
    assert dead.reason == "invalid-payload"
    assert "data: missing" in dead.detail
    wait_for_record(
        kafka_topics, topics.social_referrals("buurtwerk-dordrecht"), lambda r: r.key == good_key
    )


def test_an_event_for_a_referral_the_ledger_never_held_is_dropped_at_once(
    router: DevStack, kafka_topics: str, database_url: str
) -> None:
    orphan = _submitted(database_url, "GM0363", in_ledger=False)
    orphan_key = str(orphan.data.referral_id).encode()
    behind = _submitted(database_url, "GM0363")  # the next referral in the same partition
    behind_key = str(behind.data.referral_id).encode()

    produce(
        kafka_topics, topics.REFERRALS_SUBMITTED, orphan.to_json_bytes(), orphan_key, partition=0
    )
    produce(
        kafka_topics, topics.REFERRALS_SUBMITTED, behind.to_json_bytes(), behind_key, partition=0
    )

    organisation_topic = topics.social_referrals("dynamo-amsterdam")
    wait_for_record(kafka_topics, organisation_topic, lambda r: r.key == behind_key)
    # Handled in partition order: the orphan was done with before the referral behind it.
    assert records_with_key(kafka_topics, topics.DEAD_LETTER, orphan_key) == []
    assert records_with_key(kafka_topics, organisation_topic, orphan_key) == []


def test_after_a_restart_the_router_resumes_without_replaying_what_it_delivered(
    router: DevStack, kafka_topics: str, database_url: str
) -> None:
    before = _submitted(database_url, "GM0363")
    before_key = str(before.data.referral_id).encode()
    produce(kafka_topics, topics.REFERRALS_SUBMITTED, before.to_json_bytes(), before_key)
    organisation_topic = topics.social_referrals("dynamo-amsterdam")
    wait_for_record(kafka_topics, organisation_topic, lambda r: r.key == before_key)

    router.stop_services()
    router.start_services()
    produce(
        kafka_topics, topics.REFERRALS_SUBMITTED, before.to_json_bytes(), before_key
    )  # a redelivery
    after = _submitted(database_url, "GM0363")
    after_key = str(after.data.referral_id).encode()
    produce(kafka_topics, topics.REFERRALS_SUBMITTED, after.to_json_bytes(), after_key)
    wait_for_record(kafka_topics, organisation_topic, lambda r: r.key == after_key)

    assert len(records_with_key(kafka_topics, organisation_topic, before_key)) == 1
