"""FHIR R4 Subscriptions (Backport IG) for GP systems: create, read, ``$status``,
``$events`` (the notifications sent, to recover missed ones), delete.

A GP system subscribes its endpoint to Brug's one topic (changes to its referrals' Tasks
and Communications for it); ``services/gp_notify`` sends the handshake, heartbeats and
id-only notifications. A Subscription is its organisation's: another one gets a 404.

The routes are built by ``subscription_routes`` from what the gateway already has
(authentication, the FHIR response, the database), so the gateway only includes them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clients import Client
from adapters.fhir.outcomes import FhirProblem
from adapters.fhir.subscriptions import (
    NotificationEvent,
    SubscriptionRequest,
    events_bundle,
    parse_subscription,
    status_bundle,
    status_parameters,
    subscription_resource,
)
from adapters.ledger.repository import Ledger
from adapters.ledger.subscriptions import SubscriptionRow, Subscriptions
from adapters.outbound import Refused, pinned_target
from contracts.fhir_systems import REFERRAL_FEEDBACK_TOPIC

MAX_SUBSCRIPTION_BYTES = 64 * 1024
MAX_EVENTS = 100  # per $events answer; ask again from the last number + 1 for more
EVENTS_PARAMETERS = frozenset({"eventsSinceNumber", "eventsUntilNumber", "content", "_format"})
CONTENT_CODES = frozenset({"empty", "id-only", "full-resource"})  # a hint: id-only is sent
JSON_TYPES = frozenset({"application/fhir+json", "application/json"})

Authenticate = Callable[[Request], Client]
Respond = Callable[[Request, int, dict[str, Any], dict[str, str] | None], Response]

log = structlog.get_logger("brug.fhir-gateway.subscriptions")


def subscription_routes(
    *,
    authenticate: Authenticate,
    respond: Respond,
    engine: AsyncEngine,
    base_url: str,
    max_per_client: int,
    topic: str = REFERRAL_FEEDBACK_TOPIC,
) -> APIRouter:
    """``authenticate`` returns the GP client of a request (or raises a 401 FhirProblem);
    a client has at most ``max_per_client`` requested or active subscriptions."""
    router = APIRouter()
    base = base_url.rstrip("/")

    def url_of(subscription_id: uuid.UUID) -> str:
        return f"{base}/Subscription/{subscription_id}"

    async def run(write: bool, work: Callable[[Connection], Any]) -> Any:
        try:
            async with engine.begin() if write else engine.connect() as connection:
                return await connection.run_sync(work)
        except (OperationalError, OSError, TimeoutError) as error:
            log.warning("database unavailable", error_type=type(error).__name__)
            raise FhirProblem(
                503,
                "transient",
                "Brug cannot reach its database; retry later",
                headers={"Retry-After": "10"},
            ) from None

    async def owned(client: Client, subscription_id: str, action: str) -> SubscriptionRow:
        identifier = _uuid(subscription_id)

        def read(connection: Connection) -> SubscriptionRow | None:
            assert identifier is not None
            row = Subscriptions(connection).get(identifier, client.organisation)
            if row is not None:
                _audit(connection, client, action, row.subscription_id)
            return row

        row = None if identifier is None else await run(True, read)
        if row is None:
            # Another organisation's Subscription answers like a missing one.
            raise FhirProblem(
                404, "not-found", f"Subscription/{subscription_id} is not known", "Subscription.id"
            )
        return row

    @router.post("/fhir/Subscription")
    async def create_subscription(request: Request) -> Response:
        client = authenticate(request)
        wanted = parse_subscription(await _json_body(request), topic)
        await _check_endpoint(wanted.endpoint, client)
        subscription_id = uuid.uuid4()
        now = datetime.now(UTC)

        def create(connection: Connection) -> None:
            if Subscriptions(connection).live_count_locked(client.client_id) >= max_per_client:
                raise FhirProblem(
                    422,
                    "business-rule",
                    f"at most {max_per_client} requested or active Subscriptions per client; "
                    "delete one first",
                )
            _store(connection, client, subscription_id, wanted, topic, now)
            _audit(connection, client, "subscription-created", subscription_id)

        await run(True, create)
        log.info(
            "subscription requested",
            subscription_id=str(subscription_id),
            client_id=client.client_id,
            heartbeat_seconds=wanted.heartbeat_seconds,
        )
        body = subscription_resource(subscription_id, wanted.resource, "requested", None)
        return respond(request, 201, body, {"Location": url_of(subscription_id)})

    @router.get("/fhir/Subscription/{subscription_id}")
    async def read_subscription(subscription_id: str, request: Request) -> Response:
        client = authenticate(request)
        row = await owned(client, subscription_id, "read-subscription")
        body = subscription_resource(row.subscription_id, row.resource, row.status, row.error)
        return respond(request, 200, body, None)

    @router.get("/fhir/Subscription/{subscription_id}/$status")
    async def subscription_status(subscription_id: str, request: Request) -> Response:
        client = authenticate(request)
        row = await owned(client, subscription_id, "read-subscription-status")
        parameters = status_parameters(
            subscription_url=url_of(row.subscription_id),
            topic=row.topic,
            status=row.status,
            notification_type="query-status",
            events_since_start=row.events_since_start,
            error=row.error,
        )
        return respond(request, 200, status_bundle(parameters, datetime.now(UTC)), None)

    @router.get("/fhir/Subscription/{subscription_id}/$events")
    async def subscription_events(subscription_id: str, request: Request) -> Response:
        """Backport IG ``$events``: the events numbered ``eventsSinceNumber`` (default 1)
        to ``eventsUntilNumber`` (default the latest) still kept, at most ``MAX_EVENTS``."""
        client = authenticate(request)
        since, until = _event_range(request.query_params.multi_items())
        row = await owned(client, subscription_id, "read-subscription-events")
        last = row.events_since_start if until is None else min(until, row.events_since_start)
        kept = await run(
            False,
            lambda c: Subscriptions(c).events(row.subscription_id, since, last, MAX_EVENTS),
        )
        events = [
            NotificationEvent(
                number=e.event_number, timestamp=e.occurred_at, focus=f"{base}/{e.reference()}"
            )
            for e in kept
        ]
        bundle = events_bundle(
            subscription_url=url_of(row.subscription_id),
            topic=row.topic,
            status=row.status,
            events_since_start=row.events_since_start,
            events=events,
            at=datetime.now(UTC),
        )
        return respond(request, 200, bundle, None)

    @router.delete("/fhir/Subscription/{subscription_id}")
    async def delete_subscription(subscription_id: str, request: Request) -> Response:
        client = authenticate(request)
        identifier = _uuid(subscription_id)

        def turn_off(connection: Connection) -> bool:
            assert identifier is not None
            done = Subscriptions(connection).turn_off(identifier, client.organisation)
            if done:
                _audit(connection, client, "subscription-deleted", identifier)
            return done

        if identifier is None or not await run(True, turn_off):
            raise FhirProblem(
                404, "not-found", f"Subscription/{subscription_id} is not known", "Subscription.id"
            )
        log.info("subscription off", subscription_id=subscription_id, client_id=client.client_id)
        return Response(status_code=204)

    return router


async def _json_body(request: Request) -> Any:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise FhirProblem(415, "not-supported", "send the Subscription as application/fhir+json")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_SUBSCRIPTION_BYTES:
            raise FhirProblem(
                413, "too-long", f"a Subscription is at most {MAX_SUBSCRIPTION_BYTES} bytes"
            )
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FhirProblem(400, "structure", f"the body is not valid JSON: {error}") from None


def _event_range(params: list[tuple[str, str]]) -> tuple[int, int | None]:
    """(since, until) of ``$events``; a parameter Brug does not know is refused (400)."""
    values: dict[str, str] = {}
    for name, value in params:
        if name not in EVENTS_PARAMETERS:
            known = ", ".join(sorted(EVENTS_PARAMETERS - {"_format"}))
            raise FhirProblem(
                400, "not-supported", f"$events takes {known}; not {name[:40]!r}", name[:40]
            )
        values[name] = value
    if values.get("content", "id-only") not in CONTENT_CODES:
        raise FhirProblem(
            400, "value", f"content must be one of {', '.join(sorted(CONTENT_CODES))}", "content"
        )
    since = _event_number(values, "eventsSinceNumber") or 1
    until = _event_number(values, "eventsUntilNumber")
    if until is not None and until < since:
        raise FhirProblem(
            400, "value", "eventsUntilNumber is below eventsSinceNumber", "eventsUntilNumber"
        )
    return since, until


def _event_number(values: dict[str, str], name: str) -> int | None:
    value = values.get(name)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 18 or int(value) < 1:
        raise FhirProblem(400, "value", f"{name} must be an event number (1 or more)", name)
    return int(value)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _check_endpoint(endpoint: str, client: Client) -> None:
    """https to a public address (see ``adapters/outbound.py``); gp_notify checks again at
    every send, since what a name resolves to can change."""
    try:
        await pinned_target(endpoint, allow_loopback_http=client.allow_loopback_http)
    except Refused as refused:
        raise FhirProblem(422, "value", str(refused), "Subscription.channel.endpoint") from None


def _store(
    connection: Connection,
    client: Client,
    subscription_id: uuid.UUID,
    wanted: SubscriptionRequest,
    topic: str,
    now: datetime,
) -> None:
    Subscriptions(connection).create(
        subscription_id=subscription_id,
        client_id=client.client_id,
        organisation=client.organisation,
        topic=topic,
        endpoint=wanted.endpoint,
        headers=wanted.headers,
        heartbeat_seconds=wanted.heartbeat_seconds,
        resource=wanted.resource,
        at=now,
    )


def _audit(connection: Connection, client: Client, action: str, subscription_id: uuid.UUID) -> None:
    Ledger(connection).audit(
        actor=f"client:{client.client_id}",
        action=action,
        referral_id=None,
        detail={"subscription_id": str(subscription_id)},
    )
