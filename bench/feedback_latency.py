"""Benchmark: feedback latency, welfare status event → the GP knows, vs. bare Kafka.

    .venv/bin/python -m bench.feedback_latency [--rates 25,100] [--seconds 10]

Starts its own Kafka, PostgreSQL and the services on the path (fhir_gateway, router,
feedback, gp_notify), or uses KAFKA_BOOTSTRAP_SERVERS / BRUG_DATABASE_URL. A GP system
subscribes (FHIR Subscription, rest-hook, id-only, to a receiver in this process); referrals
are submitted and routed beforehand. Then a case system publishes one ``received`` status
per referral at a fixed rate (open loop), and for each the clock runs from the broker's
acknowledgement of the status event to:
1. the GP's Task updated: the id-only ``GpResourceChanged`` notice on
   ``brug.gp.changes.<client>.v1``, which the ledger queues in the outbox in the transaction
   that moved the Task and the relay publishes once it committed;
2. the rest-hook notification for that Task arriving at the GP system's endpoint.
Baseline, same run and broker: aiokafka produce (acks=all) → consume of records the size of
a status event, at the same rate. Machines here are noisy: compare ratios. Each rate's
window also counts the CPU of every process per status event (``bench/cpu.py``);
``--profile DIR`` records flame graphs of the services on the path during the last rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from bench.cpu import CpuMeter, cpu_table, stack_processes
from bench.flames import finish_profiles, start_profiles
from bench.referral_path import (
    ORGANISATION_TOPIC,
    Arrivals,
    Figures,
    _http,
    _open_loop,
    add_replicas_option,
    baseline_latency,
    kafka_options,
    run_benchmark,
    submit,
)
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.status import ReferralStatusReported, WelfareStatus
from contracts.fhir_systems import BACKPORT_PAYLOAD_CONTENT, REFERRAL_FEEDBACK_TOPIC
from deploy.devstack.stack import DevStack, dev_tokens
from tests.conftest import free_port

ORGANISATION = "dynamo-amsterdam"
GP_CLIENT = "his-amsterdam-centrum"


class PushEndpoint:
    """The GP system's rest-hook endpoint: when each Task's notification arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.waiters: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[float]]] = {}
        self.lock = threading.Lock()
        self.handshake = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a GP system's endpoint would

            def do_POST(self) -> None:
                bundle = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                now = time.perf_counter()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                kind = _notification_type(bundle)
                if kind == "handshake":
                    endpoint.handshake.set()
                for entry in bundle.get("entry", [])[1:]:
                    url = entry.get("fullUrl", "")
                    if "/Task/" in url:
                        endpoint._arrived(url.rsplit("/", 1)[1], now)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def wait(self, task_id: str) -> float:
        loop = asyncio.get_running_loop()
        with self.lock:
            if task_id in self.arrived:
                return self.arrived[task_id]
            waiter = self.waiters[task_id] = (loop, loop.create_future())
        async with asyncio.timeout(30):
            return await waiter[1]

    def _arrived(self, task_id: str, at: float) -> None:
        with self.lock:
            self.arrived.setdefault(task_id, at)
            waiter = self.waiters.pop(task_id, None)
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(future.set_result, at)


def _notification_type(bundle: dict[str, Any]) -> str | None:
    status = bundle.get("entry", [{}])[0].get("resource", {})
    for parameter in status.get("parameter", []):
        if parameter.get("name") == "type":
            return str(parameter.get("valueCode"))
    return None


def subscription(endpoint: str) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "feedback latency benchmark",
        "criteria": REFERRAL_FEEDBACK_TOPIC,
        "channel": {
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }


async def subscribe(url: str, token: str, endpoint: PushEndpoint) -> None:
    async with _http(token) as http:
        reply = await http.post(f"{url}/Subscription", json=subscription(endpoint.url))
        if reply.status_code != 201:
            raise RuntimeError(f"Subscription refused: {reply.status_code} {reply.text[:300]}")
    if not await asyncio.to_thread(endpoint.handshake.wait, 30):
        raise RuntimeError("no handshake from gp_notify")


async def routed_referrals(
    url: str, token: str, bootstrap: str, count: int
) -> list[tuple[str, str]]:
    """``count`` referrals submitted and delivered to the organisation: (referral id, Task id)."""
    arrivals = Arrivals(bootstrap, ORGANISATION_TOPIC)
    await arrivals.start()
    made: list[tuple[str, str]] = []
    async with _http(token) as http:

        async def worker() -> None:
            while len(made) < count:
                key, _, task_id = await submit_with_task(http, url)
                made.append((key.decode(), task_id))

        await asyncio.gather(*(worker() for _ in range(16)))
    await asyncio.gather(*(arrivals.wait(r.encode()) for r, _ in made))
    await arrivals.stop()
    return made[:count]


async def submit_with_task(http: httpx.AsyncClient, url: str) -> tuple[bytes, float, str]:
    key, _, accepted = await submit(http, url)
    found = await http.get(f"{url}/Task", params={"focus": f"ServiceRequest/{key.decode()}"})
    return key, accepted, found.json()["entry"][0]["resource"]["id"]


def status_event(referral_id: str) -> bytes:
    return (
        CloudEvent[ReferralStatusReported]
        .wrap(
            ReferralStatusReported(
                referral_id=uuid.UUID(referral_id),
                organisation_id=ORGANISATION,
                status=WelfareStatus.RECEIVED,
                sequence=1,
                occurred_at=datetime.now(UTC),
            ),
            service=f"case-system-{ORGANISATION}",
        )
        .to_json_bytes()
    )


async def feedback_latency(
    bootstrap: str,
    endpoint: PushEndpoint,
    referrals: list[tuple[str, str]],
    rate: float,
    seconds: float,
) -> tuple[Figures, Figures]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **kafka_options()
    )
    notices = Arrivals(bootstrap, topics.gp_changes(GP_CLIENT))
    await producer.start()
    await notices.start()
    task_updated: list[float] = []
    pushed: list[float] = []
    pending = iter(referrals)

    async def one() -> None:
        referral_id, task_id = next(pending)
        await producer.send_and_wait(
            topics.social_status(ORGANISATION),
            status_event(referral_id),
            key=referral_id.encode(),
            headers=[("content-type", b"application/cloudevents+json")],
        )
        acknowledged = time.perf_counter()
        task_updated.append((await notices.wait(referral_id.encode()) - acknowledged) * 1000)
        pushed.append((await endpoint.wait(task_id) - acknowledged) * 1000)

    await _open_loop(one, rate, seconds)
    await producer.stop()
    await notices.stop()
    return Figures(len(task_updated) / seconds, task_updated), Figures(
        len(pushed) / seconds, pushed
    )


async def measure(stack: DevStack, options: argparse.Namespace) -> dict[str, Figures]:
    token = dev_tokens()[GP_CLIENT]
    endpoint = PushEndpoint()
    await subscribe(stack.fhir_base_url, token, endpoint)
    warmup = 50
    counts = [int(rate * options.seconds) for rate in options.rates]
    referrals = await routed_referrals(
        stack.fhir_base_url, token, stack.bootstrap_servers, warmup + sum(counts)
    )
    # Warm up consumers, pools and caches on the same path, then measure each rate.
    await feedback_latency(stack.bootstrap_servers, endpoint, referrals[:warmup], 25, warmup / 25)
    figures: dict[str, Figures] = {}
    start = warmup
    for rate, count in zip(options.rates, counts, strict=True):
        batch = referrals[start : start + count]
        start += count
        last = rate == options.rates[-1]
        meter = CpuMeter(stack_processes(stack))
        profiles = start_profiles(
            stack, options.profile if last else None, options.seconds, prefix="feedback-"
        )
        meter.start()
        updated, pushed = await feedback_latency(
            stack.bootstrap_servers, endpoint, batch, rate, options.seconds
        )
        meter.stop()
        finish_profiles(profiles)
        updated.cpu = cpu_table(meter, len(batch), "status event")
        figures[f"task updated at {rate:g}/s"] = updated
        figures[f"notification delivered at {rate:g}/s"] = pushed
        figures[f"baseline at {rate:g}/s"] = await baseline_latency(
            stack.bootstrap_servers, status_event(batch[0][0]), rate, options.seconds
        )
    endpoint.server.shutdown()
    return figures


def report(figures: dict[str, Figures], options: argparse.Namespace) -> str:
    lines = [
        f"machine: {os.cpu_count()} cores, everything on it (broker, database, services, "
        f"load); each rate for {options.seconds:g}s",
        "| measure (events) | p50 ms | p95 ms | p99 ms | p99 ratio to baseline |",
        "|---|---|---|---|---|",
    ]
    for rate in options.rates:
        baseline = figures[f"baseline at {rate:g}/s"]
        for name in ("task updated", "notification delivered", "baseline"):
            f = figures[f"{name} at {rate:g}/s"]
            ratio = f.percentile(99) / baseline.percentile(99)
            lines.append(
                f"| {name} at {rate:g}/s ({len(f.latencies_ms)}) | {f.percentile(50):.1f} | "
                f"{f.percentile(95):.1f} | {f.percentile(99):.1f} | {ratio:.1f} |"
            )
    for rate in options.rates:
        lines += ["", f"CPU at {rate:g}/s:", figures[f"task updated at {rate:g}/s"].cpu]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--rates", type=lambda text: [float(r) for r in text.split(",")], default=[25.0, 100.0]
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--profile", type=Path, default=None, help="folder for flame graphs")
    add_replicas_option(parser)
    services = ("fhir_gateway", "router", "relay", "feedback", "gp_notify")
    run_benchmark(services, measure, report, parser.parse_args())


if __name__ == "__main__":
    main()
