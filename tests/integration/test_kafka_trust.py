"""Trust on Kafka, tried as an outside party would on a real broker that authenticates
(SASL/SCRAM) and authorises (the ACL plan of ``adapters/kafka_acls.py`` for the sample
directory and the dev client registry): nobody acts as another, or reads another's data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from adapters.clients import load_clients
from adapters.kafka_acls import Grant, acl_plan, apply_acls
from adapters.kafka_admin import TopicSpec, ensure_topics
from adapters.kafka_security import KafkaCredentials
from contracts import topics
from deploy.devstack.kafka import KafkaNode, dev_principal
from deploy.devstack.provision import create_topics
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY
from tests.conftest import free_port
from tests.helpers import eventually

pytestmark = pytest.mark.integration

DYNAMO, LELYSTAD = "dynamo-amsterdam", "welzijn-lelystad"
AS_DYNAMO = dev_principal(f"case-{DYNAMO}")
AS_LELYSTAD = dev_principal(f"case-{LELYSTAD}")
AS_GP_AMSTERDAM = dev_principal("his-amsterdam-centrum")
ANONYMOUS = KafkaCredentials()
# Bounded: a refused client fails within seconds instead of kafka-python's 30 s default.
QUICK = {"request_timeout_ms": 5000, "bootstrap_timeout_ms": 4000}


@pytest.fixture(scope="module")
def broker(infrastructure_dir: Path) -> Iterator[KafkaNode]:
    node = KafkaNode(infrastructure_dir / "secured", free_port(), free_port(), secured=True)
    node.start()
    try:
        create_topics(node.bootstrap_servers, DEFAULT_DIRECTORY, DEFAULT_CLIENTS, node.admin)
        apply_acls(node.bootstrap_servers, acl_plan(load_clients(DEFAULT_CLIENTS)), node.admin)
        # The broker's authorizer takes the new ACLs from the metadata log a moment after
        # they were created: until then even a party's own topic is refused.
        eventually(lambda: _can_produce(node, AS_LELYSTAD, LELYSTAD), "the ACLs in force")
        yield node
    finally:
        node.stop()


def _produce(broker: KafkaNode, who: KafkaCredentials, topic: str, value: bytes = b"{}") -> Any:
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, max_block_ms=5000, **QUICK, **who.kafka_python()
    )
    try:
        return producer.send(topic, value=value, key=b"k", partition=0).get(timeout=10)
    finally:
        producer.close()


def _can_produce(broker: KafkaNode, who: KafkaCredentials, organisation: str) -> bool:
    try:
        return _produce(broker, who, topics.social_status(organisation)).offset >= 0
    except KafkaError:
        return False


def _read(broker: KafkaNode, who: KafkaCredentials, topic: str) -> list[bytes]:
    """What ``who`` reads from partition 0 of ``topic``, from the beginning."""
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap_servers,
        enable_auto_commit=False,
        **QUICK,
        **who.kafka_python(),
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        batch = consumer.poll(timeout_ms=3000)
        return [record.value for records in batch.values() for record in records]
    finally:
        consumer.close()


def _join(broker: KafkaNode, who: KafkaCredentials, topic: str, group: str) -> None:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        **QUICK,
        **who.kafka_python(),
    )
    try:
        consumer.poll(timeout_ms=4000)
    finally:
        consumer.close()


def test_an_anonymous_client_can_neither_produce_read_nor_join(broker: KafkaNode) -> None:
    status_topic = topics.social_status(DYNAMO)
    with pytest.raises(KafkaError):
        _produce(broker, ANONYMOUS, status_topic, b'{"status": "declined"}')
    with pytest.raises(KafkaError):
        _read(broker, ANONYMOUS, topics.gp_referrals("his-amsterdam-centrum"))
    with pytest.raises(KafkaError):
        _join(broker, ANONYMOUS, topics.REFERRALS_SUBMITTED, "brug-router")


def test_a_wrong_password_is_refused(broker: KafkaNode) -> None:
    impostor = KafkaCredentials.scram(f"case-{DYNAMO}", "not-the-password")
    with pytest.raises(KafkaError):
        _produce(broker, impostor, topics.social_status(DYNAMO))


def test_an_organisation_cannot_forge_another_organisations_decision_or_referral(
    broker: KafkaNode,
) -> None:
    forged = {
        "a decline for Dynamo's patient": topics.social_status(DYNAMO),
        "a referral of Dynamo's patient sent to Lelystad": topics.social_referrals(LELYSTAD),
        "a referral event on Dynamo's topic": topics.social_referrals(DYNAMO),
        "a referral submission": topics.REFERRALS_SUBMITTED,
    }
    for what, topic in forged.items():
        with pytest.raises(TopicAuthorizationFailedError):
            _produce(broker, AS_LELYSTAD, topic)
            pytest.fail(f"Lelystad could write {what}")
    # What it may: its own status topic.
    assert _produce(broker, AS_LELYSTAD, topics.social_status(LELYSTAD)).offset >= 0


def test_an_organisation_reads_only_its_own_referrals(broker: KafkaNode) -> None:
    topic = topics.social_referrals(DYNAMO)
    marker = b'{"referral": "for Dynamo only"}'
    _produce(broker, dev_principal("brug-relay"), topic, marker)  # as Brug publishes it

    assert marker in _read(broker, AS_DYNAMO, topic)
    assert _read(broker, AS_LELYSTAD, topic) == []
    assert _read(broker, AS_GP_AMSTERDAM, topic) == []


def test_a_gp_system_writes_only_its_own_inbound_topic(broker: KafkaNode) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        _produce(broker, AS_GP_AMSTERDAM, topics.gp_referrals("his-lelystad-noord"))
    with pytest.raises(TopicAuthorizationFailedError):
        _produce(broker, AS_GP_AMSTERDAM, topics.gp_changes("his-amsterdam-centrum"))
    assert _produce(broker, AS_GP_AMSTERDAM, topics.gp_referrals("his-amsterdam-centrum"))


def test_a_party_cannot_join_a_services_consumer_group(broker: KafkaNode) -> None:
    with pytest.raises(GroupAuthorizationFailedError):
        _join(broker, AS_DYNAMO, topics.social_referrals(DYNAMO), "brug-router")
    _join(broker, AS_DYNAMO, topics.social_referrals(DYNAMO), f"case-{DYNAMO}")  # its own


def test_a_service_has_what_its_handlers_need_and_no_more(broker: KafkaNode) -> None:
    router = dev_principal("brug-router")
    _join(broker, router, topics.REFERRALS_SUBMITTED, "brug-router")
    assert _produce(broker, router, topics.DEAD_LETTER)  # it parks what it cannot route
    with pytest.raises(TopicAuthorizationFailedError):
        _produce(broker, router, topics.social_referrals(DYNAMO))  # only the relay publishes


def test_applying_the_plan_again_changes_nothing_and_removes_what_is_stale(
    broker: KafkaNode,
) -> None:
    plan = acl_plan(load_clients(DEFAULT_CLIENTS))
    _produce(broker, dev_principal("brug-relay"), topics.social_referrals(DYNAMO))
    stale = Grant("his-amsterdam-centrum", "READ", "TOPIC", topics.social_referrals(DYNAMO))
    apply_acls(broker.bootstrap_servers, [*plan, stale], broker.admin)
    assert _read(broker, AS_GP_AMSTERDAM, topics.social_referrals(DYNAMO)) != []

    changes = apply_acls(broker.bootstrap_servers, plan, broker.admin)
    assert (changes.added, changes.removed, changes.kept) == ([], [stale], len(plan))
    again = apply_acls(broker.bootstrap_servers, plan, broker.admin)
    assert (again.added, again.removed) == ([], [])
    assert _read(broker, AS_GP_AMSTERDAM, topics.social_referrals(DYNAMO)) == []


def test_provisioning_again_shortens_an_existing_topics_retention(broker: KafkaNode) -> None:
    name = "brug.test.retention.v1"
    ensure_topics(broker.bootstrap_servers, [TopicSpec(name)], broker.admin)
    admin = KafkaAdminClient(
        bootstrap_servers=broker.bootstrap_servers, **QUICK, **broker.admin.kafka_python()
    )
    try:
        eventually(lambda: name in admin.list_topics(), "the topic is in the metadata")
        shorter = TopicSpec(name, config=(("retention.ms", "3600000"),))
        assert ensure_topics(broker.bootstrap_servers, [shorter], broker.admin) == []
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    finally:
        admin.close()
    assert "3600000" in str(described), described
