"""Router service: ``brug.referrals.submitted.v1`` → ``brug.social.referrals.<org>.v1``."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog
from faststream.kafka import KafkaMessage

from adapters.directory import load_directory
from adapters.runtime import configure_logging, make_app, make_broker
from adapters.runtime.kafka import consumer_group
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import ReferralCreated, ReferralSubmitted
from services.router.routing import route
from services.router.settings import RouterSettings

SERVICE = "router"

settings = RouterSettings()
configure_logging(SERVICE, settings.log_level, settings.log_format)
directory = load_directory(settings.directory_path)
broker = make_broker(settings, service=SERVICE)
app = make_app(
    broker,
    service=SERVICE,
    description="Assigns submitted referrals to the welfare organisation serving the "
    "patient's municipality and publishes them on that organisation's topic.",
)
log = structlog.get_logger(f"brug.{SERVICE}")

# Declared for the AsyncAPI document; the organisation's topic is chosen per message.
referral_for_organisation = broker.publisher(
    topics.social_referrals("organisation-id").replace("organisation-id", "{organisation_id}"),
    title="brug.social.referrals.{organisation_id}.v1",
    description="The referral event one welfare organisation receives. Key: referral id.",
    schema=CloudEvent[ReferralCreated],
)


@broker.subscriber(topics.REFERRALS_SUBMITTED, group_id=consumer_group(SERVICE))
async def handle_submitted(event: CloudEvent[ReferralSubmitted], message: KafkaMessage) -> None:
    created = route(
        event.data,
        directory,
        details_base_url=settings.details_base_url,
        now=datetime.now(UTC),
    )
    # The outgoing event keeps the trace and records which event caused it.
    outgoing = CloudEvent[ReferralCreated].wrap(
        created, service=SERVICE, traceparent=event.traceparent
    )
    await referral_for_organisation.publish(
        outgoing.to_json_bytes(),
        topic=topics.social_referrals(created.organisation_id),
        key=str(created.referral_id).encode(),
        headers={"content-type": "application/cloudevents+json", "ce-causationid": event.id},
    )
    log.info(
        "referral routed",
        referral_id=str(created.referral_id),
        organisation_id=created.organisation_id,
        municipality_code=created.municipality_code,
        event_id=outgoing.id,
        kafka_offset=getattr(message.raw_message, "offset", None),
    )
