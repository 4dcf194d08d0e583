"""The sample referral the README's run command pushes through a running stack, the way a
GP system and a welfare case system would use Brug:

1. the GP system POSTs a FHIR transaction Bundle (deploy/samples/) to the FHIR gateway;
2. the router delivers the minimised referral event on the organisation's topic;
3. the simulated case system fetches the details with its organisation's token;
4. the case system answers over HTTP (the dev stack is loopback only): received, accepted
   (intake scheduled), first contact, completed with the outcome for the GP;
5. the GP system finds its completed Task and the feedback Communication by FHIR search.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from adapters.kafka_security import KafkaCredentials
from contracts import topics
from deploy.devstack.paths import DEPLOY_DIR

SAMPLE_BUNDLE = DEPLOY_DIR / "samples" / "wor-referral-bundle.json"
SAMPLE_ORGANISATION = "dynamo-amsterdam"
SAMPLE_GP_CLIENT = "his-amsterdam-centrum"


SAMPLE_CASE_CLIENT = "case-dynamo-amsterdam"
SAMPLE_OUTCOME = {
    "summary": "Mevrouw is drie keer mee geweest met de wandelgroep en heeft een maatje "
    "gevonden; ze voelt zich minder alleen. Coaching afgerond.",
    "activities": [
        {"kind": "exercise", "description": "Wandelgroep Oost, dinsdagochtend"},
        {"kind": "buddy", "description": "Maatje via het Vrijwilligerspunt"},
    ],
}
# The case system's answers, in order (its own sequence per referral).
CASE_SYSTEM_ANSWERS: list[dict[str, Any]] = [
    {"status": "received"},
    {"status": "accepted", "business_status": "intake-scheduled"},
    {"status": "first-contact"},
    {"status": "completed", "outcome": SAMPLE_OUTCOME},
]


@dataclass(frozen=True)
class DemoResult:
    task: dict[str, Any]
    referral_id: str
    event: dict[str, Any]
    case_entry: dict[str, Any]
    accepted_ms: float
    delivered_ms: float
    final_task: dict[str, Any]
    feedback: dict[str, Any]
    loop_ms: float


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
    fhir_base_url: str,
    bootstrap_servers: str,
    case_file: Path,
    gp_token: str,
    *,
    social_base_url: str,
    case_token: str,
    kafka_credentials: KafkaCredentials,
    timeout: float = 30,
) -> DemoResult:
    consumer = _consumer_at_end(
        bootstrap_servers, topics.social_referrals(SAMPLE_ORGANISATION), kafka_credentials
    )
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
            # The ServiceRequest's entry names the Task (response.outcome); a GP system
            # that sent no Task of its own finds it by Task?focus=ServiceRequest/<id>.
            referral_id = next(
                e["response"]["location"].split("/")[1]
                for e in reply.json()["entry"]
                if e["response"].get("location", "").startswith("ServiceRequest/")
            )
            task = _await_task_status(http, fhir_base_url, headers, referral_id, timeout, None)
            event = json.loads(_await_key(consumer, referral_id, timeout))
            delivered_ms = (time.monotonic() - started) * 1000
            case_entry = _await_case_entry(case_file, referral_id, timeout)
            task = http.get(f"{fhir_base_url}/Task/{task['id']}", headers=headers).json()
            _answer_as_case_system(http, social_base_url, case_token, referral_id)
            final_task = _await_task_status(http, fhir_base_url, headers, referral_id, timeout)
            loop_ms = (time.monotonic() - started) * 1000
            found = http.get(
                f"{fhir_base_url}/Communication",
                params={"based-on": f"ServiceRequest/{referral_id}", "category": "wor-feedback"},
                headers=headers,
            ).json()
    finally:
        consumer.close()
    feedback = found["entry"][0]["resource"]
    return DemoResult(
        task,
        referral_id,
        event,
        case_entry,
        accepted_ms,
        delivered_ms,
        final_task,
        feedback,
        loop_ms,
    )


def _answer_as_case_system(
    http: httpx.Client, social_base_url: str, case_token: str, referral_id: str
) -> None:
    for sequence, answer in enumerate(CASE_SYSTEM_ANSWERS, start=1):
        reply = http.post(
            f"{social_base_url}/social/v1/referrals/{referral_id}/status",
            json={"sequence": sequence, "occurred_at": datetime.now(UTC).isoformat()} | answer,
            headers={"Authorization": f"Bearer {case_token}"},
        )
        if reply.status_code != 202:
            raise RuntimeError(f"the social edge answered {reply.status_code}: {reply.text}")


def _await_task_status(
    http: httpx.Client,
    fhir_base_url: str,
    headers: dict[str, str],
    referral_id: str,
    timeout: float,
    status: str | None = "completed",
) -> dict[str, Any]:
    """The GP system polls its Task by FHIR search until the welfare side completed it
    (``status`` None: in whatever status it is)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = http.get(
            f"{fhir_base_url}/Task",
            params={"focus": f"ServiceRequest/{referral_id}"}
            | ({"status": status} if status else {}),
            headers=headers,
        ).json()
        if found.get("total"):
            return found["entry"][0]["resource"]  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise TimeoutError(f"the GP's Task for {referral_id} did not become {status} in {timeout}s")


def _consumer_at_end(
    bootstrap_servers: str, topic: str, credentials: KafkaCredentials
) -> KafkaConsumer:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        **credentials.kafka_python(),
    )
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
            f"5. case system of {SAMPLE_ORGANISATION} answered over HTTP: "
            + " → ".join(a.get("business_status", a["status"]) for a in CASE_SYSTEM_ANSWERS),
            f"6. GP system finds Task/{result.final_task['id']} by FHIR search: "
            f"status {result.final_task['status']}, business status "
            f"{result.final_task['businessStatus']['coding'][0]['code']}, "
            f"version {result.final_task['meta']['versionId']} "
            f"({result.loop_ms:.0f} ms after submitting)",
            f"7. feedback for the GP, Communication/{result.feedback['id']} from "
            f"{result.feedback['sender']['identifier']['value']}:",
            *(f"   {p['contentString']}" for p in result.feedback["payload"]),
        ]
    )
