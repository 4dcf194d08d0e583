"""The FHIR edge's Kafka side: GP systems on the bus put a Bundle on
``brug.gp.referrals.<client>.v1`` and get the answer on ``brug.gp.outcomes.<client>.v1``.

The publishers of the outbox's events (the relay sends them) are declared here too, so the
AsyncAPI document shows every topic the edge's work lands on.
"""

from __future__ import annotations

import json
from typing import Any

from faststream.kafka import KafkaMessage, KafkaRouter
from faststream.message import StreamMessage

from adapters.fhir.formats import FHIR_JSON
from adapters.fhir.outcomes import FhirProblem
from adapters.runtime import Unprocessable
from adapters.runtime.kafka import NEW_GROUP_STARTS_AT, consumer_group, service_router
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.codes import SubmissionChannel
from contracts.events import FeedbackReceivedByGp, ReferralSubmitted, ReferralWithdrawn
from services.fhir_gateway.edge import FhirEdge
from services.fhir_gateway.intake import process_submission
from services.fhir_gateway.submission import SERVICE, Reply
from services.fhir_gateway.translation import parse_bundle

# The subscriber's description in the AsyncAPI document, as it has been published.
DESCRIPTION = (
    "GP systems on the bus: the Bundle on ``brug.gp.referrals.<client>.v1``, the answer on\n"
    "    ``brug.gp.outcomes.<client>.v1`` under the same key. The topic is the identity (Kafka "
    "ACLs\n    let only that GP system write it); the key is the request id."
)


def inbound_router(edge: FhirEdge) -> KafkaRouter:
    """The subscriber on every GP system's referral topic, answering on its outcome topic."""
    router = service_router()
    outcomes = router.publisher(
        "brug.gp.outcomes.{client_id}.v1",
        title="brug.gp.outcomes.{client_id}.v1",
        description="The answer to a Bundle a GP system put on its inbound topic. Key: its key.",
    )
    _declare_outbox_topics(router)

    async def handle_kafka_submission(body: Any, message: KafkaMessage) -> None:
        reply, client_id = await submit_from_kafka(edge, message)
        record: Any = message.raw_message
        await outcomes.publish(
            json.dumps(reply.body).encode(),
            topic=topics.gp_outcomes(client_id),
            key=record.key,
            headers={"content-type": FHIR_JSON, "brug-status": str(reply.status)},
        )

    router.subscriber(
        pattern=topics.GP_REFERRALS_PATTERN,
        group_id=consumer_group(SERVICE),
        auto_offset_reset=NEW_GROUP_STARTS_AT,
        description=DESCRIPTION,
        decoder=undecoded,
    )(handle_kafka_submission)
    return router


async def undecoded(message: StreamMessage[Any], default: Any) -> bytes:
    """The Bundle stays bytes until the intake's bounded parser reads it: FastStream's own
    decoding (the stdlib's recursive parser) fails on a deeply nested record, before the
    handler could answer it, and the record would be retried."""
    return bytes(message.body)


async def submit_from_kafka(edge: FhirEdge, message: KafkaMessage) -> tuple[Reply, str]:
    """The record's Bundle through the same intake as over HTTP: the topic is the identity
    (Kafka ACLs let only that GP system write it); the key is the request id."""
    record: Any = message.raw_message  # one ConsumerRecord: this is not a batch subscriber
    client = edge.gp_client(topics.client_of_gp_topic(record.topic))
    if client is None:
        raise Unprocessable("invalid-payload", f"no GP system is registered for {record.topic}")
    request_id = (
        # Not UTF-8: U+FFFD fails the request-id check, and the record is answered 400.
        record.key.decode("utf-8", "replace")
        if record.key
        else f"{record.topic}/{record.partition}/{record.offset}"
    )
    try:
        reply = await process_submission(
            edge,
            client,
            record.value or b"",
            parse_bundle,
            request_id=request_id,
            traceparent=message.headers.get("traceparent"),
            channel=SubmissionChannel.KAFKA,
        )
    except FhirProblem as problem:
        if problem.status == 503:
            raise ConnectionError(problem.diagnostics) from None  # retried, with backoff
        reply = Reply(problem.status, problem.outcome())
    return reply, client.client_id


def _declare_outbox_topics(router: KafkaRouter) -> None:
    """What the edge's transactions put in the outbox; the relay publishes it."""
    router.publisher(
        topics.REFERRALS_SUBMITTED,
        title=topics.REFERRALS_SUBMITTED,
        description="A referral accepted from a GP system and stored. Key: referral id.",
        schema=CloudEvent[ReferralSubmitted],
    )
    router.publisher(
        "brug.social.referrals.{organisation_id}.v1",
        title="brug.social.referrals.{organisation_id}.v1",
        description="The GP's withdrawal, and receipts for feedback the GP system read, to the "
        "organisation the referral went to. Key: referral id.",
        schema=CloudEvent[ReferralWithdrawn | FeedbackReceivedByGp],
    )
