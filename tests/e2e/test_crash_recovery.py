"""Killing a service loses and duplicates nothing: the router (the translating consumer)
mid-stream, every referral still reaching its organisation under exactly one event id; the
feedback service, its service-level timers still firing once it is back."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from contracts import topics
from deploy.devstack.processes import ManagedProcess
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import OVERDUE_AT_ONCE, new_bundle, referral_id_of, resource, task_of
from tests.helpers import collect_by_key, records_with_key, wait_for_record

pytestmark = pytest.mark.integration

REFERRALS = 40
KILL_AFTER = 12


def test_killing_the_router_mid_stream_loses_and_duplicates_nothing(
    stack: DevStack, gp: httpx.Client, kafka_topics: str
) -> None:
    router = ManagedProcess("router", stack.config.state_dir)
    referral_ids = []
    for number in range(REFERRALS):
        reply = gp.post("", json=new_bundle())
        assert reply.status_code == 201, reply.text
        referral_ids.append(referral_id_of(task_of(reply)))
        if number == KILL_AFTER:
            router.kill()  # SIGKILL: no graceful shutdown, no final commit
    assert not router.is_running()
    stack.start_services()  # what an operator (or systemd, or Kubernetes) would do

    topic = topics.social_referrals("dynamo-amsterdam")
    delivered = collect_by_key(kafka_topics, topic, {r.encode() for r in referral_ids})
    event_ids = {
        key.decode(): {json.loads(value)["id"] for value in values}
        for key, values in delivered.items()
    }
    missing = [r for r in referral_ids if r not in event_ids]
    assert missing == [], f"{len(missing)} referrals never reached the organisation"
    assert all(len(ids) == 1 for ids in event_ids.values()), "a referral got two distinct events"

    filed = _filed_by_case_system(stack, set(referral_ids))
    assert sorted(filed) == sorted(referral_ids), "the case system filed each referral once"


def _filed_by_case_system(stack: DevStack, wanted: set[str]) -> list[str]:
    deadline = time.monotonic() + 30
    filed: list[str] = []
    while time.monotonic() < deadline:
        lines = stack.case_file("dynamo-amsterdam").read_text().splitlines()
        filed = [r for line in lines if (r := json.loads(line)["referral_id"]) in wanted]
        if len(set(filed)) == len(wanted):
            return filed
        time.sleep(0.3)
    return filed


def test_service_level_timers_survive_the_feedback_service_being_killed(
    stack: DevStack, gp: httpx.Client, kafka_topics: str
) -> None:
    """The timers are due dates in the ledger: a referral routed while the feedback service
    is down still gets its overdue event once the service is back."""
    feedback = ManagedProcess("feedback", stack.config.state_dir)
    feedback.kill()  # SIGKILL
    assert not feedback.is_running()
    bundle = new_bundle()
    resource(bundle, "Patient")["address"] = [
        {"use": "home", "line": ["Voorstraat 2"], "postalCode": "3311 AB", "city": "Dordrecht"}
    ]
    reply = gp.post("", json=bundle)
    assert reply.status_code == 201, reply.text
    referral_id = referral_id_of(task_of(reply))
    wait_for_record(
        kafka_topics,
        topics.social_referrals(OVERDUE_AT_ONCE),
        lambda r: r.key == referral_id.encode(),
    )  # routed, so its timers run, while nobody watches them

    stack.start_services()

    record = wait_for_record(kafka_topics, topics.OVERDUE, lambda r: r.key == referral_id.encode())
    assert json.loads(record.value)["data"]["timer"] == "received"
    overdue = records_with_key(kafka_topics, topics.OVERDUE, referral_id.encode())
    assert len({json.loads(value)["id"] for value in overdue}) == 1
