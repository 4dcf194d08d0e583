"""Chaos drill on a replicated stack: referrals flow, with feedback coming back, while a
broker, one instance of every service and PostgreSQL are SIGKILLed in turn and restarted.

    .venv/bin/python -m bench.chaos [--referrals 10000] [--rate 10] [--brokers 3] [--replicas 2]

Starts its own dev stack through the ``brug`` CLI (``dev up --brokers 3 --replicas 2``;
loopback only, free ports, a throw-away state folder) and stops it at the end. Then:

- a GP system submits ``--referrals`` FHIR Bundles at ``--rate`` per second (a schedule,
  not a closed loop: a slow answer does not slow the next), retrying a 503 or a dropped
  connection under the same X-Request-ID, as a GP system's queue does;
- the organisation's case system (``dynamo-amsterdam``, as its own Kafka principal) reads
  its referral topic and, for each referral it hears of, reports ``received``,
  ``accepted`` and ``first-contact`` on its status topic (keyed by referral: in order);
- at 1/5, 2/5 and 3/5 of the submitting time: one broker (``kafka-2``), then one instance of
  every service at once, then PostgreSQL (its postmaster, held down ``--outage`` seconds)
  are SIGKILLed, and ``brug dev up`` brings each back.

It waits (bounded) until every accepted referral shows ``first-contact`` on its Task, then
reports: lost and duplicated referrals (one Task per ServiceRequest identifier, one
``ReferralCreated`` id at the organisation, each status applied once in the Task's
history), parked dead letters, each kill's time to recover (to every instance's
``/health/ready`` answering 200), and latency (the GP's submission answered; the
organisation's event after it) in steady state and in each failover window.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import create_engine, text

from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events import ReferralCreated, ReferralStatusReported
from contracts.events.status import ReferralStatusProblem, WelfareStatus
from deploy.demo import sample_bundle
from deploy.devstack.kafka import dev_principal
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.processes import ManagedProcess
from deploy.devstack.stack import SERVICES, dev_tokens
from tests.conftest import free_port_block

BRUG = [sys.executable, "-c", "from deploy.cli import main; main()"]
ORGANISATION = "dynamo-amsterdam"
GP_CLIENT = "his-amsterdam-centrum"
# What the case system reports, in order, and the Task status each shows.
REPORTS = (
    (WelfareStatus.RECEIVED, "received"),
    (WelfareStatus.ACCEPTED, "accepted"),
    (WelfareStatus.FIRST_CONTACT, "in-progress"),
)
FINAL_WELFARE_STATUS = "first-contact"
ADMIN = dev_principal("brug-admin")
CASE_SYSTEM = dev_principal(f"case-{ORGANISATION}")
# The organisation's referrals, and Brug's answers to what it did not apply.
READ_TOPICS = (topics.social_referrals(ORGANISATION), topics.social_problems(ORGANISATION))
SUBMIT_WORKERS = 16
SUBMIT_GIVE_UP_SECONDS = 300.0
READY_WITHIN_SECONDS = 180.0
WINDOW_AFTER_READY_SECONDS = 10.0


@dataclass
class Submission:
    identifier: str
    scheduled: float
    answered: float = 0.0
    referral_id: str = ""
    retries: int = 0


@dataclass
class GpSystem:
    base_url: str
    token: str
    rate: float
    submissions: list[Submission] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = 0.0
    finished: float = 0.0

    def run(self, count: int) -> None:
        self.started = time.monotonic()
        with (
            httpx.Client(base_url=self.base_url, timeout=30) as client,
            ThreadPoolExecutor(SUBMIT_WORKERS) as pool,
        ):
            for i in range(count):
                submission = Submission(f"CHAOS-{uuid.uuid4()}", self.started + i / self.rate)
                with self.lock:
                    self.submissions.append(submission)
                time.sleep(max(0.0, submission.scheduled - time.monotonic()))
                pool.submit(self._submit, client, submission)
        self.finished = time.monotonic()

    def _submit(self, client: httpx.Client, submission: Submission) -> None:
        bundle, request_id = sample_bundle(submission.identifier), str(uuid.uuid4())
        headers = {"Authorization": f"Bearer {self.token}", "X-Request-ID": request_id}
        deadline = time.monotonic() + SUBMIT_GIVE_UP_SECONDS
        while time.monotonic() < deadline:
            try:
                answer = client.post("/fhir", json=bundle, headers=headers)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code in (200, 201):
                location = answer.json()["entry"][0]["response"]["location"]
                submission.referral_id = location.split("/")[1]
                submission.answered = time.monotonic()
                return
            submission.retries += 1
            time.sleep(0.5)


@dataclass
class CaseSystem:
    """Reads the organisation's topic from the beginning (outside any group: it commits
    nothing) and reports each referral's statuses the first time it hears of it."""

    bootstrap: str
    created: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    first_heard: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: int = 0
    # (referral id, sequence) whose send failed: sent again (a repeat is harmless to Brug).
    unsent: set[tuple[str, int]] = field(default_factory=set)
    resent: int = 0
    # Brug's answers on the problems topic to reports it did not apply, by problem code.
    problems: Counter[str] = field(default_factory=Counter)

    def run(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=1,  # in order per referral, through retries
            **CASE_SYSTEM.kafka_python(),
        )
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, **ADMIN.kafka_python()
        )
        partitions = [
            TopicPartition(topic, p)
            for topic in (
                topics.social_referrals(ORGANISATION),
                topics.social_problems(ORGANISATION),
            )
            for p in consumer.partitions_for_topic(topic)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        try:
            while not self.stop.is_set():
                try:
                    for records in consumer.poll(timeout_ms=500).values():
                        for record in records:
                            self._heard(producer, record.value)
                    again, self.unsent = self.unsent, set()
                    for referral_id, sequence in sorted(again, key=lambda item: item[1]):
                        self.resent += 1
                        self._report(producer, referral_id, sequence)
                    producer.flush(timeout=30)
                except KafkaError:  # a broker going away: a pause, not the end
                    self.errors += 1
                    time.sleep(1.0)
        finally:
            producer.flush(timeout=30)
            producer.close()
            consumer.close()

    def _heard(self, producer: KafkaProducer, value: bytes) -> None:
        envelope = json.loads(value)
        if envelope.get("type") == ReferralStatusProblem.EVENT_TYPE:
            self.problems[str(envelope["data"]["problem"])] += 1
        if envelope.get("type") != ReferralCreated.EVENT_TYPE:
            return
        referral_id = str(envelope["data"]["referral_id"])
        self.created[referral_id].add(envelope["id"])
        if referral_id in self.first_heard:
            return
        self.first_heard[referral_id] = time.monotonic()
        for sequence in range(1, len(REPORTS) + 1):
            self._report(producer, referral_id, sequence)

    def _report(self, producer: KafkaProducer, referral_id: str, sequence: int) -> None:
        report = ReferralStatusReported(
            referral_id=uuid.UUID(referral_id),
            organisation_id=ORGANISATION,
            status=REPORTS[sequence - 1][0],
            sequence=sequence,
            occurred_at=datetime.now(UTC),
        )
        event = CloudEvent[ReferralStatusReported].wrap(
            report, service=f"case-system-{ORGANISATION}"
        )
        item = (referral_id, sequence)
        try:
            future = producer.send(
                topics.social_status(ORGANISATION),
                event.to_json_bytes(),
                key=referral_id.encode(),
                headers=[("content-type", b"application/cloudevents+json")],
            )
        except KafkaError:
            self.unsent.add(item)
            return
        future.add_errback(lambda _: self.unsent.add(item))


@dataclass
class Kill:
    what: str
    at: float
    restarted: float = 0.0
    ready: float = 0.0


class Stack:
    """The drill's own dev stack, through the CLI of the tree this script runs from."""

    def __init__(self, brokers: int, replicas: int) -> None:
        self.brokers, self.replicas = brokers, replicas
        self.state_dir = Path(tempfile.mkdtemp(prefix="brug-chaos-"))
        self.state_dir.chmod(0o755)
        self.base = base = free_port_block(10)
        metrics_base = free_port_block(60)  # instance 2 of service i on metrics_base + 50 + i
        while metrics_base < base + 10 and base < metrics_base + 60:  # the blocks overlap
            metrics_base = free_port_block(60)
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in {"KAFKA_BOOTSTRAP_SERVERS", "BRUG_KAFKA_BOOTSTRAP_SERVERS", "BRUG_DATABASE_URL"}
        }
        self.env = env | {
            "BRUG_STATE_DIR": str(self.state_dir),
            "BRUG_KAFKA_PORT": str(base),  # nodes on base, base+2, base+4 (controllers +1)
            "BRUG_KAFKA_CONTROLLER_PORT": str(base + 1),
            "BRUG_POSTGRES_PORT": str(base + 6),
            "BRUG_FHIR_PORT": str(base + 7),
            "BRUG_SOCIAL_PORT": str(base + 8),
            "BRUG_CONSOLE_PORT": str(base + 9),
            "BRUG_METRICS_PORT_BASE": str(metrics_base),
        }
        self.bootstrap = ",".join(f"127.0.0.1:{base + 2 * i}" for i in range(brokers))
        self.fhir_url = f"http://127.0.0.1:{base + 7}"
        self.postgres = PostgresCluster(self.state_dir, base + 6)
        self.metrics_base = metrics_base

    def up(self) -> None:
        done = subprocess.run(
            [*BRUG, "dev", "up", "--brokers", str(self.brokers), "--replicas", str(self.replicas)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"brug dev up failed:\n{done.stderr[-3000:]}")

    def down(self) -> None:
        subprocess.run([*BRUG, "dev", "down"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def ready_urls(self) -> list[str]:
        return [
            f"http://127.0.0.1:{self.metrics_base + i + 50 * r}/health/ready"
            for i in range(len(SERVICES))
            for r in range(self.replicas)
        ]

    def all_ready(self) -> bool:
        with httpx.Client(timeout=5) as client:
            for url in self.ready_urls():
                try:
                    if client.get(url).status_code != 200:
                        return False
                except httpx.TransportError:
                    return False
        return True

    def kill_postgres(self) -> None:
        pid = int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    def sql(self, query: str, **params: Any) -> list[Any]:
        engine = create_engine(self.postgres.url)
        try:
            with engine.connect() as connection:
                return list(connection.execute(text(query), params).all())
        finally:
            engine.dispose()


def chaos(stack: Stack, gp: GpSystem, span: float, outage: float) -> list[Kill]:
    """At 1/5, 2/5, 3/5 of ``span``: a broker, an instance of each service, PostgreSQL."""
    plan: list[tuple[str, list[str]]] = [
        ("broker kafka-2", ["kafka-2"] if stack.brokers > 1 else ["kafka"]),
        ("one instance of every service", list(SERVICES)),
        ("postgresql", []),
    ]
    kills = []
    for turn, (what, victims) in enumerate(plan, start=1):
        time.sleep(max(0.0, gp.started + span * turn / 5 - time.monotonic()))
        kill = Kill(what, time.monotonic())
        if victims:
            for victim in victims:
                ManagedProcess(victim, stack.state_dir).kill()
        else:
            stack.kill_postgres()
            time.sleep(outage)  # held down: the edges answer 503 meanwhile
        print(f"  killed {what} at {kill.at - gp.started:.0f}s", file=sys.stderr)
        stack.up()
        kill.restarted = time.monotonic()
        deadline = time.monotonic() + READY_WITHIN_SECONDS
        while not stack.all_ready() and time.monotonic() < deadline:
            time.sleep(0.5)
        kill.ready = time.monotonic()
        kills.append(kill)
    return kills


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else None

    def at(p: int) -> float:
        return round(1000 * (cut[p - 1] if cut else ordered[0]))

    return {
        "n": len(ordered),
        "p50_ms": at(50),
        "p95_ms": at(95),
        "p99_ms": at(99),
        "max_ms": round(1000 * ordered[-1]),
    }


def verify(stack: Stack, gp: GpSystem, case: CaseSystem) -> dict[str, Any]:
    answered = [s for s in gp.submissions if s.referral_id]
    identifiers = [s.identifier for s in gp.submissions]
    tasks = Counter(
        row.service_request_value
        for row in stack.sql(
            "SELECT service_request_value FROM referrals "
            "WHERE service_request_value = ANY(:identifiers)",
            identifiers=identifiers,
        )
    )
    history = Counter(
        (str(row.referral_id), row.status)
        for row in stack.sql(
            "SELECT referral_id, status FROM referral_status_history "
            "WHERE referral_id = ANY(CAST(:ids AS uuid[]))",
            ids=[s.referral_id for s in answered],
        )
    )
    expected = [task_status for _, task_status in REPORTS]
    parked = stack.sql("SELECT count(*) AS n FROM dead_letters WHERE state = 'parked'")[0].n
    return {
        "submitted": len(gp.submissions),
        "accepted": len(answered),
        "gp_retries": sum(s.retries for s in gp.submissions),
        "lost_tasks": sum(1 for i in identifiers if tasks[i] == 0),
        "duplicated_tasks": sum(1 for i in identifiers if tasks[i] > 1),
        "lost_at_organisation": sum(1 for s in answered if not case.created.get(s.referral_id)),
        "duplicated_at_organisation": sum(
            1 for s in answered if len(case.created.get(s.referral_id, ())) > 1
        ),
        "statuses_missing": sum(
            1 for s in answered for status in expected if history[(s.referral_id, status)] == 0
        ),
        "statuses_applied_twice": sum(
            1 for s in answered for status in expected if history[(s.referral_id, status)] > 1
        ),
        "parked_dead_letters": parked,
    }


def settled(stack: Stack, gp: GpSystem, timeout: float) -> float:
    """Seconds after the last submission until every accepted referral shows first contact."""
    ids = [s.referral_id for s in gp.submissions if s.referral_id]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pending = stack.sql(
                "SELECT count(*) AS n FROM referrals WHERE referral_id = ANY(CAST(:ids AS uuid[])) "
                "AND (welfare_status IS DISTINCT FROM :final)",
                ids=ids,
                final=FINAL_WELFARE_STATUS,
            )[0].n
        except Exception:  # the database restarting
            pending = -1
        if pending == 0 and len(ids) == len(gp.submissions):
            break
        time.sleep(1.0)
    return round(time.monotonic() - gp.finished, 1)


def latency_report(gp: GpSystem, case: CaseSystem, kills: list[Kill]) -> dict[str, Any]:
    answered = [s for s in gp.submissions if s.answered]
    windows = [(k.at, k.ready + WINDOW_AFTER_READY_SECONDS) for k in kills]

    def in_window(moment: float, window: tuple[float, float]) -> bool:
        return window[0] <= moment <= window[1]

    def routed(s: Submission) -> float | None:
        heard = case.first_heard.get(s.referral_id)
        return heard - s.answered if heard is not None else None

    steady = [s for s in answered if not any(in_window(s.scheduled, w) for w in windows)]
    report: dict[str, Any] = {
        "steady": {
            "submit": percentiles([s.answered - s.scheduled for s in steady]),
            "to_organisation": percentiles([r for s in steady if (r := routed(s)) is not None]),
        }
    }
    for kill, window in zip(kills, windows, strict=True):
        during = [s for s in answered if in_window(s.scheduled, window)]
        report[kill.what] = {
            "restarted_after_s": round(kill.restarted - kill.at, 1),
            "all_ready_after_s": round(kill.ready - kill.at, 1),
            "submit": percentiles([s.answered - s.scheduled for s in during]),
            "to_organisation": percentiles([r for s in during if (r := routed(s)) is not None]),
        }
    return report


def drill(options: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(options.brokers, options.replicas)
    case: CaseSystem | None = None
    try:
        begun = time.monotonic()
        stack.up()
        print(f"  stack up in {time.monotonic() - begun:.0f}s", file=sys.stderr)
        gp = GpSystem(stack.fhir_url, dev_tokens()[GP_CLIENT], options.rate)
        case = CaseSystem(stack.bootstrap)
        reader = threading.Thread(target=case.run, daemon=True)
        reader.start()
        submitter = threading.Thread(target=gp.run, args=(options.referrals,), daemon=True)
        submitter.start()
        span = options.referrals / options.rate
        kills = chaos(stack, gp, span, options.outage)
        submitter.join(timeout=span + SUBMIT_GIVE_UP_SECONDS + 60)
        settle_seconds = settled(stack, gp, options.settle_timeout)
        case.stop.set()
        reader.join(timeout=60)
        return {
            "referrals": options.referrals,
            "rate_per_second": options.rate,
            "brokers": options.brokers,
            "replicas": options.replicas,
            "submitting_seconds": round(gp.finished - gp.started, 1),
            "settled_seconds_after_last_submission": settle_seconds,
            **verify(stack, gp, case),
            "case_system_kafka_pauses": case.errors,
            "case_system_reports_sent_again": case.resent,
            "problems_answered": dict(case.problems),
            "latency": latency_report(gp, case, kills),
        }
    finally:
        if case is not None:
            case.stop.set()
        stack.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=10.0, help="submissions per second")
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL stays down")
    parser.add_argument("--settle-timeout", type=float, default=600.0)
    options = parser.parse_args()
    if options.referrals < 1 or options.rate <= 0 or options.rate > 200:
        parser.error("--referrals at least 1, --rate in (0, 200]")
    print(json.dumps(drill(options), indent=2))


if __name__ == "__main__":
    main()
