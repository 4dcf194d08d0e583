"""Failover drill, as an operator meets it: referrals flow while services and the broker
are SIGKILLed in turn and brought back with ``brug dev up``.

    .venv/bin/python -m bench.failover [--referrals 600] [--rate 20] [--kill router,kafka,feedback]

Starts its own dev stack (loopback only, free ports, a throw-away state folder) through the
``brug`` CLI. A GP system submits at a steady rate and retries a 503 or a dropped connection
under the same X-Request-ID. At even intervals one component is SIGKILLed and the stack is
brought up again. Reports: referrals accepted, lost and delivered twice (distinct
``ReferralCreated`` ids per referral), parked dead letters, and how long after the last
submission Brug's consumer groups had caught up. Stops by itself; bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from adapters.kafka_admin import consumer_lag
from contracts import topics
from deploy.demo import sample_bundle
from deploy.devstack.kafka import dev_principal
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.processes import ManagedProcess
from deploy.devstack.stack import SERVICES, dev_tokens
from tests.conftest import free_port_block

# The CLI of the tree this script runs from (PYTHONPATH may point at another checkout, to
# run the same drill against an older commit).
BRUG = [sys.executable, "-c", "from deploy.cli import main; main()"]
ORGANISATION_TOPIC = topics.social_referrals("dynamo-amsterdam")
ADMIN = dev_principal("brug-admin")  # the drill runs its own (authenticating) dev stack


@dataclass
class GpSystem:
    """Submits at a steady rate; retries a 503 (or a dropped connection) with the same
    X-Request-ID, as a GP system's queue does."""

    base_url: str
    headers: dict[str, str]
    rate: float
    accepted: dict[str, int] = field(default_factory=dict)  # referral id -> HTTP status
    retries: int = 0
    finished_at: float = 0.0

    def run(self, count: int) -> None:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            for _ in range(count):
                started = time.monotonic()
                self._submit(client)
                time.sleep(max(0.0, 1 / self.rate - (time.monotonic() - started)))
        self.finished_at = time.monotonic()

    def _submit(self, client: httpx.Client) -> None:
        bundle, request_id = sample_bundle(), str(uuid.uuid4())
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                answer = client.post(
                    "/fhir", json=bundle, headers={**self.headers, "X-Request-ID": request_id}
                )
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code in (200, 201):
                self.accepted[referral_id_of(answer.json())] = answer.status_code
                return
            self.retries += 1
            time.sleep(0.5)
        raise RuntimeError("a submission was never accepted")


def referral_id_of(transaction_response: dict[str, Any]) -> str:
    location = transaction_response["entry"][0]["response"]["location"]
    return str(location.split("/")[1])  # ServiceRequest/<referral id>/_history/1


def brug_caught_up(bootstrap: str) -> bool:
    try:
        lags = [lag for lag in consumer_lag(bootstrap, ADMIN) if lag.group.startswith("brug-")]
    except Exception:  # the broker is still coming back
        return False
    return bool(lags) and all(lag.lag == 0 for lag in lags)


def created_ids_by_referral(bootstrap: str, keys: set[bytes]) -> dict[bytes, set[str]]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, **ADMIN.kafka_python()
    )
    try:
        partitions = [TopicPartition(ORGANISATION_TOPIC, p) for p in range(3)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)
        found: dict[bytes, set[str]] = {key: set() for key in keys}
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    event = json.loads(record.value)
                    if record.key in keys and event["type"] == "nl.brug.referral.created.v1":
                        found[record.key].add(event["id"])
        return found
    finally:
        consumer.close()


def parked_dead_letters(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(
                    text("SELECT count(*) FROM dead_letters WHERE state = 'parked'")
                ).scalar_one()
            )
    finally:
        engine.dispose()


def stack_environment(state_dir: Path) -> dict[str, str]:
    base = free_port_block(7 + len(SERVICES))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"KAFKA_BOOTSTRAP_SERVERS", "BRUG_KAFKA_BOOTSTRAP_SERVERS", "BRUG_DATABASE_URL"}
    }
    return env | {
        "BRUG_STATE_DIR": str(state_dir),
        "BRUG_KAFKA_PORT": str(base),
        "BRUG_KAFKA_CONTROLLER_PORT": str(base + 1),
        "BRUG_POSTGRES_PORT": str(base + 2),
        "BRUG_FHIR_PORT": str(base + 3),
        "BRUG_SOCIAL_PORT": str(base + 4),
        "BRUG_CONSOLE_PORT": str(base + 5),
        "BRUG_METRICS_PORT_BASE": str(base + 7),
    }


def brug(env: dict[str, str], *args: str) -> None:
    subprocess.run([*BRUG, *args], env=env, check=True, capture_output=True, timeout=300)


def drill(options: argparse.Namespace) -> dict[str, Any]:
    state_dir = Path(tempfile.mkdtemp(prefix="brug-failover-"))
    state_dir.chmod(0o755)
    env = stack_environment(state_dir)
    bootstrap = f"127.0.0.1:{env['BRUG_KAFKA_PORT']}"
    try:
        brug(env, "dev", "up")
        token = dev_tokens()["his-amsterdam-centrum"]
        gp = GpSystem(
            f"http://127.0.0.1:{env['BRUG_FHIR_PORT']}",
            {"Authorization": f"Bearer {token}"},
            options.rate,
        )
        submitter = threading.Thread(target=gp.run, args=(options.referrals,), daemon=True)
        submitter.start()
        victims = [name for name in options.kill.split(",") if name]
        started = time.monotonic()
        span = options.referrals / options.rate
        for turn, victim in enumerate(victims, start=1):
            # At fixed times, not counts: a stack that answers 503 meanwhile must not get
            # its kills later (and so a gentler drill) than one that keeps accepting.
            time.sleep(max(0.0, started + span * turn / (len(victims) + 1) - time.monotonic()))
            ManagedProcess(victim, state_dir).kill()
            print(f"  killed {victim} after {len(gp.accepted)} accepted", file=sys.stderr)
            brug(env, "dev", "up")
        restarted_at = time.monotonic()
        submitter.join(timeout=span + 300)
        deadline = time.monotonic() + 300
        while not brug_caught_up(bootstrap) and time.monotonic() < deadline:
            time.sleep(0.2)
        caught_up_at = time.monotonic()
        keys = {referral_id.encode() for referral_id in gp.accepted}
        created = created_ids_by_referral(bootstrap, keys)
        database = PostgresCluster(state_dir, int(env["BRUG_POSTGRES_PORT"])).url
        return {
            "referrals": options.referrals,
            "rate": options.rate,
            "killed": victims,
            "accepted": len(gp.accepted),
            "gp_retries": gp.retries,
            "lost": sum(1 for ids in created.values() if not ids),
            "delivered_twice": sum(1 for ids in created.values() if len(ids) > 1),
            "parked_dead_letters": parked_dead_letters(database),
            "caught_up_seconds_after_last_submission": round(caught_up_at - gp.finished_at, 1),
            "caught_up_seconds_after_last_restart": round(caught_up_at - restarted_at, 1),
            "last_submission_seconds": round(gp.finished_at - started, 1),
        }
    finally:
        subprocess.run([*BRUG, "dev", "down"], env=env, capture_output=True, check=False)
        shutil.rmtree(state_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--referrals", type=int, default=600)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--kill", default="router,kafka,feedback")
    print(json.dumps(drill(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
