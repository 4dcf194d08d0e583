"""FHIR Subscriptions (R4 Backport IG) end to end: a GP system subscribes its endpoint,
gets the handshake, heartbeats and id-only notifications in order; a failing endpoint is
retried with backoff and gets what it missed in order once it answers, or goes to ``error``
after the retry window (the stack runs a window of seconds, BRUG_NOTIFY_GIVE_UP_SECONDS);
``$events`` returns the notifications sent; another practice cannot see the Subscription;
DELETE stops notifications."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import FeedbackReceivedByGp
from contracts.events.gp import GpResourceChanged
from contracts.events.status import ReferralStatusReported, WelfareStatus
from contracts.fhir_systems import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    REFERRAL_FEEDBACK_TOPIC,
)
from deploy.devstack.stack import DevStack
from domain.status_machine import TASK_VIEW
from services.feedback.apply import feedback_communication_id
from tests.conftest import free_port
from tests.e2e.conftest import (
    GP_LELYSTAD,
    WELFARE_AMSTERDAM,
    new_bundle,
    referral_id_of,
    task_of,
)
from tests.helpers import eventually, produce, wait_for_record

pytestmark = pytest.mark.integration

GP_CLIENT = "his-amsterdam-centrum"  # deploy/clients/dev.json: AGB 01999001
NOTIFY_ATTEMPTS = 3  # NotifySettings' quick attempts per notification
HIS_SECRET = "Bearer his-endpoint-secret"


class GpEndpoint:
    """The GP system's rest-hook endpoints, one path per subscription; fails on demand."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.failing: set[str] = set()
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with endpoint.lock:
                    failing = name in endpoint.failing
                    endpoint.received.setdefault(name, []).append(
                        {
                            "body": body,
                            "content_type": self.headers["Content-Type"],
                            "authorization": self.headers["Authorization"],
                            "answered": 500 if failing else 200,
                        }
                    )
                self.send_response(500 if failing else 200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/his/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def new_path(self) -> tuple[str, str]:
        name = uuid.uuid4().hex
        return name, f"{self.base}/{name}"

    def notifications(self, name: str, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            found = list(self.received.get(name, []))
        return [n for n in found if kind is None or _params(n["body"])["type"]["valueCode"] == kind]


@pytest.fixture(autouse=True)
def _service_log_on_failure(stack: DevStack) -> Iterator[None]:
    """A failing test shows the end of gp_notify's log (ids only), to see why."""
    log = stack.service_process("gp_notify").log_file
    start = log.stat().st_size if log.exists() else 0
    yield
    if log.exists():  # pytest shows captured output only for a failing test
        with log.open("rb") as file:
            file.seek(start)
            print("gp_notify log:\n" + file.read()[-6000:].decode(errors="replace"))


@pytest.fixture(scope="module")
def endpoint() -> Iterator[GpEndpoint]:
    receiver = GpEndpoint()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def subscribe(gp: httpx.Client, endpoint: GpEndpoint) -> Iterator[Callable[..., tuple[str, str]]]:
    """POST a Subscription; (its id, the endpoint path's name). Deleted after the test."""
    made: list[str] = []

    def _subscribe(heartbeat: int | None = None, failing: bool = False) -> tuple[str, str]:
        name, url = endpoint.new_path()
        if failing:
            endpoint.failing.add(name)
        reply = gp.post("/Subscription", json=subscription(url, heartbeat))
        assert reply.status_code == 201, reply.text
        created = reply.json()
        assert created["status"] == "requested"
        assert reply.headers["Location"].endswith(f"/Subscription/{created['id']}")
        made.append(created["id"])
        return created["id"], name

    yield _subscribe
    for subscription_id in made:
        gp.delete(f"/Subscription/{subscription_id}")


def subscription(url: str, heartbeat: int | None = None) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": url,
        "payload": "application/fhir+json",
        "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        "header": [f"Authorization: {HIS_SECRET}"],
    }
    if heartbeat is not None:
        channel["extension"] = [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": heartbeat}]
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "Feedback on our referrals",
        "criteria": REFERRAL_FEEDBACK_TOPIC,
        "channel": channel,
    }


def _params(resource: dict[str, Any]) -> dict[str, Any]:
    if resource.get("resourceType") == "Bundle":
        resource = resource["entry"][0]["resource"]
    return {p["name"]: p for p in resource["parameter"]}


def _status(gp: httpx.Client, subscription_id: str) -> dict[str, Any]:
    reply = gp.get(f"/Subscription/{subscription_id}/$status")
    assert reply.status_code == 200, reply.text
    assert reply.json()["type"] == "searchset"
    return _params(reply.json())


def _status_is(gp: httpx.Client, subscription_id: str, status: str) -> dict[str, Any]:
    return eventually(  # type: ignore[no-any-return]
        lambda: (p := _status(gp, subscription_id))["status"]["valueCode"] == status and p,
        f"Subscription/{subscription_id} becoming {status}",
    )


def _change(
    kafka: str,
    referral_id: str,
    resource_type: str,
    resource_id: str,
    version: int,
    task: str,
    partition: int | None = None,
) -> None:
    change = GpResourceChanged(
        referral_id=uuid.UUID(referral_id),
        resource_type=resource_type,  # type: ignore[arg-type]
        resource_id=uuid.UUID(resource_id),
        version_id=version,
        task_id=uuid.UUID(task),
        changed_at=datetime.now(UTC),
    )
    event = CloudEvent[GpResourceChanged].wrap(change, service="feedback")
    produce(
        kafka,
        topics.gp_changes(GP_CLIENT),
        event.to_json_bytes(),
        referral_id.encode(),
        partition=partition,
    )


def _referral(gp: httpx.Client) -> tuple[str, str]:
    reply = gp.post("", json=new_bundle())
    assert reply.status_code in (200, 201), reply.text
    task = task_of(reply)
    return referral_id_of(task), task["id"]


def _events(notifications: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(event-number, events-since-subscription-start, focus) per event notification."""
    found = []
    for n in notifications:
        params = _params(n["body"])
        parts = {p["name"]: p for p in params["notification-event"]["part"]}
        found.append(
            (
                int(parts["event-number"]["valueString"]),
                int(params["events-since-subscription-start"]["valueString"]),
                parts["focus"]["valueReference"]["reference"],
            )
        )
    return found


def test_handshake_then_id_only_notifications_in_order(
    gp: httpx.Client,
    stack: DevStack,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    subscription_id, name = subscribe()
    read = gp.get(f"/Subscription/{subscription_id}")
    assert read.status_code == 200
    assert read.json()["criteria"] == REFERRAL_FEEDBACK_TOPIC
    assert HIS_SECRET not in read.text  # header values are not echoed

    handshake = eventually(lambda: endpoint.notifications(name, "handshake"), "the handshake")[0]
    assert handshake["content_type"] == "application/fhir+json"
    assert handshake["authorization"] == HIS_SECRET
    assert handshake["body"]["type"] == "history"
    _status_is(gp, subscription_id, "active")

    referral_id, task_id = _referral(gp)
    communication_id = str(uuid.uuid4())
    _change(kafka_topics, referral_id, "Task", task_id, 2, task_id)
    _change(kafka_topics, referral_id, "Task", task_id, 3, task_id)
    _change(kafka_topics, referral_id, "Communication", communication_id, 1, task_id)

    communication = f"{stack.fhir_base_url}/Communication/{communication_id}"
    task = f"{stack.fhir_base_url}/Task/{task_id}"

    def all_three() -> list[tuple[int, int, str]]:
        events = _events(endpoint.notifications(name, "event-notification"))
        return events if any(focus == communication for *_, focus in events) else []

    events = eventually(all_three, "three notifications")
    # Numbered from 1 without gaps, the counter matching, in the order the changes were made.
    assert [number for number, _, _ in events] == list(range(1, len(events) + 1))
    assert all(number == since for number, since, _ in events)
    mine = [focus for *_, focus in events if focus in {task, communication}]
    assert mine == [task, task, communication]
    for notification in endpoint.notifications(name, "event-notification"):
        entries = notification["body"]["entry"]
        assert all("resource" not in e for e in entries[1:])  # id-only: no content
    # The count commits once the endpoint answered (the POST goes out under the
    # subscription's lock), so the status may lag the last notification a moment.
    counted = eventually(
        lambda: (
            int(_status(gp, subscription_id)["events-since-subscription-start"]["valueString"])
            == len(events)
        ),
        "the status counts every notification",
    )
    assert counted


def test_heartbeats_arrive_when_nothing_happens(
    gp: httpx.Client, endpoint: GpEndpoint, subscribe: Callable[..., tuple[str, str]]
) -> None:
    subscription_id, name = subscribe(heartbeat=1)
    _status_is(gp, subscription_id, "active")
    heartbeats = eventually(
        lambda: len(found := endpoint.notifications(name, "heartbeat")) >= 2 and found,
        "two heartbeats",
    )
    assert _params(heartbeats[0]["body"])["status"]["valueCode"] == "active"


def test_another_practice_cannot_see_the_subscription(
    stack: DevStack, subscribe: Callable[..., tuple[str, str]]
) -> None:
    subscription_id, _ = subscribe()
    with httpx.Client(
        base_url=stack.fhir_base_url, headers={"Authorization": f"Bearer {GP_LELYSTAD}"}
    ) as lelystad:
        for reply in (
            lelystad.get(f"/Subscription/{subscription_id}"),
            lelystad.get(f"/Subscription/{subscription_id}/$status"),
            lelystad.delete(f"/Subscription/{subscription_id}"),
        ):
            assert reply.status_code == 404
            assert reply.json()["resourceType"] == "OperationOutcome"


def test_unsupported_subscriptions_are_refused(gp: httpx.Client, endpoint: GpEndpoint) -> None:
    _, url = endpoint.new_path()
    full = subscription(url)
    full["channel"]["_payload"]["extension"][0]["valueCode"] = "full-resource"
    wrong_topic = subscription(url) | {"criteria": "Task?status=completed"}
    for body in (full, wrong_topic):
        reply = gp.post("/Subscription", json=body)
        assert reply.status_code == 422
        assert reply.json()["resourceType"] == "OperationOutcome"


def test_an_endpoint_failing_past_the_retry_window_puts_the_subscription_in_error(
    gp: httpx.Client,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    subscription_id, name = subscribe()
    _status_is(gp, subscription_id, "active")
    endpoint.failing.add(name)
    referral_id, task_id = _referral(gp)
    _change(kafka_topics, referral_id, "Task", task_id, 2, task_id)
    status = _status_is(gp, subscription_id, "error")
    assert "HTTP 500" in status["error"]["valueCodeableConcept"]["text"]
    assert "given up" in status["error"]["valueCodeableConcept"]["text"]
    tried = endpoint.notifications(name, "event-notification")
    assert len(tried) > NOTIFY_ATTEMPTS, "retried after the quick attempts"
    assert {_events([n])[0][0] for n in tried} == {1}, "the same event each time"


def test_once_the_endpoint_is_back_it_gets_the_notices_in_event_number_order(
    gp: httpx.Client,
    stack: DevStack,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    """Three referrals' changes on three partitions, handled at once: the endpoint is down
    for the first tries and back before the others are sent. None may overtake an earlier
    one being retried (what it takes, first deliveries, in event-number order)."""
    subscription_id, name = subscribe()
    _status_is(gp, subscription_id, "active")
    made = [_referral(gp) for _ in range(3)]
    tasks = {f"{stack.fhir_base_url}/Task/{task_id}" for _, task_id in made}
    endpoint.failing.add(name)
    for partition, (referral_id, task_id) in enumerate(made):
        _change(kafka_topics, referral_id, "Task", task_id, 50, task_id, partition=partition)

    def answered(code: int) -> list[tuple[int, int, str]]:
        notices = endpoint.notifications(name, "event-notification")
        return _events([n for n in notices if n["answered"] == code])

    eventually(lambda: answered(500), "a notification tried while the endpoint is down", 10)
    endpoint.failing.discard(name)  # back, while the first is still being tried
    taken = eventually(
        lambda: (found := answered(200)) and tasks <= {focus for *_, focus in found} and found,
        "the three changes taken",
        10,
    )

    numbers = list(dict.fromkeys(number for number, _, _ in taken))  # first deliveries
    assert numbers == sorted(numbers), f"overtaken: {numbers}"
    assert _status(gp, subscription_id)["status"]["valueCode"] == "active"


def test_events_returns_the_notifications_sent_so_a_gp_system_recovers_missed_ones(
    gp: httpx.Client,
    stack: DevStack,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    subscription_id, name = subscribe()
    _status_is(gp, subscription_id, "active")
    referral_id, task_id = _referral(gp)
    communication_id = str(uuid.uuid4())
    _change(kafka_topics, referral_id, "Task", task_id, 2, task_id)
    _change(kafka_topics, referral_id, "Communication", communication_id, 1, task_id)
    eventually(
        lambda: len(endpoint.notifications(name, "event-notification")) >= 2, "two notifications"
    )

    reply = gp.get(
        f"/Subscription/{subscription_id}/$events",
        params={"eventsSinceNumber": "2", "eventsUntilNumber": "2"},
    )
    everything = gp.get(f"/Subscription/{subscription_id}/$events")

    assert reply.status_code == 200, reply.text
    bundle = reply.json()
    assert bundle["type"] == "history"
    status = _params(bundle)
    assert status["type"]["valueCode"] == "query-event"
    assert status["events-since-subscription-start"]["valueString"] == "2"
    communication = f"{stack.fhir_base_url}/Communication/{communication_id}"
    assert _events([{"body": bundle}]) == [(2, 2, communication)]
    assert [e["fullUrl"] for e in bundle["entry"][1:]] == [communication]
    assert all("resource" not in e for e in bundle["entry"][1:]), "id-only"
    parts = [p["part"] for p in _params(everything.json()).values() if "part" in p]
    assert everything.status_code == 200 and len(everything.json()["entry"]) == 3
    assert parts, "the notification events are listed"
    with httpx.Client(
        base_url=stack.fhir_base_url, headers={"Authorization": f"Bearer {GP_LELYSTAD}"}
    ) as lelystad:
        assert lelystad.get(f"/Subscription/{subscription_id}/$events").status_code == 404
    bad = gp.get(f"/Subscription/{subscription_id}/$events", params={"eventsSinceNumber": "x"})
    assert bad.status_code == 400 and bad.json()["resourceType"] == "OperationOutcome"


def test_a_failed_handshake_puts_the_subscription_in_error(
    gp: httpx.Client, endpoint: GpEndpoint, subscribe: Callable[..., tuple[str, str]]
) -> None:
    subscription_id, name = subscribe(failing=True)
    status = _status_is(gp, subscription_id, "error")
    assert "HTTP 500" in status["error"]["valueCodeableConcept"]["text"]
    assert endpoint.notifications(name, "handshake")  # it was tried
    assert gp.get(f"/Subscription/{subscription_id}").json()["status"] == "error"


def test_delete_stops_notifications(
    gp: httpx.Client,
    stack: DevStack,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    deleted_id, deleted = subscribe()
    _, witness = subscribe()  # created later, so notified after the deleted one would be
    _status_is(gp, deleted_id, "active")
    eventually(lambda: endpoint.notifications(witness, "handshake"), "the witness's handshake")
    assert gp.delete(f"/Subscription/{deleted_id}").status_code == 204
    assert _status(gp, deleted_id)["status"]["valueCode"] == "off"

    referral_id, task_id = _referral(gp)
    _change(kafka_topics, referral_id, "Task", task_id, 2, task_id)
    task = f"{stack.fhir_base_url}/Task/{task_id}"

    def about_task(name: str) -> list[tuple[int, int, str]]:
        return [
            e for e in _events(endpoint.notifications(name, "event-notification")) if e[2] == task
        ]

    eventually(lambda: about_task(witness), "the witness's notification")
    assert about_task(deleted) == []


def test_an_acknowledged_notification_is_a_receipt_for_the_organisation(
    gp: httpx.Client,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    subscription_id, _ = subscribe()
    _status_is(gp, subscription_id, "active")
    referral_id, task_id = _referral(gp)
    organisation = "dynamo-amsterdam"
    wait_for_record(
        kafka_topics, topics.social_referrals(organisation), lambda r: r.key == referral_id.encode()
    )
    # The organisation reports a status, so the Task carries feedback a receipt is for.
    reported = CloudEvent[ReferralStatusReported].wrap(
        ReferralStatusReported(
            referral_id=uuid.UUID(referral_id),
            organisation_id=organisation,
            status=WelfareStatus.RECEIVED,
            sequence=1,
            occurred_at=datetime.now(UTC),
        ),
        service=f"case-system-{organisation}",
    )
    produce(
        kafka_topics,
        topics.social_status(organisation),
        reported.to_json_bytes(),
        referral_id.encode(),
    )
    welfare_business_statuses = {business.value for _, business in TASK_VIEW.values()}

    def has_feedback() -> bool:
        task = gp.get(f"/Task/{task_id}").json()
        codes = {c["code"] for c in task.get("businessStatus", {}).get("coding", [])}
        return bool(codes & welfare_business_statuses)

    # (The reference case system may have answered first: any welfare status will do.)
    eventually(has_feedback, "a welfare status on the Task")
    version = 50  # above anything the GP system may have read
    _change(kafka_topics, referral_id, "Task", task_id, version, task_id)

    def is_push_receipt(record: Any) -> bool:
        if record.key != referral_id.encode():
            return False
        try:
            event = CloudEvent[FeedbackReceivedByGp].model_validate_json(record.value)
        except ValueError:
            return False
        return event.data.channel == "push"

    record = wait_for_record(kafka_topics, topics.social_referrals(organisation), is_push_receipt)
    receipt = CloudEvent[FeedbackReceivedByGp].model_validate_json(record.value).data
    # The feedback service's own notice for the status (version 2) may be pushed before the
    # GP system's read above makes it a pull receipt; then the push receipt is for it.
    pushed_version = int(receipt.resource.rsplit("/", 1)[1])
    assert receipt.resource.startswith(f"Task/{task_id}/_history/")
    assert pushed_version in (2, version)


def test_the_closed_loop_reaches_the_gp_as_rest_hook_notifications_in_order(
    gp: httpx.Client,
    social: httpx.Client,
    stack: DevStack,
    kafka_topics: str,
    endpoint: GpEndpoint,
    subscribe: Callable[..., tuple[str, str]],
) -> None:
    """No produced notices here: the welfare side answers over HTTPS, the feedback service
    moves the Task, and the GP system hears each step on its endpoint, then reads it."""
    subscription_id, name = subscribe()
    _status_is(gp, subscription_id, "active")
    referral_id, task_id = _referral(gp)
    wait_for_record(
        kafka_topics,
        topics.social_referrals("dynamo-amsterdam"),
        lambda r: r.key == referral_id.encode(),
    )
    social.headers["Authorization"] = f"Bearer {WELFARE_AMSTERDAM}"
    answers: list[dict[str, Any]] = [
        {"status": "received"},
        {"status": "accepted", "business_status": "intake-scheduled"},
        {"status": "first-contact"},
        {"status": "completed", "outcome": {"summary": "Gaat naar de wandelgroep."}},
    ]
    for sequence, answer in enumerate(answers, start=1):
        body = {"sequence": sequence, "occurred_at": datetime.now(UTC).isoformat()} | answer
        reply = social.post(f"/social/v1/referrals/{referral_id}/status", json=body)
        assert reply.status_code == 202, reply.text

    task = f"{stack.fhir_base_url}/Task/{task_id}"

    # Only this referral's: the practice's other referrals (earlier tests) may still be
    # announced to the same subscription meanwhile.
    feedback_url = (
        f"{stack.fhir_base_url}/Communication/{feedback_communication_id(uuid.UUID(referral_id))}"
    )

    def until_the_feedback() -> list[str]:
        events = _events(endpoint.notifications(name, "event-notification"))
        mine = [focus for *_, focus in events if focus in (task, feedback_url)]
        return mine if feedback_url in mine else []

    # Quick successive changes of one Task may be announced once, at its newest version;
    # what is announced arrives in order: the Task's changes, then the feedback made with
    # the last of them.
    mine = eventually(until_the_feedback, "the notifications up to the feedback")
    # Rest-hook delivery is at least once: notices redelivered on Kafka (a slow ack, a
    # rebalance under load replaying a batch) are POSTed again. The order of first
    # deliveries is what counts.
    mine = list(dict.fromkeys(mine))
    communication = mine[-1]
    assert mine[:-1] and set(mine[:-1]) == {task} and "/Communication/" in communication
    numbers = [n for n, _, _ in _events(endpoint.notifications(name, "event-notification"))]
    assert numbers == sorted(numbers)

    # The notification is id-only: the GP system reads what it points at.
    read = gp.get(task.removeprefix(stack.fhir_base_url))
    assert read.json()["status"] == "completed"
    feedback = gp.get(communication.removeprefix(stack.fhir_base_url)).json()
    assert feedback["basedOn"][0]["reference"] == f"ServiceRequest/{referral_id}"
    assert feedback["payload"][0]["contentString"] == "Gaat naar de wandelgroep."
