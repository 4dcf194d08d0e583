"""POSTing notification Bundles to GP systems' Subscription endpoints: the bundle, a few
quick attempts, and the outcome counted and logged.

Logs carry ids and HTTP status codes only: never endpoints, headers or payloads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from adapters.fhir.subscriptions import NotificationEvent, NotificationType, notification_bundle
from adapters.ledger.subscriptions import SubscriptionRow
from adapters.outbound import Refused, pinned_target
from adapters.runtime.metrics import NOTIFICATIONS
from adapters.runtime.tracing import trace_headers
from services.gp_notify import SERVICE

FHIR_JSON = "application/fhir+json"

log = structlog.get_logger(f"brug.{SERVICE}")


class Endpoints:
    """Sends to subscription endpoints over one HTTP client (closed by ``aclose``)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        fhir_base_url: str,
        attempts: int,
        retry_seconds: float,
        loopback_allowed: Collection[str] = (),
    ) -> None:
        self._http = http
        self._base_url = fhir_base_url.rstrip("/")
        self._attempts = attempts
        self._retry_seconds = retry_seconds
        self._loopback_allowed = frozenset(loopback_allowed)  # client ids (dev registries)

    def url(self, reference: str) -> str:
        """The full URL GP systems read ``reference`` (``Task/<id>``…) at."""
        return f"{self._base_url}/{reference}"

    def bundle(
        self,
        subscription: SubscriptionRow,
        status: str,
        notification_type: NotificationType,
        events_since_start: int,
        event: NotificationEvent | None = None,
    ) -> dict[str, Any]:
        return notification_bundle(
            subscription_url=self.url(f"Subscription/{subscription.subscription_id}"),
            topic=subscription.topic,
            status=status,
            notification_type=notification_type,
            events_since_start=events_since_start,
            event=event,
            at=datetime.now(UTC),
        )

    async def post(self, subscription: SubscriptionRow, body: dict[str, Any]) -> str | None:
        """POST a notification with a few quick attempts; None on a 2xx, else why not (ids
        and status codes only: the reason is shown to the GP system in ``$status``)."""
        content = json.dumps(body).encode()
        reason = "not attempted"
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._retry_seconds * 2 ** (attempt - 1))
            try:
                # Resolved and checked at every attempt, and sent to the checked address:
                # the name may have been pointed at an internal address since it was stored.
                target = await pinned_target(
                    subscription.endpoint,
                    allow_loopback_http=subscription.client_id in self._loopback_allowed,
                )
            except Refused as refused:
                log.warning("endpoint refused", subscription_id=str(subscription.subscription_id))
                return f"endpoint not allowed: {refused}"
            try:
                response = await self._http.post(
                    target.url,
                    content=content,
                    headers=_headers(subscription) | {"Host": target.host_header},
                    extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else {},
                )
            except httpx.HTTPError:
                # One text for refused, reset and timed out alike: $status must not tell a
                # GP system which ports are open where.
                reason = "endpoint unreachable"
                continue
            if 200 <= response.status_code < 300:
                return None
            reason = f"endpoint answered HTTP {response.status_code}"
        return f"{reason} after {self._attempts} attempt(s)"

    async def aclose(self) -> None:
        await self._http.aclose()


def _headers(subscription: SubscriptionRow) -> dict[str, str]:
    headers = {}
    for header in subscription.headers:
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    headers["Content-Type"] = FHIR_JSON
    headers.update(trace_headers())  # the GP system may continue the referral's trace
    return headers


def log_outcome(kind: str, subscription: SubscriptionRow, failure: str | None, **ids: Any) -> None:
    outcome = "delivered" if failure is None else "failed"
    NOTIFICATIONS.labels(service=SERVICE, kind=kind, outcome=outcome).inc()
    if failure is None:
        log.info(f"{kind} delivered", subscription_id=str(subscription.subscription_id), **ids)
    else:
        log.warning(
            f"{kind} failed",
            subscription_id=str(subscription.subscription_id),
            error=failure,
            **ids,
        )
