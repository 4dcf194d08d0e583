"""The marker property test's end-to-end leg (``tests/unit/test_minimisation.py`` and
``tests/unit/handlers/test_minimisation_intake.py`` run it in-process): a few Bundles from
its strategy, drawn from a fixed seed, with markers in Conditions, reason codes and their
text, Observations, MedicationStatements and extensions, go through the running stack's
FHIR edge: two to Amsterdam (the case system reads its Kafka topic and fetches the
details), two to Zoetermeer (delivered by webhook). Once they have arrived, no marker is
in the webhook bodies, in any record (key, value, headers) on any of Brug's topics, read
with kafka-python rather than Brug's own code, or in the services' log and span files."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, TopicPartition

from adapters.kafka_security import KafkaCredentials
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import WebhookReceiver, referral_id_of, resource, task_of
from tests.e2e.test_referral_path import case_entry
from tests.helpers import eventually
from tests.unit.test_minimisation import Seeds, marked_bundles

pytestmark = pytest.mark.integration

AMSTERDAM, ZOETERMEER = "dynamo-amsterdam", "xtra-zoetermeer"
ZOETERMEER_HOME = {"use": "home", "line": ["Dorpsstraat 20"], "postalCode": "2712 AB"}
# Bundles with a marker in most places the strategy seeds: a handful is enough here.
RICH = marked_bundles().filter(lambda example: len(example[1].markers) >= 6)


def _to_zoetermeer(bundle: dict[str, Any]) -> dict[str, Any]:
    resource(bundle, "Patient")["address"] = [ZOETERMEER_HOME | {"city": "Zoetermeer"}]
    return bundle


def _every_record(bootstrap: str) -> list[str]:
    """Every record on every ``brug.`` topic up to its end now, as text (key, value,
    headers), read from the beginning by a consumer outside any group."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **KafkaCredentials().kafka_python()
    )
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in sorted(consumer.topics())
            if topic.startswith("brug.")
            for partition in consumer.partitions_for_topic(topic) or ()
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        records: list[str] = []
        while any(consumer.position(p) < end for p, end in ends.items()):
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records += [repr((r.topic, r.key, r.value, r.headers)) for r in batch]
        return records
    finally:
        consumer.close()


def _written(stack: DevStack) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace")
        for folder in (stack.config.state_dir / "logs", stack.trace_dir)
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def _spans_of(stack: DevStack, service: str, referral_id: str) -> bool:
    path = stack.trace_dir / f"{service}.jsonl"
    return path.exists() and f'"brug.referral_id":"{referral_id}"' in path.read_text()


@seed(13)
@settings(
    max_examples=1,
    phases=[Phase.generate],
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(examples=st.lists(RICH, min_size=4, max_size=4))
def test_no_marker_reaches_a_webhook_a_topic_a_log_line_or_a_span(
    stack: DevStack,
    gp: httpx.Client,
    webhook_receiver: WebhookReceiver,
    kafka_topics: str,
    examples: list[tuple[dict[str, Any], Seeds]],
) -> None:
    markers = [marker for _, seeds in examples for marker in seeds.markers]
    sent: dict[str, str] = {}  # referral id -> organisation
    for index, (bundle, _) in enumerate(examples):
        organisation = AMSTERDAM if index % 2 == 0 else ZOETERMEER
        if organisation == ZOETERMEER:
            bundle = _to_zoetermeer(bundle)
        reply = gp.post("", content=json.dumps(bundle, ensure_ascii=False).encode())
        assert reply.status_code == 201, reply.text
        sent[referral_id_of(task_of(reply))] = organisation

    bodies = []
    for referral_id, organisation in sent.items():
        if organisation == AMSTERDAM:
            details = case_entry(stack, AMSTERDAM, referral_id)["details"]
            assert details["question"], "the case system fetched the details"
            bodies.append(json.dumps(details, ensure_ascii=False))
            last_hop = "social-gateway"
        else:
            [delivery, *_] = eventually(
                lambda rid=referral_id: webhook_receiver.attempts_for(rid),
                "the webhook was delivered",
            )
            assert delivery["valid"] and delivery["body"]["details"]["question"]
            bodies.append(json.dumps(delivery["body"], ensure_ascii=False))
            last_hop = "webhook-delivery"
        eventually(
            lambda rid=referral_id, hop=last_hop: _spans_of(stack, hop, rid),
            f"{last_hop} wrote the referral's spans",
        )

    records = _every_record(kafka_topics)
    assert all(any(rid in record for record in records) for rid in sent), "events were read"
    written = _written(stack)
    assert all(any(rid in text for text in written.values()) for rid in sent), "ids were logged"
    places = {
        **{f"webhook or details {i}": body for i, body in enumerate(bodies)},
        "a Kafka record": "\n".join(records),
        **written,
    }
    for where, content in places.items():
        leaked = [marker for marker in markers if marker in content]
        assert leaked == [], f"{where} holds {leaked}"
