"""The FHIR-aware fuzzer at length: mutated sample Bundles (``tests/fuzzing.py``, the
strategy the CI test uses for its 500) posted to the FHIR edge in-process, the real
PostgreSQL behind. Counts the answers by status; any 5xx is printed with its body's start.

    .venv/bin/python -m bench.fuzz_intake [--cases 10000] [--seed 12] [--database-url URL]

Without ``--database-url`` (or ``BRUG_DATABASE_URL``) it starts a PostgreSQL of its own in a
throw-away folder on a free loopback port, migrated, and stops it afterwards. No Kafka: the
edge's 201 is the ledger's commit. Exits 1 when any case got a 5xx.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings

from adapters.database import migrate
from deploy.demo import SAMPLE_GP_CLIENT
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.stack import dev_tokens
from services.fhir_gateway.app import create_app
from services.fhir_gateway.settings import GatewaySettings
from tests.conftest import free_port
from tests.fuzzing import bundle_bodies


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        migrate(url)
        yield url
        return
    state = Path(tempfile.mkdtemp(prefix="brug-fuzz-"))
    cluster = PostgresCluster(state, free_port())
    cluster.start()
    try:
        migrate(cluster.url)
        yield cluster.url
    finally:
        cluster.stop()
        shutil.rmtree(state, ignore_errors=True)


def fuzz(database_url: str, cases: int, seed_value: int) -> tuple[dict[str, object], list[bytes]]:
    """The figures, and the body of every case that got a 5xx."""
    app = create_app(
        GatewaySettings(
            database_url=database_url,
            kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",  # never used
            log_level="WARNING",
            allow_static_tokens=True,
            rate_limit="100000/second",  # one client, as fast as the fuzzer goes
        )
    )
    client = TestClient(app, raise_server_exceptions=False)
    headers = {
        "Authorization": f"Bearer {dev_tokens()[SAMPLE_GP_CLIENT]}",
        "Content-Type": "application/fhir+json",
    }
    statuses: Counter[int] = Counter()
    server_errors: list[bytes] = []

    @seed(seed_value)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # counting, not shrinking
        suppress_health_check=list(HealthCheck),
    )
    @given(body=bundle_bodies())
    def one(body: bytes) -> None:
        answer = client.post("/fhir", content=body, headers=headers)
        statuses[answer.status_code] += 1
        if answer.status_code >= 500:
            server_errors.append(body)

    started = time.monotonic()
    one()
    seconds = time.monotonic() - started
    return {
        "cases": sum(statuses.values()),
        "server_errors": sum(n for status, n in statuses.items() if status >= 500),
        "seconds": round(seconds, 1),
        "cases_per_second": round(sum(statuses.values()) / seconds, 1),
        "by_status": dict(sorted(statuses.items())),
        "first_server_errors": [
            body[:200].decode("utf-8", "backslashreplace") for body in server_errors[:5]
        ],
    }, server_errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--database-url", default=os.environ.get("BRUG_DATABASE_URL"))
    parser.add_argument(
        "--keep-failures", type=Path, help="a folder to write the body of every 5xx case to"
    )
    arguments = parser.parse_args()
    with database(arguments.database_url) as url:
        report, bodies = fuzz(url, arguments.cases, arguments.seed)
    if arguments.keep_failures:  # to replay each one
        for index, body in enumerate(bodies):
            (arguments.keep_failures / f"server-error-{index}.json").write_bytes(body)
    print(json.dumps(report, indent=2))
    sys.exit(1 if report["server_errors"] else 0)


if __name__ == "__main__":
    main()
