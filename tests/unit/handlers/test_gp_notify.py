"""The GP notify service in-process: its change handler on FastStream's in-memory broker,
as ``services/gp_notify/app.py`` wires it, against the real PostgreSQL and a GP system's
endpoint on the loopback interface.

A change notice for a GP organisation with an active Subscription is POSTed to its
endpoint, id-only; the endpoint's 2xx is the welfare organisation's receipt, written to the
outbox. An endpoint that fails is retried with backoff (a clock of the test's, no waiting)
while later changes queue behind it; once it answers, every missed notice goes out in order;
after the retry window (24 h) the Subscription is in error. No receipt for what failed. A
change handled on another partition while an earlier one is being tried waits for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import TestKafkaBroker
from sqlalchemy import Engine, text

from adapters.clients import Client, ClientKind, ClientRegistry
from adapters.ledger.repository import ReferralRow
from adapters.ledger.subscriptions import ACTIVE, ERROR, SubscriptionRow, Subscriptions
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp
from contracts.events.gp import GpResourceChanged
from contracts.fhir_systems import REFERRAL_FEEDBACK_TOPIC
from domain.backoff import Backoff
from services.gp_notify.app import GpNotify, wire
from services.gp_notify.handlers import Notifying
from services.gp_notify.handlers import notify as deliver
from services.gp_notify.retries import Retries
from services.gp_notify.settings import NotifySettings
from tests.helpers import eventually
from tests.ledger_rows import accepted_referral
from tests.unit.handlers.support import CLOUDEVENTS, outbox_rows

pytestmark = pytest.mark.integration  # the real PostgreSQL

ORGANISATION = "dynamo-amsterdam"
FHIR_BASE = "https://brug.test/fhir"


@dataclass
class Endpoint:
    """A GP system's rest-hook endpoint on 127.0.0.1: answers ``status``, keeps each POST."""

    url: str = ""
    status: int = 200
    posts: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.posts.append((dict(self.headers), json.loads(body)))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def gp() -> Client:
    """A GP system of this test's own, so no other test's Subscriptions are counted."""
    agb = f"09{uuid.uuid4().int % 10**6:06d}"
    return Client(
        client_id=f"his-test-{uuid.uuid4().hex[:8]}",
        kind=ClientKind.GP,
        organisation=agb,
        name="test GP system",
        token_sha256="0" * 64,
        allow_loopback_http=True,  # its endpoint below is http on 127.0.0.1
    )


@pytest.fixture
async def notify(handler_database: str, gp: Client, tmp_path: Path) -> AsyncIterator[GpNotify]:
    clients = tmp_path / "clients.json"
    clients.write_text(ClientRegistry(clients=[gp]).model_dump_json())
    service = wire(
        NotifySettings(
            database_url=handler_database,
            clients_path=clients,
            fhir_base_url=FHIR_BASE,
            notify_attempts=1,  # a failure is final at once: no pause between attempts
        )
    )
    yield service
    await service.endpoints.aclose()
    await service.engine.dispose()


def active_subscription(engine: Engine, gp: Client, endpoint: Endpoint) -> uuid.UUID:
    """A Subscription of ``gp``'s practice whose handshake was answered."""
    subscription_id, now = uuid.uuid4(), datetime.now(UTC)
    with engine.begin() as connection:
        store = Subscriptions(connection)
        store.create(
            subscription_id=subscription_id,
            client_id=gp.client_id,
            organisation=gp.organisation,
            topic=REFERRAL_FEEDBACK_TOPIC,
            endpoint=endpoint.url,
            headers=["Authorization: Bearer hook-secret"],
            heartbeat_seconds=None,
            resource={},
            at=now,
        )
        store.sent(subscription_id, now, activate=True)
    return subscription_id


def _subscription(engine: Engine, gp: Client, subscription_id: uuid.UUID) -> SubscriptionRow:
    with engine.connect() as connection:
        row = Subscriptions(connection).get(subscription_id, gp.organisation)
    assert row is not None
    return row


def _receipts(engine: Engine, referral_id: uuid.UUID) -> list[Any]:
    rows = outbox_rows(engine, referral_id)
    return [row for row in rows if row.event_type == FeedbackReceivedByGp.EVENT_TYPE]


async def _announce_task(notify: GpNotify, gp: Client, row: ReferralRow) -> None:
    """The change notice the feedback service publishes for the Task's current version."""
    assert row.task_id is not None
    change = GpResourceChanged(
        referral_id=row.referral_id,
        resource_type="Task",
        resource_id=row.task_id,
        version_id=row.version,
        task_id=row.task_id,
        changed_at=datetime.now(UTC),
    )
    async with TestKafkaBroker(notify.broker) as broker:
        await broker.publish(
            CloudEvent[GpResourceChanged].wrap(change, service="feedback").to_json_bytes(),
            topic=topics.gp_changes(gp.client_id),
            key=str(row.referral_id).encode(),
            headers=CLOUDEVENTS,
        )


async def test_a_change_is_posted_to_the_subscription_and_its_2xx_is_a_receipt_in_the_outbox(
    notify: GpNotify, ledger_engine: Engine, gp: Client, endpoint: Endpoint
) -> None:
    row = accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
    subscription_id = active_subscription(ledger_engine, gp, endpoint)

    await _announce_task(notify, gp, row)

    [(headers, bundle)] = endpoint.posts
    assert headers["Content-Type"] == "application/fhir+json"
    assert headers["Authorization"] == "Bearer hook-secret", "the Subscription's own header"
    focus = f"{FHIR_BASE}/Task/{row.task_id}"
    assert bundle["resourceType"] == "Bundle"
    assert [entry["fullUrl"] for entry in bundle["entry"][1:]] == [focus]
    assert all("resource" not in entry for entry in bundle["entry"][1:]), "id-only"
    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert (subscription.status, subscription.events_since_start) == (ACTIVE, 1)

    [receipt] = _receipts(ledger_engine, row.referral_id)
    assert receipt.topic == topics.social_referrals(ORGANISATION)
    event = CloudEvent[FeedbackReceivedByGp].model_validate_json(receipt.value)
    assert (event.data.resource, event.data.channel) == (
        f"Task/{row.task_id}/_history/{row.version}",
        "push",
    )


class Clock:
    """The retries' clock, moved by the test instead of waited for."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


DAY = 86400.0


def _retries(notify: GpNotify, clock: Clock) -> Retries:
    """The defaults of NotifySettings: 30 s doubling to 1 h, given up after 24 h."""
    backoff = Backoff(base_seconds=30.0, cap_seconds=3600.0, give_up_after_seconds=DAY)
    return Retries(
        notify.engine,
        notify.endpoints,
        backoff,
        poll_seconds=1.0,
        keep_events=timedelta(days=30),
        clock=clock,
    )


def _event_numbers(posts: list[tuple[dict[str, str], dict[str, Any]]]) -> list[int]:
    numbers = []
    for _, bundle in posts:
        status = bundle["entry"][0]["resource"]["parameter"]
        [event] = [p for p in status if p["name"] == "notification-event"]
        numbers.append(int(event["part"][0]["valueString"]))
    return numbers


async def test_a_failing_endpoint_is_retried_with_backoff_and_gets_every_missed_notice_in_order(
    notify: GpNotify, ledger_engine: Engine, gp: Client, endpoint: Endpoint
) -> None:
    row = accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
    subscription_id = active_subscription(ledger_engine, gp, endpoint)
    clock = Clock()
    retries = _retries(notify, clock)
    endpoint.status = 503

    await _announce_task(notify, gp, row)

    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert subscription.status == ACTIVE, "one failure is not the end"
    assert subscription.error == "endpoint answered HTTP 503 after 1 attempt(s)"
    assert subscription.retry_at is not None
    first_wait = (subscription.retry_at - clock.now).total_seconds()
    assert 25 <= first_wait <= 35, "30 s ± jitter"
    assert _receipts(ledger_engine, row.referral_id) == []

    await _announce_task(notify, gp, row)  # a later change queues behind the failed one
    assert len(endpoint.posts) == 1
    assert await retries.run_once() == 0, "not due yet"

    clock.advance(40)
    assert await retries.run_once() == 1
    assert _event_numbers(endpoint.posts) == [1, 1], "the oldest is tried first, alone"
    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert subscription.retry_attempts == 2 and subscription.retry_at is not None
    assert 50 <= (subscription.retry_at - clock.now).total_seconds() <= 70, "the wait doubled"

    endpoint.status = 200
    clock.advance(120)
    assert await retries.run_once() == 1

    assert _event_numbers(endpoint.posts) == [1, 1, 1, 2], "caught up, in order"
    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert (subscription.status, subscription.retry_at, subscription.error) == (ACTIVE, None, None)
    assert subscription.events_since_start == 2
    [receipt] = _receipts(ledger_engine, row.referral_id)  # the Task's version, once
    assert CloudEvent[FeedbackReceivedByGp].model_validate_json(receipt.value).data.channel == (
        "push"
    )

    await _announce_task(notify, gp, row)  # caught up: straight out again
    assert _event_numbers(endpoint.posts) == [1, 1, 1, 2, 3]


async def test_an_endpoint_failing_for_24_hours_puts_its_subscription_in_error(
    notify: GpNotify, ledger_engine: Engine, gp: Client, endpoint: Endpoint
) -> None:
    row = accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
    subscription_id = active_subscription(ledger_engine, gp, endpoint)
    clock = Clock()
    retries = _retries(notify, clock)
    endpoint.status = 503
    await _announce_task(notify, gp, row)

    clock.advance(DAY - 60)
    await retries.run_once()
    assert _subscription(ledger_engine, gp, subscription_id).status == ACTIVE, "still retrying"
    clock.advance(120)
    await retries.run_once()

    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert subscription.status == ERROR
    assert subscription.error == (
        "endpoint answered HTTP 503 after 1 attempt(s); retried for 24 h, given up"
    )
    assert len(endpoint.posts) == 3
    assert _receipts(ledger_engine, row.referral_id) == []
    clock.advance(DAY)
    assert await retries.run_once() == 0, "an error subscription is not tried again"


class RecoveringEndpoint(Endpoint):
    """Down for the first POST, which it holds until ``answer_first`` (then
    ``first_status``, 503); every later POST is answered 200: the endpoint came back while
    the first was being tried."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.first_held = threading.Event()
        self.answer_first = threading.Event()
        self.first_status = 503


@pytest.fixture
def recovering() -> Iterator[RecoveringEndpoint]:
    state = RecoveringEndpoint("")

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            first = not state.posts
            state.posts.append((dict(self.headers), body))
            if first:
                state.first_held.set()
                state.answer_first.wait(timeout=10)
            self.send_response(state.first_status if first else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    state.answer_first.set()
    server.shutdown()
    server.server_close()
    thread.join()


def _waiting_on_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return bool(waiting)


def _change_of(row: ReferralRow) -> GpResourceChanged:
    assert row.task_id is not None
    return GpResourceChanged(
        referral_id=row.referral_id,
        resource_type="Task",
        resource_id=row.task_id,
        version_id=row.version,
        task_id=row.task_id,
        changed_at=datetime.now(UTC),
    )


async def test_a_later_change_waits_while_an_earlier_one_is_tried_so_they_arrive_in_order(
    notify: GpNotify, ledger_engine: Engine, gp: Client, recovering: RecoveringEndpoint
) -> None:
    """Two referrals' changes on two partitions, handled at once (BRUG_NOTIFY_WORKERS): the
    second must not be POSTed while the first is still being tried, or an endpoint that
    comes back in between gets 2 before 1 (events 3, 1, 2 seen in the field)."""
    first = accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
    second = accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
    subscription_id = active_subscription(ledger_engine, gp, recovering)
    clock = Clock()
    retries = _retries(notify, clock)
    notifying = Notifying(
        engine=notify.engine,
        endpoints=notify.endpoints,
        gp_organisations={gp.client_id: gp.organisation},
        backoff=Backoff(base_seconds=30.0, cap_seconds=3600.0, give_up_after_seconds=DAY),
    )

    earlier = asyncio.create_task(deliver(notifying, gp.client_id, _change_of(first)))
    await asyncio.to_thread(recovering.first_held.wait, 10)  # event 1 is being tried
    later = asyncio.create_task(deliver(notifying, gp.client_id, _change_of(second)))
    # Event 2 is either POSTed (the defect) or waits for event 1's outcome (the fix): in
    # this process queued for the next batch, from another replica on the row lock.
    await asyncio.to_thread(
        eventually,
        lambda: (
            len(recovering.posts) > 1
            or notifying.batches.waiting(gp.organisation) > 0
            or _waiting_on_a_lock(ledger_engine)
        ),
        "the second change sent or waiting",
        10,
    )
    recovering.answer_first.set()  # event 1 fails; the endpoint is back for everything else
    await asyncio.gather(earlier, later)

    clock.advance(40)
    while await retries.run_once():
        clock.advance(40)

    numbers = _event_numbers(recovering.posts)
    assert numbers == sorted(numbers) == [1, 1, 2], "event 2 never before event 1"
    subscription = _subscription(ledger_engine, gp, subscription_id)
    assert (subscription.status, subscription.retry_at, subscription.events_since_start) == (
        ACTIVE,
        None,
        2,
    )


async def test_changes_arriving_while_one_is_sent_go_out_next_in_one_transaction_each_on_its_own(
    notify: GpNotify, ledger_engine: Engine, gp: Client, recovering: RecoveringEndpoint
) -> None:
    """Other partitions' changes for the practice, handled while the first is being POSTed,
    are counted, sent and recorded together next: one notification each, numbered in the
    order they came, each a receipt; every handler returns once its own change is done."""
    recovering.first_status = 200
    rows = [
        accepted_referral(ledger_engine, client_id=gp.client_id, requester_agb=gp.organisation)
        for _ in range(4)
    ]
    subscription_id = active_subscription(ledger_engine, gp, recovering)
    notifying = Notifying(
        engine=notify.engine,
        endpoints=notify.endpoints,
        gp_organisations={gp.client_id: gp.organisation},
        backoff=Backoff(base_seconds=30.0, cap_seconds=3600.0, give_up_after_seconds=DAY),
    )

    first = asyncio.create_task(deliver(notifying, gp.client_id, _change_of(rows[0])))
    await asyncio.to_thread(recovering.first_held.wait, 10)
    later = [
        asyncio.create_task(deliver(notifying, gp.client_id, _change_of(row))) for row in rows[1:]
    ]
    await asyncio.to_thread(
        eventually,
        lambda: notifying.batches.waiting(gp.organisation) == 3,
        "the later changes queued for the next batch",
        10,
    )
    assert not any(task.done() for task in later)
    recovering.answer_first.set()
    await asyncio.gather(first, *later)

    assert _event_numbers(recovering.posts) == [1, 2, 3, 4]
    focuses = [bundle["entry"][1]["fullUrl"] for _, bundle in recovering.posts]
    assert focuses == [f"{FHIR_BASE}/Task/{row.task_id}" for row in rows]
    assert _subscription(ledger_engine, gp, subscription_id).events_since_start == 4
    for row in rows:
        assert len(_receipts(ledger_engine, row.referral_id)) == 1
