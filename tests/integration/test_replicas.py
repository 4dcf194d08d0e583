"""Every background loop run as two replicas side by side, against the real PostgreSQL:
each replica has its own engine (its own connections, as two processes would), both run
their rounds at the same time, and every item is done exactly once, none dropped.

- webhook delivery: each queued delivery POSTed once (``FOR UPDATE SKIP LOCKED``);
- gp_notify's upkeep: each handshake and each heartbeat sent once (the same);
- feedback's timers: each missed service level raised once (the conditional stamp).

The outbox relay and the GP-change announcements are tested with their own code.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.database import make_async_engine, make_engine
from adapters.directory import load_directory
from adapters.ledger.repository import Ledger
from adapters.ledger.subscriptions import ACTIVE, Subscriptions
from adapters.ledger.tables import outbox, referrals, subscriptions, webhook_deliveries
from adapters.ledger.webhooks import DELIVERED, WebhookQueue
from contracts.events import ReferralOverdue
from contracts.fhir_systems import REFERRAL_FEEDBACK_TOPIC
from deploy.devstack.stack import DEFAULT_DIRECTORY, DEV_WEBHOOK_SECRETS
from domain.backoff import Backoff
from services.feedback.timers import TimerWatch
from services.gp_notify.endpoints import Endpoints
from services.gp_notify.upkeep import Upkeep
from services.webhook_delivery.delivery import WebhookDelivery
from services.webhook_delivery.settings import WebhookSettings
from tests.ledger_rows import accepted_referral

pytestmark = pytest.mark.integration

WEBHOOK_ORGANISATION = "xtra-zoetermeer"
ITEMS = 60  # three claims' worth of webhook deliveries (20 a claim), per test
ROUNDS_WITHIN_SECONDS = 60.0


@dataclass
class Receiver:
    """An endpoint on 127.0.0.1 keeping the headers and body of every POST."""

    url: str = ""
    posts: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # both replicas POST a whole claim at once (the default is 5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.posts.append((dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = _Server(("127.0.0.1", 0), Hook)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def ledger(own_database: str) -> Iterator[Engine]:
    engine = make_engine(own_database)
    yield engine
    engine.dispose()


@pytest.fixture
async def replica_engines(own_database: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    engines = (make_async_engine(own_database), make_async_engine(own_database))
    yield engines
    for engine in engines:
        await engine.dispose()


async def until(done: Callable[[], bool], *rounds: Callable[[], Awaitable[Any]]) -> None:
    """Run each replica's rounds concurrently, again and again, until ``done()`` (bounded)."""

    async def replica(one_round: Callable[[], Awaitable[Any]]) -> None:
        deadline = time.monotonic() + ROUNDS_WITHIN_SECONDS
        while not done():
            assert time.monotonic() < deadline, "the replicas did not finish the work"
            await one_round()
            await asyncio.sleep(0.02)  # the loops' poll interval, shortened

    await asyncio.gather(*(replica(one_round) for one_round in rounds))


async def test_two_webhook_delivery_replicas_post_each_delivery_exactly_once(
    ledger: Engine,
    replica_engines: tuple[AsyncEngine, AsyncEngine],
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in DEV_WEBHOOK_SECRETS.items():
        monkeypatch.setenv(name, value)
    sample = {o.id: o for o in load_directory(DEFAULT_DIRECTORY).organisations}
    organisation = sample[WEBHOOK_ORGANISATION].model_copy(
        update={"webhook_url": receiver.url, "allow_loopback_http": True}
    )
    now = datetime.now(UTC)
    event_ids = []
    with ledger.begin() as connection:
        queue = WebhookQueue(connection)
        for _ in range(ITEMS):
            row = accepted_referral(ledger, organisation=WEBHOOK_ORGANISATION)
            event_id = str(uuid.uuid4())
            event = {"id": event_id, "subject": str(row.referral_id)}
            queue.enqueue(event_id, row.referral_id, WEBHOOK_ORGANISATION, event, now)
            event_ids.append(event_id)
    settings = WebhookSettings(database_url="postgresql://unused")
    replicas = [
        WebhookDelivery(engine, {organisation.id: organisation}, settings, dead_letters=None)  # type: ignore[arg-type]
        for engine in replica_engines
    ]

    def all_delivered() -> bool:
        with ledger.connect() as connection:
            states = connection.execute(
                select(webhook_deliveries.c.state, webhook_deliveries.c.attempts).where(
                    webhook_deliveries.c.event_id.in_(event_ids)
                )
            ).all()
        return all(state == DELIVERED for state, _ in states)

    async with httpx.AsyncClient(timeout=5) as http_a, httpx.AsyncClient(timeout=5) as http_b:
        await until(
            all_delivered,
            lambda: replicas[0].deliver_due(http_a),
            lambda: replicas[1].deliver_due(http_b),
        )

    posted = Counter(headers["webhook-id"] for headers, _ in receiver.posts)
    assert set(posted) == set(event_ids), "every delivery arrived"
    assert max(posted.values()) == 1, "none arrived twice"
    with ledger.connect() as connection:
        attempts = connection.execute(
            select(webhook_deliveries.c.attempts).where(
                webhook_deliveries.c.event_id.in_(event_ids)
            )
        ).scalars()
        assert set(attempts) == {1}


async def test_two_upkeep_replicas_send_each_handshake_and_heartbeat_exactly_once(
    ledger: Engine, replica_engines: tuple[AsyncEngine, AsyncEngine], receiver: Receiver
) -> None:
    client_id = f"his-test-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    created = [uuid.uuid4() for _ in range(ITEMS)]
    with ledger.begin() as connection:
        for subscription_id in created:
            Subscriptions(connection).create(
                subscription_id=subscription_id,
                client_id=client_id,
                organisation="09000001",
                topic=REFERRAL_FEEDBACK_TOPIC,
                endpoint=receiver.url,
                headers=[],
                heartbeat_seconds=60,
                resource={},
                at=now,
            )
    http = [httpx.AsyncClient(timeout=5) for _ in replica_engines]
    replicas = [
        Upkeep(
            engine,
            Endpoints(
                client,
                fhir_base_url="https://brug.test/fhir",
                attempts=1,
                retry_seconds=0,
                loopback_allowed=[client_id],
            ),
            Backoff(base_seconds=30, cap_seconds=3600, give_up_after_seconds=86400),
            poll_seconds=1,
        )
        for engine, client in zip(replica_engines, http, strict=True)
    ]

    def statuses() -> dict[uuid.UUID, tuple[str, datetime | None]]:
        with ledger.connect() as connection:
            rows = connection.execute(
                select(
                    subscriptions.c.subscription_id,
                    subscriptions.c.status,
                    subscriptions.c.last_sent_at,
                ).where(subscriptions.c.subscription_id.in_(created))
            ).all()
        return {r.subscription_id: (r.status, r.last_sent_at) for r in rows}

    def kinds() -> Counter[tuple[str, str]]:
        with receiver.lock:
            return Counter((_subscription_of(body), _kind_of(body)) for _, body in receiver.posts)

    try:
        await until(
            lambda: all(status == ACTIVE for status, _ in statuses().values()),
            replicas[0].handshakes,
            replicas[1].handshakes,
        )
        # A heartbeat period passed for every one of them.
        with ledger.begin() as connection:
            connection.execute(
                update(subscriptions)
                .where(subscriptions.c.subscription_id.in_(created))
                .values(last_sent_at=now - timedelta(minutes=5))
            )
        await until(
            lambda: all(sent and sent > now for _, sent in statuses().values()),
            replicas[0].heartbeats,
            replicas[1].heartbeats,
        )
    finally:
        for client in http:
            await client.aclose()

    sent = kinds()
    expected = {(str(s), kind) for s in created for kind in ("handshake", "heartbeat")}
    assert set(sent) == expected, "each subscription got its handshake and its heartbeat"
    assert max(sent.values()) == 1, "none got either twice"


def _parameter(bundle: dict[str, Any], name: str) -> dict[str, Any]:
    """A parameter of the notification's SubscriptionStatus (its first entry)."""
    status = bundle["entry"][0]["resource"]
    return next(p for p in status["parameter"] if p["name"] == name)


def _subscription_of(bundle: dict[str, Any]) -> str:
    return str(_parameter(bundle, "subscription")["valueReference"]["reference"]).rsplit("/")[-1]


def _kind_of(bundle: dict[str, Any]) -> str:
    return str(_parameter(bundle, "type")["valueCode"])


async def test_two_timer_replicas_raise_each_missed_service_level_exactly_once(
    ledger: Engine, replica_engines: tuple[AsyncEngine, AsyncEngine]
) -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    overdue = []
    with ledger.begin() as connection:
        for _ in range(ITEMS):
            row = accepted_referral(ledger)
            Ledger(connection).set_due_dates(row.referral_id, past, past)
            overdue.append(row.referral_id)
        connection.execute(
            update(referrals)
            .where(referrals.c.referral_id.in_(overdue))
            .values(routed_event_published_at=past)
        )
    replicas = [TimerWatch(engine, poll_seconds=1) for engine in replica_engines]

    def raised() -> list[uuid.UUID]:
        with ledger.connect() as connection:
            return list(
                connection.execute(
                    select(outbox.c.referral_id).where(
                        (outbox.c.event_type == ReferralOverdue.EVENT_TYPE)
                        & outbox.c.referral_id.in_(overdue)
                    )
                ).scalars()
            )

    await until(
        lambda: len(set(raised())) == len(overdue),
        replicas[0].raise_overdue_timers,
        replicas[1].raise_overdue_timers,
    )
    counts = Counter(raised())
    assert set(counts) == set(overdue)
    assert max(counts.values()) == 1, "no timer raised twice"
