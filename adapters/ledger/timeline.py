"""One referral's life across the services, as operators read it (console and ``brug trace``).

Built from what the ledger already records — the referral row's timestamps, the status
history, the audit trail, webhook deliveries, Communications and dead letters — so it needs
no tracing backend and survives restarts. Metadata only: ids, services, states, reasons;
never the patient's details (those need a privacy officer's audited reveal).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from adapters.ledger.tables import (
    audit_log,
    communications,
    dead_letters,
    referral_status_history,
    referrals,
    webhook_deliveries,
)

# Accesses by operators are listed apart: they are about the referral, not steps in its life.
OPERATOR_ACCESS_ACTIONS = frozenset({"viewed-timeline", "revealed-details", "revealed-dead-letter"})

# audit action → (service that wrote it, what happened)
AUDITED_STEPS: dict[str, tuple[str, str]] = {
    "submitted": ("fhir_gateway", "received from the GP system and translated"),
    "routed": ("router", "assigned to a welfare organisation"),
    "read-details": ("social_gateway", "details fetched by the case system"),
    "read-details-refused": ("social_gateway", "details fetch refused"),
    "delivered-details": ("webhook_delivery", "details delivered by webhook"),
    "reported-status": ("social_gateway", "status posted by the case system"),
    "raised-signal": ("social_gateway", "signal posted by the case system"),
    "resubmitted": ("fhir_gateway", "submitted again: answered with the same Task"),
    "read-status": ("social_gateway", "applied status read by the case system"),
    "read-task": ("fhir_gateway", "Task read by the GP system"),
    "read-communication": ("fhir_gateway", "Communication read by the GP system"),
    "search-task": ("fhir_gateway", "Task found by the GP system's search"),
    "search-communication": ("fhir_gateway", "Communication found by the GP system's search"),
    "notified-gp": ("gp_notify", "notification pushed to the GP system"),
    "withdrawn": ("fhir_gateway", "withdrawn by the GP"),
    "replayed-dead-letter": ("console", "dead letter replayed by an operator"),
    "discarded-dead-letter": ("console", "dead letter discarded by an operator"),
    "requeued-delivery": ("console", "parked webhook delivery requeued by an operator"),
    "discarded-delivery": ("console", "parked webhook delivery discarded by an operator"),
}


@dataclass(frozen=True)
class Step:
    at: datetime
    service: str
    step: str
    detail: str = ""
    took: timedelta | None = None  # since the step before

    @property
    def when(self) -> str:
        """UTC to the millisecond, as both the console and ``brug trace`` show it."""
        return self.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]

    @property
    def took_text(self) -> str:
        return "" if self.took is None else f"+{format_duration(self.took)}"

    def line(self) -> str:
        """The step as ``brug trace`` prints it: the console's timeline row, as text."""
        detail = f"  {self.detail}" if self.detail else ""
        return f"{self.when}  {self.took_text:>10}  {self.service:<16} {self.step}{detail}"


@dataclass(frozen=True)
class Access:
    at: datetime
    actor: str
    action: str
    reason: str


@dataclass(frozen=True)
class Timeline:
    referral_id: uuid.UUID
    task_id: uuid.UUID | None
    trace_id: str | None
    service_request: str | None
    organisation_id: str | None
    municipality_code: str | None
    status: str
    steps: list[Step]
    accesses: list[Access]

    @property
    def total(self) -> timedelta | None:
        return self.steps[-1].at - self.steps[0].at if len(self.steps) > 1 else None


def format_duration(duration: timedelta) -> str:
    seconds = duration.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def referral_timeline(connection: Connection, referral_id: uuid.UUID) -> Timeline | None:
    row = connection.execute(
        select(referrals).where(referrals.c.referral_id == referral_id)
    ).one_or_none()
    if row is None:
        return None
    audit_rows = list(
        connection.execute(
            select(audit_log).where(audit_log.c.referral_id == referral_id).order_by(audit_log.c.id)
        )
    )
    steps = [
        *_referral_steps(row),
        *_audit_steps(audit_rows),
        *_status_steps(connection, referral_id),
        *_webhook_steps(connection, referral_id),
        *_communication_steps(connection, referral_id),
        *_dead_letter_steps(connection, referral_id),
    ]
    return Timeline(
        referral_id=row.referral_id,
        task_id=row.task_id,
        trace_id=row.trace_id,
        service_request=row.service_request_value,
        organisation_id=row.organisation_id,
        municipality_code=row.municipality_code,
        status=row.status,
        steps=_with_durations(sorted(steps, key=lambda step: step.at)),
        accesses=[
            Access(a.at, a.actor, a.action, str(a.detail.get("reason", "")))
            for a in audit_rows
            if a.action in OPERATOR_ACCESS_ACTIONS
        ],
    )


def _with_durations(steps: list[Step]) -> list[Step]:
    timed: list[Step] = []
    for index, step in enumerate(steps):
        took = step.at - steps[index - 1].at if index else None
        timed.append(Step(step.at, step.service, step.step, step.detail, took))
    return timed


def _referral_steps(row: Any) -> list[Step]:
    steps = []
    if row.submitted_event_published_at:
        # Stamped when Kafka's acknowledgement is back: the router may already have acted.
        steps.append(
            Step(
                row.submitted_event_published_at,
                "fhir_gateway",
                "ReferralSubmitted acknowledged by Kafka",
            )
        )
    if row.routed_event_published_at:
        steps.append(
            Step(
                row.routed_event_published_at,
                "router",
                "delivered ReferralCreated to the organisation's topic",
                f"organisation {row.organisation_id}",
            )
        )
    for column, what in (
        ("received_overdue_at", "receipt"),
        ("contact_overdue_at", "first contact"),
    ):
        if (at := getattr(row, column)) is not None:
            steps.append(Step(at, "feedback", f"service level missed: {what} overdue"))
    return steps


def _audit_steps(rows: list[Any]) -> list[Step]:
    steps = []
    for audit in rows:
        if audit.action in OPERATOR_ACCESS_ACTIONS:
            continue
        service, what = AUDITED_STEPS.get(audit.action, ("", audit.action.replace("-", " ")))
        steps.append(Step(audit.at, service or _service_of(audit.actor), what, _describe(audit)))
    return steps


def _service_of(actor: str) -> str:
    kind, _, name = actor.partition(":")
    return name if kind == "service" else kind


def _describe(audit: Any) -> str:
    """Only the audit detail's metadata keys; notes and reasons stay in the audit log."""
    shown = (
        "organisation_id",
        "status",
        "event_id",
        "resource",
        "channel",
        "reason_code",
        "outcome",
    )
    parts = [f"{key} {audit.detail[key]}" for key in shown if key in audit.detail]
    return f"by {audit.actor}" + (f"; {', '.join(parts)}" if parts else "")


def _status_steps(connection: Connection, referral_id: uuid.UUID) -> list[Step]:
    rows = connection.execute(
        select(referral_status_history)
        .where(referral_status_history.c.referral_id == referral_id)
        .order_by(referral_status_history.c.id)
    )
    return [
        Step(
            r.occurred_at,
            _source_service(r.source),
            f"Task status {r.status}",
            f"source {r.source}",
        )
        for r in rows
    ]


def _source_service(source: str) -> str:
    if source.startswith("welfare:"):
        return "feedback"
    if source == "gp" or source.startswith("gp:"):
        return "fhir_gateway"
    return source


def _webhook_steps(connection: Connection, referral_id: uuid.UUID) -> list[Step]:
    steps = []
    rows = connection.execute(
        select(webhook_deliveries).where(webhook_deliveries.c.referral_id == referral_id)
    )
    for delivery in rows:
        steps.append(Step(delivery.created_at, "webhook_delivery", "webhook delivery queued"))
        if delivery.finished_at is not None:
            detail = f"after {delivery.attempts} attempt(s)"
            if delivery.last_error and delivery.state != "delivered":
                detail += f"; last error: {delivery.last_error}"
            steps.append(
                Step(delivery.finished_at, "webhook_delivery", f"webhook {delivery.state}", detail)
            )
    return steps


def _communication_steps(connection: Connection, referral_id: uuid.UUID) -> list[Step]:
    steps = []
    rows = connection.execute(
        select(communications).where(communications.c.referral_id == referral_id)
    )
    for message in rows:
        kind = f"Communication ({message.category})"
        steps.append(Step(message.sent_at, "feedback", f"{kind} created", f"from {message.sender}"))
        if message.published_at is not None:
            steps.append(
                Step(message.published_at, "feedback", f"{kind} announced to the GP system")
            )
        if message.gp_received_at is not None:
            steps.append(
                Step(
                    message.gp_received_at,
                    "fhir_gateway" if message.gp_received_channel == "pull" else "gp_notify",
                    f"{kind} received by the GP system",
                    f"channel {message.gp_received_channel}",
                )
            )
    return steps


def _dead_letter_steps(connection: Connection, referral_id: uuid.UUID) -> list[Step]:
    steps = []
    rows = connection.execute(select(dead_letters).where(dead_letters.c.referral_id == referral_id))
    for letter in rows:
        steps.append(
            Step(
                letter.failed_at,
                letter.service,
                f"dead-lettered: {letter.reason}",
                f"{letter.detail} (dead letter {letter.dead_letter_id})",
            )
        )
    return steps
