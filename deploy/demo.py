"""The sample referral the README's run command pushes through a running stack, the way a
GP system and a welfare case system would use Brug:

1. the GP system POSTs a FHIR transaction Bundle (deploy/samples/) to the FHIR gateway;
2. the router delivers the minimised referral event on the organisation's topic;
3. the simulated case system fetches the details with its organisation's token;
4. the GP system reads its Task.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from contracts import topics
from contracts.fhir_systems import REFERRAL_IDENTIFIER
from deploy.devstack.paths import DEPLOY_DIR

SAMPLE_BUNDLE = DEPLOY_DIR / "samples" / "wor-referral-bundle.json"
SAMPLE_ORGANISATION = "dynamo-amsterdam"
SAMPLE_GP_CLIENT = "his-amsterdam-centrum"


@dataclass(frozen=True)
class DemoResult:
    task: dict[str, Any]
    referral_id: str
    event: dict[str, Any]
    case_entry: dict[str, Any]
    accepted_ms: float
    delivered_ms: float


def sample_bundle(identifier_value: str | None = None) -> dict[str, Any]:
    """The sample referral with a fresh ServiceRequest identifier (a new referral each run)."""
    bundle = json.loads(SAMPLE_BUNDLE.read_text())
    value = identifier_value or f"WOR-{uuid.uuid4()}"
    entry = bundle["entry"][0]
    system = entry["resource"]["identifier"][0]["system"]
    entry["resource"]["identifier"][0]["value"] = value
    entry["request"]["ifNoneExist"] = f"identifier={system}|{value}"
    return bundle


def run_demo(
    fhir_base_url: str, bootstrap_servers: str, case_file: Path, gp_token: str, timeout: float = 30
) -> DemoResult:
    consumer = _consumer_at_end(bootstrap_servers, topics.social_referrals(SAMPLE_ORGANISATION))
    try:
        started = time.monotonic()
        with httpx.Client(timeout=30.0) as http:
            headers = {
                "Authorization": f"Bearer {gp_token}",
                "Content-Type": "application/fhir+json",
                "X-Request-ID": str(uuid.uuid4()),
            }
            reply = http.post(fhir_base_url, json=sample_bundle(), headers=headers)
            if reply.status_code != 201:
                raise RuntimeError(f"the FHIR gateway answered {reply.status_code}: {reply.text}")
            accepted_ms = (time.monotonic() - started) * 1000
            task = next(
                e["resource"]
                for e in reply.json()["entry"]
                if e.get("resource", {}).get("resourceType") == "Task"
            )
            referral_id = next(
                i["value"] for i in task["identifier"] if i["system"] == REFERRAL_IDENTIFIER
            )
            event = json.loads(_await_key(consumer, referral_id, timeout))
            delivered_ms = (time.monotonic() - started) * 1000
            case_entry = _await_case_entry(case_file, referral_id, timeout)
            task = http.get(f"{fhir_base_url}/Task/{task['id']}", headers=headers).json()
    finally:
        consumer.close()
    return DemoResult(task, referral_id, event, case_entry, accepted_ms, delivered_ms)


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


def _await_key(consumer: KafkaConsumer, key: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=300).values():
            for record in records:
                if record.key and record.key.decode() == key:
                    return bytes(record.value)
    raise TimeoutError(f"referral {key} did not reach the organisation's topic in {timeout}s")


def _await_case_entry(case_file: Path, referral_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if case_file.exists():
            for line in case_file.read_text().splitlines():
                entry = json.loads(line)
                if entry["referral_id"] == referral_id:
                    return entry  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise TimeoutError(f"the case system did not file referral {referral_id} in {timeout}s")


def describe(result: DemoResult) -> str:
    details = result.case_entry["details"] or {}
    person = details.get("person", {})
    return "\n".join(
        [
            f"1. GP system submitted the sample referral: Task/{result.task['id']} "
            f"(accepted in {result.accepted_ms:.0f} ms)",
            f"2. referral {result.referral_id} on {topics.social_referrals(SAMPLE_ORGANISATION)} "
            f"after {result.delivered_ms:.0f} ms — no name, contact details or free text:",
            json.dumps(result.event, indent=2),
            f"3. case system of {SAMPLE_ORGANISATION} fetched the details "
            f"(HTTP {result.case_entry['details_status']}): {person.get('display_name')}, "
            f"age {person.get('age')}, themes {', '.join(details.get('themes', []))}",
            f"   question: {details.get('question', '').splitlines()[0] if details else ''}",
            f"4. GP system reads Task/{result.task['id']}: status {result.task['status']}, "
            f"version {result.task['meta']['versionId']}",
        ]
    )
