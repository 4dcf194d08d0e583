"""FHIR Subscriptions (R4 Backport IG): what a GP system may post, and what Brug sends
(the stored Subscription, the SubscriptionStatus and notification Bundles) is valid R4."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.subscription import Subscription

from adapters.fhir.outcomes import FhirProblem
from adapters.fhir.subscriptions import (
    NotificationEvent,
    notification_bundle,
    parse_subscription,
    status_bundle,
    status_parameters,
    subscription_resource,
)
from contracts.fhir_systems import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    REFERRAL_FEEDBACK_TOPIC,
)

AT = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
BASE = "https://brug.example/fhir"


def posted(**channel: Any) -> dict[str, Any]:
    subscription: dict[str, Any] = {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Feedback on our referrals",
        "criteria": REFERRAL_FEEDBACK_TOPIC,
        "channel": {
            "extension": [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 60}],
            "type": "rest-hook",
            "endpoint": "https://his.example/fhir/notify",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
            "header": ["Authorization: Bearer secret-of-the-his"],
        },
    }
    subscription["channel"].update(channel)
    return subscription


def refused(body: Any) -> FhirProblem:
    with pytest.raises(FhirProblem) as problem:
        parse_subscription(body, REFERRAL_FEEDBACK_TOPIC)
    return problem.value


def test_a_backport_subscription_is_accepted() -> None:
    wanted = parse_subscription(posted(), REFERRAL_FEEDBACK_TOPIC)
    assert wanted.endpoint == "https://his.example/fhir/notify"
    assert wanted.headers == ["Authorization: Bearer secret-of-the-his"]
    assert wanted.heartbeat_seconds == 60


def test_heartbeat_and_headers_are_optional() -> None:
    body = posted(extension=[])
    del body["channel"]["header"]
    wanted = parse_subscription(body, REFERRAL_FEEDBACK_TOPIC)
    assert wanted.heartbeat_seconds is None
    assert wanted.headers == []


@pytest.mark.parametrize("content", ["full-resource", "empty", None])
def test_only_id_only_payloads(content: str | None) -> None:
    extension = [] if content is None else [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": content}]
    problem = refused(posted(_payload={"extension": extension}))
    assert problem.status == 422
    assert "id-only" in problem.diagnostics


def test_a_wrong_topic_is_refused_clearly() -> None:
    body = posted()
    body["criteria"] = "Task?status=completed"
    problem = refused(body)
    assert (problem.status, problem.expression) == (422, "Subscription.criteria")
    assert REFERRAL_FEEDBACK_TOPIC in problem.diagnostics


@pytest.mark.parametrize("channel_type", ["websocket", "email", "message"])
def test_only_rest_hook(channel_type: str) -> None:
    problem = refused(posted(type=channel_type))
    assert (problem.status, problem.expression) == (422, "Subscription.channel.type")


@pytest.mark.parametrize(
    "endpoint", ["ftp://his.example/x", "not a url", "https://user:pw@his.example/x"]
)
def test_endpoint_must_be_plain_http(endpoint: str) -> None:
    problem = refused(posted(endpoint=endpoint))
    assert (problem.status, problem.expression) == (422, "Subscription.channel.endpoint")


def test_payload_must_be_fhir_json() -> None:
    assert refused(posted(payload="application/fhir+xml")).status == 422


@pytest.mark.parametrize(
    "header", ["no colon here", "Content-Type: text/plain", "X-A: b\r\nX-Injected: c"]
)
def test_bad_or_reserved_headers_are_refused(header: str) -> None:
    problem = refused(posted(header=[header]))
    assert problem.status == 422
    assert problem.expression == "Subscription.channel.header[0]"


@pytest.mark.parametrize("seconds", [0, 10**9])
def test_heartbeat_period_bounds(seconds: int) -> None:
    extension = [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": seconds}]
    assert refused(posted(extension=extension)).status == 422


def test_invalid_fhir_is_a_400_naming_the_element() -> None:
    body = posted()
    del body["reason"]
    problem = refused(body)
    assert problem.status == 400
    assert problem.expression is not None and problem.expression.startswith("Subscription")
    assert refused({"resourceType": "Task"}).status == 400


def test_the_stored_subscription_is_valid_and_hides_header_values() -> None:
    subscription_id = uuid.uuid4()
    body = copy.deepcopy(posted())
    body["id"] = "client-chosen"
    resource = subscription_resource(subscription_id, body, "error", "endpoint answered 500")
    Subscription.model_validate(resource)
    assert resource["id"] == str(subscription_id)
    assert resource["status"] == "error"
    assert resource["error"] == "endpoint answered 500"
    assert resource["channel"]["header"] == ["Authorization: [redacted]"]
    assert "secret-of-the-his" not in str(resource)


def _parameters(resource: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p for p in resource["parameter"]}


def test_an_event_notification_is_an_id_only_history_bundle() -> None:
    subscription_url = f"{BASE}/Subscription/{uuid.uuid4()}"
    focus = f"{BASE}/Task/{uuid.uuid4()}"
    bundle = notification_bundle(
        subscription_url=subscription_url,
        topic=REFERRAL_FEEDBACK_TOPIC,
        status="active",
        notification_type="event-notification",
        events_since_start=7,
        event=NotificationEvent(number=7, timestamp=AT, focus=focus),
        at=AT,
    )
    Bundle.model_validate(bundle)
    assert bundle["type"] == "history"
    status, focus_entry = bundle["entry"]
    Parameters.model_validate(status["resource"])
    parameters = _parameters(status["resource"])
    assert parameters["subscription"]["valueReference"]["reference"] == subscription_url
    assert parameters["topic"]["valueCanonical"] == REFERRAL_FEEDBACK_TOPIC
    assert parameters["status"]["valueCode"] == "active"
    assert parameters["type"]["valueCode"] == "event-notification"
    assert parameters["events-since-subscription-start"]["valueString"] == "7"
    parts = {p["name"]: p for p in parameters["notification-event"]["part"]}
    assert parts["event-number"]["valueString"] == "7"
    assert parts["focus"]["valueReference"]["reference"] == focus
    assert datetime.fromisoformat(parts["timestamp"]["valueInstant"]) == AT
    # id-only: the focus is named, its content is not sent.
    assert focus_entry["fullUrl"] == focus
    assert "resource" not in focus_entry


@pytest.mark.parametrize("kind", ["handshake", "heartbeat"])
def test_handshake_and_heartbeat_carry_no_event(kind: str) -> None:
    bundle = notification_bundle(
        subscription_url=f"{BASE}/Subscription/{uuid.uuid4()}",
        topic=REFERRAL_FEEDBACK_TOPIC,
        status="requested" if kind == "handshake" else "active",
        notification_type=kind,  # type: ignore[arg-type]
        events_since_start=0,
        event=None,
        at=AT,
    )
    Bundle.model_validate(bundle)
    assert len(bundle["entry"]) == 1
    parameters = _parameters(bundle["entry"][0]["resource"])
    assert parameters["type"]["valueCode"] == kind
    assert "notification-event" not in parameters


def test_status_is_a_searchset_with_the_subscription_status() -> None:
    parameters = status_parameters(
        subscription_url=f"{BASE}/Subscription/{uuid.uuid4()}",
        topic=REFERRAL_FEEDBACK_TOPIC,
        status="error",
        notification_type="query-status",
        events_since_start=3,
        error="endpoint answered HTTP 500 after 3 attempt(s)",
    )
    bundle = status_bundle(parameters, AT)
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    found = _parameters(bundle["entry"][0]["resource"])
    assert found["status"]["valueCode"] == "error"
    assert found["events-since-subscription-start"]["valueString"] == "3"
    assert "HTTP 500" in found["error"]["valueCodeableConcept"]["text"]
