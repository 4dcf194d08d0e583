"""What the flows and health pages show, gathered from Kafka, the ledger and each service's
``/metrics``. Kafka and the ledger are asked directly, so the figures are right from the
first look, after restarts too."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Connection

from adapters.database import database_health
from adapters.kafka_admin import GroupLag, broker_health, consumer_lag, messages_per_minute
from adapters.ledger.operations import Operations

# Topic families in the order of a referral's journey, with who talks to whom.
DIRECTIONS: tuple[tuple[str, str, str], ...] = (
    ("brug.gp.referrals.", "medical → social", "GP system → fhir_gateway (FHIR over Kafka)"),
    ("brug.referrals.submitted.", "medical → social", "fhir_gateway → router"),
    ("brug.social.referrals.", "medical → social", "router → welfare organisation"),
    ("brug.social.status.", "social → medical", "case system → feedback"),
    ("brug.social.problems.", "social → medical", "feedback → case system (refusals)"),
    ("brug.gp.changes.", "social → medical", "feedback → GP system / gp_notify"),
    ("brug.gp.outcomes.", "social → medical", "fhir_gateway → GP system (answers)"),
    ("brug.referrals.overdue.", "operations", "feedback timers → operators"),
    ("brug.deadletter.", "operations", "every service → operators"),
)


@dataclass(frozen=True)
class TopicFlow:
    topic: str
    direction: str
    path: str
    per_minute: list[int]

    @property
    def last_hour(self) -> int:
        return sum(self.per_minute)

    @property
    def last_minutes(self) -> int:
        return sum(self.per_minute[-5:])


@dataclass(frozen=True)
class Flows:
    topics: list[TopicFlow]
    lag: list[GroupLag]
    dead_letters: dict[tuple[str, str], int]
    webhooks: dict[str, int]
    measured_at: datetime
    problem: str = ""  # why Kafka's figures are missing, when they are

    def by_direction(self) -> list[tuple[str, list[TopicFlow]]]:
        order = list(dict.fromkeys(direction for _, direction, _ in DIRECTIONS))
        return [(d, [t for t in self.topics if t.direction == d]) for d in order]

    @property
    def parked_dead_letters(self) -> int:
        return sum(n for (state, _), n in self.dead_letters.items() if state == "parked")


def describe_topic(topic: str) -> tuple[str, str]:
    for prefix, direction, path in DIRECTIONS:
        if topic.startswith(prefix):
            return direction, path
    return "other", ""


def kafka_flows(bootstrap_servers: str) -> tuple[list[TopicFlow], list[GroupLag]]:
    rates = messages_per_minute(bootstrap_servers)
    flows = [TopicFlow(topic, *describe_topic(topic), counts) for topic, counts in rates.items()]
    return flows, consumer_lag(bootstrap_servers)


def ledger_counts(connection: Connection) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    operations = Operations(connection)
    return operations.dead_letter_counts(), operations.webhook_counts()


@dataclass
class FlowsCache:
    """Pages refresh every few seconds; Kafka is asked at most once per ``seconds``."""

    seconds: float
    _kept: tuple[float, tuple[list[TopicFlow], list[GroupLag]]] | None = field(default=None)

    async def kafka(self, bootstrap_servers: str) -> tuple[list[TopicFlow], list[GroupLag]]:
        now = time.monotonic()
        if self._kept is None or now - self._kept[0] > self.seconds:
            self._kept = (now, await asyncio.to_thread(kafka_flows, bootstrap_servers))
        return self._kept[1]


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    up: bool
    version: str = ""
    started_at: datetime | None = None
    detail: str = ""

    def uptime(self, now: datetime) -> str:
        if self.started_at is None:
            return ""
        seconds = int((now - self.started_at).total_seconds())
        hours, rest = divmod(seconds, 3600)
        return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


@dataclass(frozen=True)
class Infrastructure:
    name: str
    up: bool
    detail: str


async def service_health(name: str, metrics_url: str) -> ServiceHealth:
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            answer = await client.get(metrics_url)
        answer.raise_for_status()
    except httpx.HTTPError as error:
        return ServiceHealth(name, False, detail=f"metrics not answering: {type(error).__name__}")
    return health_from_metrics(name, answer.text)


def health_from_metrics(name: str, text: str) -> ServiceHealth:
    """Version from ``brug_build_info``, start time from the process collector."""
    version, started = "", None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "brug_build_info":
                version = sample.labels.get("version", "")
            elif sample.name == "process_start_time_seconds":
                started = datetime.fromtimestamp(sample.value, UTC)
    return ServiceHealth(name, True, version, started, "serving")


async def infrastructure_health(bootstrap_servers: str, database_url: str) -> list[Infrastructure]:
    kafka, database = await asyncio.gather(
        asyncio.to_thread(broker_health, bootstrap_servers),
        asyncio.to_thread(database_health, database_url),
    )
    detail = (
        f"{kafka.broker_count} broker(s), {kafka.topic_count} topics"
        if kafka.reachable
        else kafka.detail
    )
    return [
        Infrastructure("Kafka", kafka.reachable, detail),
        Infrastructure("PostgreSQL", database[0], database[1]),
    ]
