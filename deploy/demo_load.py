"""``brug demo load``: synthetic referrals (``deploy/synthetic_load.py``) through the running
stack, the way the GP systems and the welfare case systems use it:

1. each GP system POSTs its referrals' transaction Bundles to the FHIR gateway with its
   token, several at a time;
2. each organisation's case system reads its referrals topic as its own Kafka principal
   and, once a referral is there, publishes its statuses (with the decline reason, the
   outcome and consented Positive Health) on its status topic, as that principal;
3. a GP system reads the completed Task of some of its referrals (its receipt of the
   feedback), polling its Task search until the welfare side completed it;
4. the monitor turns it all into rows; ``await_monitor`` waits until it has every one.

Loopback only, bounded in time: every wait ends with a TimeoutError.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from uuid import UUID

import httpx
from kafka import KafkaConsumer, KafkaProducer

from adapters.kafka_security import KafkaCredentials
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import ReferralStatusReported
from contracts.monitor import MonitorRecord
from deploy.demo import _consumer_at_end
from deploy.synthetic_load import Plan, bundle, status_fields
from domain.monitor.dataset import referral_pseudonym


@dataclass(frozen=True)
class LoadResult:
    plans: tuple[Plan, ...]
    referral_ids: tuple[str, ...]  # in the order of the plans
    day: date
    submitted_seconds: float
    answered_seconds: float

    def pseudonyms(self, key: str) -> tuple[str, ...]:
        return tuple(referral_pseudonym(UUID(r), key) for r in self.referral_ids)


def run_load(
    plans: Sequence[Plan],
    fhir_base_url: str,
    bootstrap_servers: str,
    gp_tokens: dict[str, str],
    credentials_of: Callable[[str], KafkaCredentials],
    *,
    timeout: float = 60,
    workers: int = 8,
) -> LoadResult:
    """Submit every plan as its GP system and answer it as its organisation's case system."""
    now = datetime.now(UTC)
    organisations = sorted({plan.organisation_id for plan in plans})
    consumers = {
        org: _consumer_at_end(
            bootstrap_servers, topics.social_referrals(org), credentials_of(f"case-{org}")
        )
        for org in organisations
    }
    started = time.monotonic()
    limits = httpx.Limits(max_connections=workers)
    try:
        with httpx.Client(timeout=30.0, limits=limits) as http:

            def submit(plan: Plan) -> str:
                return _submit(http, fhir_base_url, gp_tokens[plan.gp_client], plan, now)

            with ThreadPoolExecutor(workers) as pool:
                referral_ids = list(pool.map(submit, plans))
        submitted = time.monotonic() - started
        for org, consumer in consumers.items():
            wanted = {
                r for r, p in zip(referral_ids, plans, strict=True) if p.organisation_id == org
            }
            _await_keys(consumer, wanted, started + timeout)
    finally:
        for consumer in consumers.values():
            consumer.close()
    for org in organisations:
        _answer(
            bootstrap_servers,
            credentials_of(f"case-{org}"),
            org,
            [(p, r) for p, r in zip(plans, referral_ids, strict=True) if p.organisation_id == org],
        )
    readers = [(p, r) for p, r in zip(plans, referral_ids, strict=True) if p.gp_reads]
    with httpx.Client(timeout=30.0, limits=limits) as http:

        def read(pair: tuple[Plan, str]) -> None:
            plan, referral_id = pair
            token = gp_tokens[plan.gp_client]
            _read_completed(http, fhir_base_url, token, referral_id, started + timeout)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(read, readers))
    return LoadResult(
        tuple(plans), tuple(referral_ids), now.date(), submitted, time.monotonic() - started
    )


def _submit(http: httpx.Client, base: str, token: str, plan: Plan, now: datetime) -> str:
    reply = http.post(
        base,
        json=bundle(plan, now, f"WOR-LOAD-{uuid.uuid4()}"),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/fhir+json",
            "X-Request-ID": str(uuid.uuid4()),
        },
    )
    if reply.status_code != 201:
        raise RuntimeError(f"the FHIR gateway answered {reply.status_code}: {reply.text[:300]}")
    return next(
        e["response"]["location"].split("/")[1]
        for e in reply.json()["entry"]
        if e["response"].get("location", "").startswith("ServiceRequest/")
    )


def _read_completed(
    http: httpx.Client, base: str, token: str, referral_id: str, deadline: float
) -> None:
    """As the GP system: its Task search until the referral's Task is completed (that read
    is the GP's receipt of the feedback)."""
    while True:
        found = http.get(
            f"{base}/Task",
            params={"focus": f"ServiceRequest/{referral_id}", "status": "completed"},
            headers={"Authorization": f"Bearer {token}"},
        )
        if found.status_code != 200:
            raise RuntimeError(f"the FHIR gateway answered {found.status_code}: {found.text}")
        if found.json().get("total"):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"a referral's Task was not completed in time ({referral_id})")
        time.sleep(0.3)


def _await_keys(consumer: KafkaConsumer, wanted: set[str], deadline: float) -> None:
    """As the case system: until every referral is on the organisation's topic."""
    missing = set(wanted)
    while missing:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(missing)} referral(s) did not reach their organisation")
        for records in consumer.poll(timeout_ms=300).values():
            missing -= {record.key.decode() for record in records if record.key}


def _answer(
    bootstrap_servers: str,
    credentials: KafkaCredentials,
    organisation: str,
    referrals: list[tuple[Plan, str]],
) -> None:
    """The case system's statuses, in order per referral (its key: one partition, one
    in-flight request, so they arrive in the order sent)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap_servers,
        acks="all",
        linger_ms=5,
        max_in_flight_requests_per_connection=1,
        **credentials.kafka_python(),
    )
    try:
        for plan, referral_id in referrals:
            for sequence, status in enumerate(plan.statuses, start=1):
                now = datetime.now(UTC)
                event = CloudEvent[ReferralStatusReported].wrap(
                    ReferralStatusReported(
                        referral_id=UUID(referral_id),
                        organisation_id=organisation,
                        status=status,
                        sequence=sequence,
                        occurred_at=now,
                        **status_fields(plan, status, now),
                    ),
                    service=f"case-system-{organisation}",
                )
                producer.send(
                    topics.social_status(organisation),
                    value=event.to_json_bytes(),
                    key=referral_id.encode(),
                )
        producer.flush(timeout=30)
    finally:
        producer.close()


def monitor_records(database_url: str, pseudonyms: Sequence[str]) -> dict[str, MonitorRecord]:
    """The monitor's published records of these pseudonyms (those it has)."""
    from adapters.database import make_engine
    from adapters.monitor.store import MonitorStore

    wanted = set(pseudonyms)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            records = MonitorStore(connection).records()
    finally:
        engine.dispose()
    return {r.pseudonym: r for r in records if r.pseudonym in wanted}


def await_monitor(
    database_url: str,
    expected: dict[str, MonitorRecord],
    timeout: float = 60,
) -> dict[str, MonitorRecord]:
    """The monitor's records once they equal ``expected`` (pseudonym -> record); on timeout,
    a TimeoutError that says how many differ."""
    deadline = time.monotonic() + timeout
    while True:
        found = monitor_records(database_url, list(expected))
        differing = [p for p, record in expected.items() if found.get(p) != record]
        if not differing:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"{len(differing)} of {len(expected)} monitor row(s) not as expected "
                f"after {timeout}s ({len(found)} present)"
            )
        time.sleep(0.5)
