"""FHIR R4 topic-based Subscriptions (the Subscriptions Backport IG) as Brug offers them to
GP systems: one topic, ``rest-hook`` channels, ``id-only`` payloads.

Both sides of the wire live here: reading the Subscription a GP system posts (refusing what
Brug does not support with an OperationOutcome), and building what Brug sends back: the
Subscription as stored, its SubscriptionStatus (a ``Parameters`` resource in R4) and the
notification Bundle (type ``history``) for handshakes, heartbeats and events.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.subscription import Subscription
from pydantic import ValidationError

from adapters.fhir.outcomes import FhirProblem, structure_problem
from contracts.fhir_systems import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_NOTIFICATION_PROFILE,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_STATUS_PROFILE,
    BACKPORT_SUBSCRIPTION_PROFILE,
)

NotificationType = Literal["handshake", "heartbeat", "event-notification"]
PAYLOAD_TYPES = frozenset({"application/fhir+json", "application/json"})
MAX_HEADERS = 10
MAX_HEADER_LENGTH = 1000
MAX_ENDPOINT_LENGTH = 2000
MIN_HEARTBEAT_SECONDS = 1
MAX_HEARTBEAT_SECONDS = 7 * 24 * 3600
# A header a GP system sets for its endpoint (e.g. its own Authorization); Brug sets these.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})
_HEADER = re.compile(r"^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*)$")


@dataclass(frozen=True)
class SubscriptionRequest:
    """What Brug keeps of a posted Subscription."""

    endpoint: str
    headers: list[str]
    heartbeat_seconds: int | None
    resource: dict[str, Any]  # as posted, validated; status and id are Brug's


@dataclass(frozen=True)
class NotificationEvent:
    number: int
    timestamp: datetime
    focus: str  # full URL of the Task or Communication


def parse_subscription(body: Any, topic: str) -> SubscriptionRequest:
    """A posted R4 Subscription → what to store, or a ``FhirProblem`` (400/422)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Subscription":
        raise FhirProblem(400, "structure", "the body must be a FHIR Subscription resource")
    try:
        Subscription.model_validate(body)
    except ValidationError as error:
        raise structure_problem(error, "Subscription", "a Subscription") from None
    if body.get("criteria") != topic:
        raise FhirProblem(
            422,
            "not-supported",
            f"unknown topic: Subscription.criteria must be the topic canonical {topic}",
            "Subscription.criteria",
        )
    channel = body["channel"]
    if channel.get("type") != "rest-hook":
        raise FhirProblem(
            422,
            "not-supported",
            "only channel type 'rest-hook' is supported",
            "Subscription.channel.type",
        )
    endpoint = _endpoint(channel.get("endpoint"))
    payload = channel.get("payload")
    if payload not in PAYLOAD_TYPES:
        raise FhirProblem(
            422,
            "not-supported",
            "Subscription.channel.payload must be application/fhir+json",
            "Subscription.channel.payload",
        )
    content = _extension_value(channel.get("_payload"), BACKPORT_PAYLOAD_CONTENT, "valueCode")
    if content != "id-only":
        raise FhirProblem(
            422,
            "not-supported",
            "only id-only payloads are supported: set the backport-payload-content extension "
            f"on Subscription.channel.payload to 'id-only' (got {content or 'none'}); "
            "read the resources through the FHIR API",
            "Subscription.channel.payload.extension",
        )
    return SubscriptionRequest(
        endpoint=endpoint,
        headers=_headers(channel.get("header") or []),
        heartbeat_seconds=_heartbeat(channel),
        resource=body,
    )


def _endpoint(value: Any) -> str:
    expression = "Subscription.channel.endpoint"
    if not isinstance(value, str) or not value:
        raise FhirProblem(422, "required", "a rest-hook needs channel.endpoint", expression)
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise FhirProblem(422, "value", "channel.endpoint must be an http(s) URL", expression)
    if len(value) > MAX_ENDPOINT_LENGTH or parts.username or parts.password:
        raise FhirProblem(
            422, "value", "channel.endpoint is too long or carries credentials", expression
        )
    return value


def _headers(values: list[str]) -> list[str]:
    if len(values) > MAX_HEADERS:
        raise FhirProblem(
            422, "too-long", f"at most {MAX_HEADERS} headers", "Subscription.channel.header"
        )
    for index, value in enumerate(values):
        match = _HEADER.match(value)
        if match is None or len(value) > MAX_HEADER_LENGTH:
            raise FhirProblem(
                422,
                "value",
                "a channel header must be 'Name: value' on one line",
                f"Subscription.channel.header[{index}]",
            )
        if match.group(1).lower() in _RESERVED_HEADERS:
            raise FhirProblem(
                422,
                "value",
                f"header {match.group(1)} is set by Brug",
                f"Subscription.channel.header[{index}]",
            )
    return list(values)


def _heartbeat(channel: dict[str, Any]) -> int | None:
    seconds = _extension_value(channel, BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt")
    if seconds is None:
        return None
    if not isinstance(seconds, int) or not (
        MIN_HEARTBEAT_SECONDS <= seconds <= MAX_HEARTBEAT_SECONDS
    ):
        raise FhirProblem(
            422,
            "value",
            f"the heartbeat period must be {MIN_HEARTBEAT_SECONDS}..{MAX_HEARTBEAT_SECONDS} s",
            "Subscription.channel.extension",
        )
    return seconds


def _extension_value(element: Any, url: str, value_key: str) -> Any:
    if not isinstance(element, dict):
        return None
    for extension in element.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == url:
            return extension.get(value_key)
    return None


# -- what Brug sends ---------------------------------------------------------------


def subscription_resource(
    subscription_id: uuid.UUID, stored: dict[str, Any], status: str, error: str | None
) -> dict[str, Any]:
    """The Subscription as Brug has it: the posted resource with Brug's id and status."""
    resource = {k: v for k, v in stored.items() if k not in {"id", "meta", "error", "status"}}
    if isinstance(resource.get("channel"), dict) and resource["channel"].get("header"):
        # Headers often carry the endpoint's credentials: echo their names only.
        resource["channel"] = {
            **resource["channel"],
            "header": [f"{h.split(':', 1)[0]}: [redacted]" for h in resource["channel"]["header"]],
        }
    resource["id"] = str(subscription_id)
    resource["meta"] = {"profile": [BACKPORT_SUBSCRIPTION_PROFILE]}
    resource["status"] = status
    if error:
        resource["error"] = error
    return Subscription.model_validate(resource).model_dump(mode="json", exclude_none=True)


def status_parameters(
    *,
    subscription_url: str,
    topic: str,
    status: str,
    notification_type: NotificationType | Literal["query-status", "query-event"],
    events_since_start: int,
    events: Sequence[NotificationEvent] = (),
    error: str | None = None,
) -> dict[str, Any]:
    """A SubscriptionStatus, in R4 a ``Parameters`` resource (backport profile).

    Built as plain JSON, like every notification: validating each with fhir.resources cost
    gp_notify two fifths of its CPU; tests/unit/test_subscriptions.py validates the shapes."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": subscription_url}},
        {"name": "topic", "valueCanonical": topic},
        {"name": "status", "valueCode": status},
        {"name": "type", "valueCode": notification_type},
        {"name": "events-since-subscription-start", "valueString": str(events_since_start)},
    ]
    for event in events:
        parameters.append(
            {
                "name": "notification-event",
                "part": [
                    {"name": "event-number", "valueString": str(event.number)},
                    {"name": "timestamp", "valueInstant": event.timestamp.isoformat()},
                    {"name": "focus", "valueReference": {"reference": event.focus}},
                ],
            }
        )
    if error:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": error}})
    document = {
        "resourceType": "Parameters",
        "meta": {"profile": [BACKPORT_STATUS_PROFILE]},
        "parameter": parameters,
    }
    return document


def notification_bundle(
    *,
    subscription_url: str,
    topic: str,
    status: str,
    notification_type: NotificationType,
    events_since_start: int,
    event: NotificationEvent | None,
    at: datetime,
) -> dict[str, Any]:
    """A notification: Bundle ``history``, the status first, then (id-only) the focus's
    full URL without its content."""
    return _history_bundle(
        subscription_url=subscription_url,
        topic=topic,
        status=status,
        notification_type=notification_type,
        events_since_start=events_since_start,
        events=[event] if event else [],
        at=at,
    )


def events_bundle(
    *,
    subscription_url: str,
    topic: str,
    status: str,
    events_since_start: int,
    events: Sequence[NotificationEvent],
    at: datetime,
) -> dict[str, Any]:
    """The answer to ``GET Subscription/{id}/$events``: a notification Bundle of type
    ``query-event`` with every event asked for that is still kept, in order."""
    return _history_bundle(
        subscription_url=subscription_url,
        topic=topic,
        status=status,
        notification_type="query-event",
        events_since_start=events_since_start,
        events=events,
        at=at,
    )


def _history_bundle(
    *,
    subscription_url: str,
    topic: str,
    status: str,
    notification_type: NotificationType | Literal["query-event"],
    events_since_start: int,
    events: Sequence[NotificationEvent],
    at: datetime,
) -> dict[str, Any]:
    parameters = status_parameters(
        subscription_url=subscription_url,
        topic=topic,
        status=status,
        notification_type=notification_type,
        events_since_start=events_since_start,
        events=events,
    )
    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"urn:uuid:{uuid.uuid4()}",
            "resource": parameters,
            "request": {"method": "GET", "url": f"{subscription_url}/$status"},
            "response": {"status": "200"},
        }
    ]
    for event in events:
        resource_type = event.focus.rsplit("/", 2)[-2]
        entries.append(
            {
                "fullUrl": event.focus,
                "request": {
                    "method": "PUT" if resource_type == "Task" else "POST",
                    "url": event.focus,
                },
                "response": {"status": "200" if resource_type == "Task" else "201"},
            }
        )
    document = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [BACKPORT_NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": at.isoformat(),
        "entry": entries,
    }
    return document


def status_bundle(parameters: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The answer to ``GET Subscription/{id}/$status``: a searchset with the status."""
    status_id = uuid.uuid4()
    document = {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": at.isoformat(),
        "total": 1,
        "entry": [
            {
                "fullUrl": f"urn:uuid:{status_id}",
                "resource": {**parameters, "id": str(status_id)},  # a match needs an id
                "search": {"mode": "match"},
            }
        ],
    }
    return Bundle.model_validate(document).model_dump(mode="json", exclude_none=True)
