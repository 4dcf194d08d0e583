"""Benchmark: referrals through the running path vs. bare Kafka, in the same run.

    .venv/bin/python -m bench.referral_path [--seconds 10] [--rates 25,100] [--concurrency 32]

Starts its own Kafka, PostgreSQL and Brug services (or uses KAFKA_BOOTSTRAP_SERVERS /
BRUG_DATABASE_URL), then measures:
1. sustained throughput: closed-loop GP clients POST referrals for ``--seconds``;
2. end-to-end latency at fixed offered rates (``--rates``/s, open loop): from the GP's
   201 to the referral event arriving on the organisation's topic;
3. the baseline, same run, same broker: aiokafka alone producing (acks=all) and consuming
   records of the same size, at full speed and at the same fixed rate.
Prints a table with the ratios (Brug / baseline). Machines here are noisy: compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from adapters.kafka_admin import TopicSpec, ensure_topics
from adapters.kafka_security import KafkaCredentials
from bench.cpu import CpuMeter, cpu_table, stack_processes
from bench.flames import finish_profiles, start_profiles
from contracts import topics
from deploy.demo import sample_bundle
from deploy.devstack.stack import SERVICES, DevStack, StackConfig, dev_tokens
from tests.conftest import free_port

ORGANISATION_TOPIC = topics.social_referrals("dynamo-amsterdam")
BASELINE_TOPIC = "brug.bench.baseline.v1"


@dataclass
class Figures:
    throughput_per_second: float
    latencies_ms: list[float]
    cpu: str = ""  # the CPU table of the window, where it was measured
    # Referrals per second until the last accepted one reached the organisation's topic:
    # the edge alone can outrun a router that falls behind, which defers its work.
    through_per_second: float | None = None

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return (
            ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))] if ordered else float("nan")
        )


class Arrivals:
    """Consumes a topic from its end and records when each key arrives."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", **kafka_options()
        )
        self.arrived: dict[bytes, float] = {}
        self.waiters: dict[bytes, asyncio.Future[float]] = {}

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.seek_to_end()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for record in self.consumer:
            now = time.perf_counter()
            self.arrived[record.key] = now
            if (waiter := self.waiters.pop(record.key, None)) and not waiter.done():
                waiter.set_result(now)

    async def wait(self, key: bytes) -> float:
        if key in self.arrived:
            return self.arrived[key]
        future = self.waiters.setdefault(key, asyncio.get_running_loop().create_future())
        async with asyncio.timeout(30):
            return await future

    async def stop(self) -> None:
        self.task.cancel()
        await self.consumer.stop()


async def submit(http: httpx.AsyncClient, url: str) -> tuple[bytes, float, float]:
    """(referral key, when the POST was sent, when the 201 came back)."""
    sent = time.perf_counter()
    reply = await http.post(url, json=sample_bundle(), headers={"X-Request-ID": str(uuid.uuid4())})
    accepted = time.perf_counter()
    if reply.status_code != 201:
        raise RuntimeError(f"{reply.status_code}: {reply.text[:300]}")
    # The referral id is the ServiceRequest's id (its entry's response.location).
    referral_id = next(
        e["response"]["location"].split("/")[1]
        for e in reply.json()["entry"]
        if e["response"].get("location", "").startswith("ServiceRequest/")
    )
    return referral_id.encode(), sent, accepted


async def brug_throughput(stack: DevStack, token: str, options: argparse.Namespace) -> Figures:
    """Closed-loop GP clients for ``--seconds``; the CPU window lasts until every accepted
    referral reached the organisation's topic, so the router's and relay's work counts."""
    url, seconds = stack.fhir_base_url, options.seconds
    arrivals = Arrivals(stack.bootstrap_servers, ORGANISATION_TOPIC)
    await arrivals.start()
    accepted: list[bytes] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        async with _http(token) as http:
            while time.perf_counter() < deadline:
                key, _, _ = await submit(http, url)
                accepted.append(key)

    meter = CpuMeter(stack_processes(stack))
    profilers = start_profiles(stack, options.profile, seconds)
    meter.start()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(options.concurrency)))
    elapsed = time.perf_counter() - started
    arrived = await asyncio.gather(*(arrivals.wait(key) for key in accepted))
    meter.stop()
    finish_profiles(profilers)
    await arrivals.stop()
    return Figures(
        len(accepted) / elapsed,
        [],
        cpu_table(meter, len(accepted), "referral"),
        through_per_second=len(accepted) / (max(arrived) - started),
    )


async def brug_latency(
    url: str, token: str, bootstrap: str, rate: float, seconds: float
) -> tuple[Figures, Figures]:
    """From the GP's 201, and from the moment the GP sent its POST, to the organisation's
    topic. The second is what a GP and an organisation live with: it counts the time the
    201 waited, wherever Brug spends it."""
    arrivals = Arrivals(bootstrap, ORGANISATION_TOPIC)
    await arrivals.start()
    latencies: list[float] = []
    from_post: list[float] = []

    async def one(http: httpx.AsyncClient) -> None:
        key, sent, accepted = await submit(http, url)
        arrived = await arrivals.wait(key)
        latencies.append((arrived - accepted) * 1000)
        from_post.append((arrived - sent) * 1000)

    async with _http(token) as http:
        await _open_loop(lambda: one(http), rate, seconds)
    await arrivals.stop()
    return Figures(len(latencies) / seconds, latencies), Figures(
        len(from_post) / seconds, from_post
    )


async def baseline_throughput(bootstrap: str, payload: bytes, seconds: float) -> Figures:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **kafka_options()
    )
    arrivals = Arrivals(bootstrap, BASELINE_TOPIC)
    await producer.start()
    await arrivals.start()
    sent: list[bytes] = []
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def sender() -> None:
        while time.perf_counter() < deadline:
            key = uuid.uuid4().hex.encode()
            await producer.send_and_wait(BASELINE_TOPIC, payload, key=key)
            sent.append(key)

    await asyncio.gather(*(sender() for _ in range(32)))
    await asyncio.gather(*(arrivals.wait(k) for k in sent))
    elapsed = time.perf_counter() - started
    await producer.stop()
    await arrivals.stop()
    return Figures(len(sent) / elapsed, [])


async def baseline_latency(bootstrap: str, payload: bytes, rate: float, seconds: float) -> Figures:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **kafka_options()
    )
    arrivals = Arrivals(bootstrap, BASELINE_TOPIC)
    await producer.start()
    await arrivals.start()
    latencies: list[float] = []

    async def one() -> None:
        key = uuid.uuid4().hex.encode()
        await producer.send_and_wait(BASELINE_TOPIC, payload, key=key)
        acknowledged = time.perf_counter()
        latencies.append((await arrivals.wait(key) - acknowledged) * 1000)

    await _open_loop(one, rate, seconds)
    await producer.stop()
    await arrivals.stop()
    return Figures(len(latencies) / seconds, latencies)


async def _open_loop(make: Any, rate: float, seconds: float) -> None:
    """Start one request every 1/rate seconds regardless of how long earlier ones take."""
    tasks = []
    started = time.perf_counter()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(make()))
    await asyncio.gather(*tasks)


def _http(token: str) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    return httpx.AsyncClient(
        timeout=60.0,
        limits=limits,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    )


async def measure(stack: DevStack, options: argparse.Namespace) -> dict[str, Figures]:
    token = dev_tokens()["his-amsterdam-centrum"]
    url = stack.fhir_base_url
    bootstrap = stack.bootstrap_servers
    async with _http(token) as http:  # warm up connections, pools and caches
        for _ in range(50):
            await submit(http, url)
    sample_event = await _sample_event_bytes(stack)
    figures = {
        "brug throughput": await brug_throughput(stack, token, options),
        "baseline throughput": await baseline_throughput(bootstrap, sample_event, options.seconds),
    }
    for rate in options.rates:
        figures[f"brug latency {rate:g}"], figures[f"brug post {rate:g}"] = await brug_latency(
            url, token, bootstrap, rate, options.seconds
        )
        figures[f"baseline latency {rate:g}"] = await baseline_latency(
            bootstrap, sample_event, rate, options.seconds
        )
    return figures


async def _sample_event_bytes(stack: DevStack) -> bytes:
    """A real referral event, so the baseline moves records of the same size."""
    consumer = AIOKafkaConsumer(
        ORGANISATION_TOPIC,
        bootstrap_servers=stack.bootstrap_servers,
        auto_offset_reset="earliest",
        **kafka_options(),
    )
    await consumer.start()
    record = await consumer.getone()
    await consumer.stop()
    return bytes(record.value or b"")


def report(figures: dict[str, Figures], options: argparse.Namespace) -> str:
    brug, base = figures["brug throughput"], figures["baseline throughput"]
    lines = [
        f"machine: {os.cpu_count()} cores, everything on it (broker, database, services, "
        f"load); {options.seconds:g}s per measurement; {options.concurrency} closed-loop clients",
        "| measure | Brug | aiokafka baseline | ratio Brug/baseline |",
        "|---|---|---|---|",
        _row(
            "sustained throughput, accepted by the FHIR edge (referrals/s)",
            brug.throughput_per_second,
            base.throughput_per_second,
            "{:.0f}",
        ),
        _row(
            "sustained throughput, through to the organisation's topic (referrals/s)",
            brug.through_per_second or float("nan"),
            base.throughput_per_second,
            "{:.0f}",
        ),
    ]
    for rate in options.rates:
        brug_latency = figures[f"brug latency {rate:g}"]
        base_latency = figures[f"baseline latency {rate:g}"]
        for p in (50, 95, 99):
            lines.append(
                _row(
                    f"latency p{p} at {rate:g}/s (ms)",
                    brug_latency.percentile(p),
                    base_latency.percentile(p),
                    "{:.1f}",
                )
            )
        for p in (50, 99):
            lines.append(
                f"| from the POST, p{p} at {rate:g}/s (ms) | "
                f"{figures[f'brug post {rate:g}'].percentile(p):.1f} | | |"
            )
    lines += ["", "CPU during the throughput window:", brug.cpu]
    return "\n".join(lines)


def _row(name: str, brug: float, baseline: float, number: str) -> str:
    ratio = brug / baseline if baseline else float("nan")
    return f"| {name} | {number.format(brug)} | {number.format(baseline)} | {ratio:.3g} |"


def kafka_options() -> dict[str, Any]:
    """aiokafka's security options for this process (set by ``run_benchmark``)."""
    return KafkaCredentials().aiokafka()


def bench_stack(services: tuple[str, ...], replicas: int = 1) -> DevStack:
    """Kafka, PostgreSQL (or KAFKA_BOOTSTRAP_SERVERS / BRUG_DATABASE_URL) and ``services``
    (``replicas`` instances of each, the HTTP edges sharing their port) on free ports in a
    throw-away folder; no simulated case systems."""
    state_dir = Path(tempfile.mkdtemp(prefix="brug-bench-"))
    state_dir.chmod(0o755)
    return DevStack(
        StackConfig(
            state_dir=state_dir,
            kafka_port=free_port(),
            kafka_controller_port=free_port(),
            postgres_port=free_port(),
            fhir_port=free_port(),
            social_port=free_port(),
            console_port=free_port(),
            metrics_ports={name: free_port() for name in SERVICES},
            external_kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"),
            external_database=os.environ.get("BRUG_DATABASE_URL"),
            replicas=replicas,
        ),
        services=services,
        simulated_organisations=(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument(
        "--rates", type=lambda text: [float(r) for r in text.split(",")], default=[25.0, 100.0]
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="folder for py-spy flame graphs of the FHIR edge and the router (throughput window)",
    )
    add_replicas_option(parser)
    run_benchmark(("fhir_gateway", "router", "relay"), measure, report, parser.parse_args())


def add_replicas_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="instances of every service (the HTTP edges share their port by SO_REUSEPORT)",
    )


def run_benchmark(
    services: tuple[str, ...], measure: Any, report: Any, options: argparse.Namespace
) -> None:
    """Start the stack, create the baseline topic, measure, print the report, stop."""
    stack = bench_stack(services, options.replicas)
    try:
        stack.up()
        # The load generator and the baseline connect as the stack's super user (its own
        # broker authenticates everyone): the same SASL cost on both sides of the ratio.
        os.environ.update(stack.admin_credentials.environment())
        ensure_topics(stack.bootstrap_servers, [TopicSpec(BASELINE_TOPIC)])
        figures = asyncio.run(measure(stack, options))
        print(report(figures, options))
    finally:
        stack.down()
        if not os.environ.get("BRUG_KEEP_BENCH_STATE"):  # logs, traces, data: throw-away
            shutil.rmtree(stack.config.state_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
