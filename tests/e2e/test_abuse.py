"""Forged messages against the running stack, on the broker that authenticates every party,
sent as another welfare organisation would try them: the broker refuses what the party may
not write, and what a compromised producer still gets onto a topic is refused against the
ledger. Nothing reaches the GP's Task or another organisation's webhook."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest
from kafka.errors import TopicAuthorizationFailedError

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import AgeBand, Urgency, WorTheme
from contracts.events import DeadLetter, ReferralCreated
from contracts.events.status import (
    DeclineReason,
    ReferralStatusProblem,
    ReferralStatusReported,
    WelfareStatus,
)
from deploy.devstack.kafka import dev_principal
from tests.e2e.conftest import WebhookReceiver, new_bundle, referral_id_of, task_of
from tests.helpers import produce, wait_for_record

pytestmark = pytest.mark.integration

DYNAMO, LELYSTAD, XTRA = "dynamo-amsterdam", "welzijn-lelystad", "xtra-zoetermeer"
AS_LELYSTAD = dev_principal(f"case-{LELYSTAD}")


def _routed_to_dynamo(gp: httpx.Client, kafka_topics: str) -> tuple[str, str]:
    task = task_of(gp.post("", json=new_bundle()))
    referral_id = referral_id_of(task)
    wait_for_record(
        kafka_topics, topics.social_referrals(DYNAMO), lambda r: r.key == referral_id.encode()
    )
    return referral_id, task["id"]


def _decline(referral_id: str, named: str) -> CloudEvent[ReferralStatusReported]:
    return CloudEvent[ReferralStatusReported].wrap(
        ReferralStatusReported(
            referral_id=uuid.UUID(referral_id),
            organisation_id=named,
            status=WelfareStatus.DECLINED,
            sequence=1,
            occurred_at=datetime.now(UTC),
            decline_reason=DeclineReason.NO_CAPACITY,
        ),
        service="forger",
    )


def test_another_organisation_cannot_decline_dynamos_patient(
    gp: httpx.Client, kafka_topics: str
) -> None:
    referral_id, task_id = _routed_to_dynamo(gp, kafka_topics)

    forged = _decline(referral_id, DYNAMO)
    with pytest.raises(TopicAuthorizationFailedError):  # not Lelystad's topic to write
        produce(
            kafka_topics,
            topics.social_status(DYNAMO),
            forged.to_json_bytes(),
            referral_id.encode(),
            credentials=AS_LELYSTAD,
        )
    # On its own topic the broker lets it write; the ledger says the referral is not its own.
    own_topic = _decline(referral_id, DYNAMO)
    produce(
        kafka_topics,
        topics.social_status(LELYSTAD),
        own_topic.to_json_bytes(),
        referral_id.encode(),
        credentials=AS_LELYSTAD,
    )
    record = wait_for_record(
        kafka_topics,
        topics.social_problems(LELYSTAD),
        lambda r: (
            CloudEvent[ReferralStatusProblem].model_validate_json(r.value).data.rejected_event_id
            == own_topic.id
        ),
        credentials=AS_LELYSTAD,  # its answer is on its own problem topic
    )
    problem = CloudEvent[ReferralStatusProblem].model_validate_json(record.value).data
    assert problem.problem == "foreign-organisation"
    assert gp.get(f"/Task/{task_id}").json()["status"] == "requested", "the Task never moved"


def test_a_forged_referral_never_sends_a_patient_to_another_organisations_webhook(
    gp: httpx.Client, kafka_topics: str, webhook_receiver: WebhookReceiver
) -> None:
    referral_id, _ = _routed_to_dynamo(gp, kafka_topics)
    now = datetime.now(UTC)
    forged = CloudEvent[ReferralCreated].wrap(
        ReferralCreated(
            referral_id=uuid.UUID(referral_id),
            organisation_id=XTRA,
            municipality_code="GM0637",
            themes=[WorTheme.LONELINESS],
            age_band=AgeBand.FROM_75,
            urgency=Urgency.ROUTINE,
            submitted_at=now,
            routed_at=now,
            details_url=f"http://127.0.0.1:1/social/v1/referrals/{referral_id}",
        ),
        service="forger",
    )
    with pytest.raises(TopicAuthorizationFailedError):  # only Brug's relay writes it
        produce(
            kafka_topics,
            topics.social_referrals(XTRA),
            forged.to_json_bytes(),
            referral_id.encode(),
            credentials=AS_LELYSTAD,
        )

    # A producer that got past the ACLs (here: the suite's super user) is still refused:
    # the ledger assigned this referral to Dynamo, so webhook delivery parks the event.
    produce(
        kafka_topics, topics.social_referrals(XTRA), forged.to_json_bytes(), referral_id.encode()
    )
    record = wait_for_record(
        kafka_topics,
        topics.DEAD_LETTER,
        lambda r: (
            r.key == referral_id.encode()
            and CloudEvent[DeadLetter].model_validate_json(r.value).data.reason == "refused"
        ),
    )
    dead = CloudEvent[DeadLetter].model_validate_json(record.value).data
    assert dead.service == "webhook-delivery"
    assert XTRA in dead.detail
    assert webhook_receiver.attempts_for(referral_id) == [], "no details went to Xtra's webhook"
