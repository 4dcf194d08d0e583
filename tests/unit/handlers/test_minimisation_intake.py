"""Minimisation as an allow-list, through the real handlers: random Bundles with seeded
markers (``tests/unit/test_minimisation.py``'s strategy: Conditions, reason codes and their
text, Observations, MedicationStatements, extensions) go into the FHIR gateway in-process,
by ``POST /fhir`` or on the GP system's topic; the router routes the ``ReferralSubmitted``
the gateway put in the outbox; the assigned organisation fetches the details from the
social gateway. No marker may be in:

- the details the organisation gets, and the answer on the GP's outcome topic;
- an event: every outbox row of the referral (``ReferralSubmitted``, ``ReferralCreated``);
- a log line: every line the three services render (JSON, as in production) while handling,
  at DEBUG;
- a span: every span they finish, as the span file and OTLP exporters write it;
- the ledger: a row of any table (the Bundle itself is kept nowhere).

The gateway and the router run on FastStream's in-memory broker, the real PostgreSQL (a
database of its own) behind. Each case is also checked to have left lines and spans about
its referral, so an empty capture cannot pass for a clean one.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Engine, LargeBinary, Text, cast, func, literal, or_, select

from adapters.ledger.tables import metadata
from adapters.runtime.tracing import span_record
from contracts import topics
from deploy.demo import SAMPLE_GP_CLIENT, SAMPLE_ORGANISATION
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app as create_gateway
from services.fhir_gateway.settings import GatewaySettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from services.social_gateway.app import create_app as create_social
from services.social_gateway.settings import SocialGatewaySettings
from tests.conftest import free_port
from tests.unit.handlers.support import CLOUDEVENTS, outbox_rows
from tests.unit.test_minimisation import Seeds, marked_bundles

pytestmark = pytest.mark.integration  # the real PostgreSQL

TOKENS = dev_tokens()
GP = {"Authorization": f"Bearer {TOKENS[SAMPLE_GP_CLIENT]}"}
ORGANISATION = {"Authorization": f"Bearer {TOKENS['case-dynamo-amsterdam']}"}
FHIR_JSON = "application/fhir+json"


@dataclass
class Services:
    gateway: FastAPI
    gateway_broker: KafkaBroker
    router_broker: KafkaBroker
    social: FastAPI
    outcomes: list[bytes]


class Rendered(logging.Handler):
    """Every log line as the services' handler renders it (their formatter, JSON)."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(formatter)
        self.lines = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.write(self.format(record) + "\n")

    def take(self) -> str:
        taken = self.lines.getvalue()
        self.lines = io.StringIO()
        return taken


def _no_kafka() -> str:
    return f"127.0.0.1:{free_port()}"  # nothing listens: only the in-memory broker is used


@pytest.fixture(scope="module")
async def services(handler_database: str) -> AsyncIterator[Services]:
    common = {"database_url": handler_database, "log_level": "DEBUG"}
    gateway = create_gateway(GatewaySettings(kafka_bootstrap_servers=_no_kafka(), **common))
    router = create_router(RouterSettings(router_workers=1, **common))
    social = create_social(SocialGatewaySettings(kafka_bootstrap_servers=_no_kafka(), **common))
    outcomes: list[bytes] = []

    @gateway.state.broker.subscriber(topics.gp_outcomes(SAMPLE_GP_CLIENT))
    async def catch(body: Any, message: KafkaMessage) -> None:
        outcomes.append(message.body)

    assert isinstance(router.broker, KafkaBroker)
    async with (
        TestKafkaBroker(gateway.state.broker) as gateway_broker,
        TestKafkaBroker(router.broker) as router_broker,
        TestKafkaBroker(social.state.broker),
    ):
        yield Services(gateway, gateway_broker, router_broker, social, outcomes)
    await router.stop()
    await gateway.state.fhir_edge.engine.dispose()
    await social.state.social_edge.engine.dispose()


@pytest.fixture(scope="module")
def rendered(services: Services) -> Iterator[Rendered]:
    """Log lines from now on (after the apps configured logging: each replaces the root's
    handler), rendered by the services' own formatter."""
    root = logging.getLogger()
    formatter = root.handlers[0].formatter
    assert formatter is not None
    handler = Rendered(formatter)
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


@pytest.fixture(scope="module")
def finished(services: Services) -> Iterator[InMemorySpanExporter]:
    """The spans the process finishes from now on (the services' provider)."""
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "make_broker configured tracing"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays on the provider, storing nothing


async def _submit(services: Services, bundle: dict[str, Any], channel: str) -> uuid.UUID:
    """The referral the gateway accepted, by HTTP or on the GP system's topic."""
    body = json.dumps(bundle, ensure_ascii=False).encode()
    if channel == "kafka":
        services.outcomes.clear()
        topic = topics.gp_referrals(SAMPLE_GP_CLIENT)
        await services.gateway_broker.publish(body, topic, key=str(uuid.uuid4()).encode())
        [answer] = [json.loads(outcome) for outcome in services.outcomes]
    else:
        transport = httpx.ASGITransport(app=services.gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            reply = await client.post(
                "/fhir", content=body, headers=GP | {"Content-Type": FHIR_JSON}
            )
        assert reply.status_code == 201, reply.text
        answer = reply.json()
    assert answer["resourceType"] == "Bundle", answer
    location = next(
        e["response"]["location"]
        for e in answer["entry"]
        if e["response"].get("location", "").startswith("ServiceRequest/")
    )
    return uuid.UUID(location.split("/")[1])


async def _route(services: Services, engine: Engine, referral_id: uuid.UUID) -> None:
    """The relay's part: the gateway's outbox row, as a record on the submitted topic."""
    [submitted] = outbox_rows(engine, referral_id)
    await services.router_broker.publish(
        submitted.value,
        topics.REFERRALS_SUBMITTED,
        key=str(referral_id).encode(),
        headers=CLOUDEVENTS | dict(submitted.headers),
    )


async def _details(services: Services, referral_id: uuid.UUID) -> str:
    transport = httpx.ASGITransport(app=services.social)
    async with httpx.AsyncClient(transport=transport, base_url="http://social") as client:
        reply = await client.get(f"/social/v1/referrals/{referral_id}", headers=ORGANISATION)
    assert reply.status_code == 200, reply.text
    return reply.text


def _in_the_ledger(engine: Engine, markers: list[str]) -> list[str]:
    """The tables a row of which holds one of the markers in any column (bytes as text)."""
    if not markers:
        return []
    pattern = "|".join(re.escape(marker) for marker in markers)
    found = []
    with engine.connect() as connection:
        for name, table in metadata.tables.items():
            columns = [
                func.encode(c, "escape") if isinstance(c.type, LargeBinary) else cast(c, Text)
                for c in table.columns
            ]
            matching = or_(*(column.regexp_match(pattern) for column in columns))
            if connection.execute(select(literal(1)).where(matching).limit(1)).first():
                found.append(name)
    return found


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(example=marked_bundles(), channel=st.sampled_from(["http", "kafka"]))
async def test_no_seeded_marker_reaches_details_events_logs_spans_or_the_ledger(
    services: Services,
    rendered: Rendered,
    finished: InMemorySpanExporter,
    ledger_engine: Engine,
    example: tuple[dict[str, Any], Seeds],
    channel: str,
) -> None:
    bundle, seeds = example
    rendered.take()
    finished.clear()

    referral_id = await _submit(services, bundle, channel)
    await _route(services, ledger_engine, referral_id)
    details = await _details(services, referral_id)

    queued = outbox_rows(ledger_engine, referral_id)
    assert [row.topic for row in queued] == [
        topics.REFERRALS_SUBMITTED,
        topics.social_referrals(SAMPLE_ORGANISATION),
    ], "ReferralSubmitted, then the router's ReferralCreated"
    events = [row.value.decode() for row in queued]
    lines = rendered.take()
    spans = [span_record(span) for span in finished.get_finished_spans()]
    assert str(referral_id) in lines, "the services logged the referral (by id)"
    assert any(s["attributes"].get("brug.referral_id") == str(referral_id) for s in spans)
    written = {
        "the details": details,
        "the GP's outcome": json.dumps(services.outcomes, default=bytes.decode),
        "the outbox": json.dumps(events, ensure_ascii=False),
        "a log line": lines,
        "a span": json.dumps(spans, ensure_ascii=False),
    }
    for where, content in written.items():
        leaked = [marker for marker in seeds.markers if marker in content]
        assert leaked == [], f"{where} holds {leaked}"
    assert _in_the_ledger(ledger_engine, seeds.markers) == []
    assert {"referrals", "outbox"} <= set(_in_the_ledger(ledger_engine, [str(referral_id)]))
