"""The sample referral the README's run command pushes through a running stack.

Until the FHIR edge exists (issue 3) the demo enters where that edge will publish:
a minimised ``ReferralSubmitted`` event on ``brug.referrals.submitted.v1``. It then
watches the organisation's topic until the routed ``ReferralCreated`` event arrives.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, Urgency, WorTheme
from contracts.events import ReferralCreated, ReferralSubmitted

SAMPLE_MUNICIPALITY = "GM0363"  # Amsterdam
SAMPLE_ORGANISATION = "dynamo-amsterdam"


@dataclass(frozen=True)
class DemoResult:
    submitted: CloudEvent[ReferralSubmitted]
    delivered: CloudEvent[ReferralCreated]
    raw_delivered: bytes
    latency_seconds: float


def sample_referral() -> CloudEvent[ReferralSubmitted]:
    """An older Amsterdammer referred for loneliness and to get moving again."""
    submitted = ReferralSubmitted(
        referral_id=uuid.uuid4(),
        municipality_code=SAMPLE_MUNICIPALITY,
        themes=[WorTheme.LONELINESS, WorTheme.ACTIVITY_EXERCISE],
        age_band=AgeBand.for_age(78),
        urgency=Urgency.ROUTINE,
        submitted_at=datetime.now(UTC),
    )
    return CloudEvent[ReferralSubmitted].wrap(submitted, service="demo-gp-edge")


def run_demo(bootstrap_servers: str, timeout: float = 30.0) -> DemoResult:
    event = sample_referral()
    consumer = _consumer_at_end(bootstrap_servers, topics.social_referrals(SAMPLE_ORGANISATION))
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    try:
        started = time.monotonic()
        producer.send(
            topics.REFERRALS_SUBMITTED,
            value=event.to_json_bytes(),
            key=str(event.data.referral_id).encode(),
        ).get(timeout=10)
        raw = _await_referral(consumer, str(event.data.referral_id), timeout)
        latency = time.monotonic() - started
    finally:
        producer.close()
        consumer.close()
    delivered = CloudEvent[ReferralCreated].model_validate_json(raw)
    return DemoResult(event, delivered, raw, latency)


def _consumer_at_end(bootstrap_servers: str, topic: str) -> KafkaConsumer:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    if not partitions:
        raise RuntimeError(f"topic {topic} does not exist; is the stack up?")
    consumer.assign(partitions)
    consumer.seek_to_end(*partitions)
    for partition in partitions:
        consumer.position(partition)  # resolve the end offsets before anything is produced
    return consumer


def _await_referral(consumer: KafkaConsumer, referral_id: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                if record.key and record.key.decode() == referral_id:
                    return bytes(record.value)
    raise TimeoutError(f"referral {referral_id} did not reach the organisation within {timeout}s")


def describe(result: DemoResult) -> str:
    delivered = json.loads(result.raw_delivered)
    return "\n".join(
        [
            f"referral {result.submitted.data.referral_id} submitted "
            f"for municipality {result.submitted.data.municipality_code}",
            f"delivered on {topics.social_referrals(result.delivered.data.organisation_id)} "
            f"after {result.latency_seconds * 1000:.0f} ms:",
            json.dumps(delivered, indent=2),
        ]
    )
