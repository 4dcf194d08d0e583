"""The whole stack as separate processes on the session's real Kafka and PostgreSQL,
driven over HTTP and Kafka the way GP systems and welfare case systems use it."""

from __future__ import annotations

import copy
import json
import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from adapters.kafka_security import KafkaCredentials
from deploy.demo import sample_bundle
from deploy.devstack.stack import (
    DEFAULT_DIRECTORY,
    SERVICES,
    DevStack,
    StackConfig,
    dev_tokens,
)
from tests.conftest import free_port

TOKENS = dev_tokens()
GP_AMSTERDAM = TOKENS["his-amsterdam-centrum"]
GP_LELYSTAD = TOKENS["his-lelystad-noord"]
WELFARE_AMSTERDAM = TOKENS["case-dynamo-amsterdam"]
WELFARE_LELYSTAD = TOKENS["case-welzijn-lelystad"]


# Standard Webhooks form: whsec_ + base64 of the key.
WEBHOOK_SECRET = "whsec_YnJ1Zy1lMmUtd2ViaG9vay1rZXktZm9yLXRlc3Rz"
# Its service levels are 0 working days in the e2e directory: every referral is overdue.
OVERDUE_AT_ONCE = "buurtwerk-dordrecht"


class WebhookReceiver:
    """A welfare organisation's HTTPS endpoint: verifies signatures with the
    ``standardwebhooks`` library (interop, not Brug's own code), fails on demand."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        # Keyed by a marker in the GP's question, known before the referral is sent:
        # keyed by referral id, the first delivery could beat the test arming it.
        self.failures_left: dict[str, int] = {}  # marker -> 500s still to answer
        self.always_fail: set[str] = set()  # markers
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    Webhook(WEBHOOK_SECRET).verify(body, dict(self.headers.items()))
                    valid = True
                except (WebhookVerificationError, ValueError):  # ValueError: malformed
                    valid = False
                referral_id = json.loads(body)["event"]["data"]["referral_id"]
                question = json.loads(body).get("details", {}).get("question", "")
                with receiver.lock:
                    receiver.received.append(
                        {
                            "referral_id": referral_id,
                            "valid": valid,
                            "body": json.loads(body),
                            "delivery_id": self.headers["webhook-id"],
                        }
                    )
                    marker = next((m for m in receiver.failures_left if m in question), "")
                    left = receiver.failures_left.get(marker, 0)
                    failing = any(m in question for m in receiver.always_fail) or left > 0
                    if left:
                        receiver.failures_left[marker] = left - 1
                self.send_response(500 if failing or not valid else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/brug/referrals"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def attempts_for(self, referral_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.received if r["referral_id"] == referral_id]


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="session")
def stack(
    kafka_topics: str,
    database_url: str,
    infrastructure_dir: Path,
    webhook_receiver: WebhookReceiver,
) -> Iterator[DevStack]:
    directory = json.loads(DEFAULT_DIRECTORY.read_text())
    for organisation in directory["organisations"]:
        if organisation["delivery"] == "webhook":
            organisation["webhook_url"] = webhook_receiver.url
        if organisation["id"] == OVERDUE_AT_ONCE:
            organisation["service_levels"] = {
                "received_within_working_days": 0,
                "first_contact_within_working_days": 0,
            }
    directory_path = infrastructure_dir / "e2e-directory.json"
    directory_path.write_text(json.dumps(directory))
    # BRUG_E2E_REPLICAS=2: every service twice (the edges sharing their port), as
    # `brug dev up --replicas 2` runs them.
    replicas = int(os.environ.get("BRUG_E2E_REPLICAS", "1"))
    instances = [s if r == 1 else f"{s}-{r}" for s in SERVICES for r in range(1, replicas + 1)]
    running = DevStack(
        StackConfig(
            state_dir=infrastructure_dir / "e2e",
            fhir_port=free_port(),
            social_port=free_port(),
            console_port=free_port(),
            external_kafka=kafka_topics,
            kafka_dev_users=KafkaCredentials().authenticates,
            external_database=database_url,
            directory_path=directory_path,
            metrics_ports={name: free_port() for name in instances},
            replicas=replicas,
        )
    )
    with pytest.MonkeyPatch.context() as environment:
        # Short webhook timings so retries and parking happen within a test.
        environment.setenv("BRUG_WEBHOOK_SECRET_XTRA_ZOETERMEER", WEBHOOK_SECRET)
        environment.setenv("BRUG_WEBHOOK_BACKOFF_BASE_SECONDS", "0.2")
        environment.setenv("BRUG_WEBHOOK_MAX_AGE_SECONDS", "4")
        environment.setenv("BRUG_WEBHOOK_POLL_SECONDS", "0.1")
        # Short rest-hook retries: 0.2 s doubling to 0.5 s, given up after 8 s.
        environment.setenv("BRUG_NOTIFY_BACKOFF_BASE_SECONDS", "0.2")
        environment.setenv("BRUG_NOTIFY_BACKOFF_CAP_SECONDS", "0.5")
        environment.setenv("BRUG_NOTIFY_GIVE_UP_SECONDS", "8")
        environment.setenv("BRUG_TIMER_POLL_SECONDS", "0.3")
        environment.setenv("BRUG_FLOWS_CACHE_SECONDS", "0.5")
        running.start_services()
    try:
        yield running
    finally:
        running.stop_services()


@pytest.fixture
def gp(stack: DevStack) -> Iterator[httpx.Client]:
    """The Amsterdam practice's GP system."""
    with httpx.Client(base_url=stack.fhir_base_url, timeout=30.0) as client:
        client.headers.update(
            {"Authorization": f"Bearer {GP_AMSTERDAM}", "Content-Type": "application/fhir+json"}
        )
        yield client


@pytest.fixture
def social(stack: DevStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.social_base_url, timeout=30.0) as client:
        yield client


def new_bundle() -> dict[str, Any]:
    return sample_bundle(f"WOR-{uuid.uuid4()}")


def resource(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    )


def without(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    changed = copy.deepcopy(bundle)
    changed["entry"] = [
        e for e in changed["entry"] if e["resource"]["resourceType"] != resource_type
    ]
    return changed


def service_request_of(answer: dict[str, Any]) -> str:
    """``ServiceRequest/<id>`` of a transaction-response (its entry's ``response.location``)."""
    locations = (e["response"].get("location", "") for e in answer["entry"])
    return next(loc for loc in locations if loc.startswith("ServiceRequest/")).split("/_history")[0]


def find_task(base_url: str, authorization: str, service_request: str) -> dict[str, Any]:
    """The Task of a referral, found as a GP system that sent no Task finds it:
    ``GET [base]/Task?focus=ServiceRequest/<id>``."""
    found = httpx.get(
        f"{base_url}/Task",
        params={"focus": service_request},
        headers={"Authorization": authorization},
        timeout=30.0,
    )
    assert found.status_code == 200, found.text
    [entry] = found.json()["entry"]
    task: dict[str, Any] = entry["resource"]
    return task


def task_of(reply: httpx.Response) -> dict[str, Any]:
    """The Task of an accepted transaction, by the ``Task?focus=`` search."""
    assert reply.status_code in (200, 201), reply.text
    url = str(reply.request.url)
    base = url[: url.index("/fhir") + len("/fhir")]
    authorization = reply.request.headers["authorization"]
    return find_task(base, authorization, service_request_of(reply.json()))


def referral_id_of(task: dict[str, Any]) -> str:
    return str(
        next(i["value"] for i in task["identifier"] if i["system"] == "urn:brug:referral-id")
    )
