"""Real infrastructure for the integration tests: Apache Kafka and PostgreSQL.

Order of preference, per component:
- ``KAFKA_BOOTSTRAP_SERVERS`` / ``BRUG_DATABASE_URL``: an existing cluster/server;
- Kafka only: testcontainers' Kafka container where a Docker engine answers;
- otherwise the project's own jar-based KRaft node and PostgreSQL cluster, started
  here on free ports in a throw-away folder and stopped at the end of the session.
Nothing is started unless a test asks for it: ``pytest tests/unit -m "not integration"``
needs neither (the in-process handler tests in tests/unit/handlers use a real PostgreSQL).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.clients import load_clients
from adapters.database import make_engine, migrate, sqlalchemy_url
from adapters.kafka_acls import acl_plan, apply_acls
from adapters.kafka_security import KafkaCredentials
from adapters.sealing import DEV_DEAD_LETTER_KEYS
from deploy.devstack.kafka import KafkaNode
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.provision import create_topics
from deploy.devstack.stack import DEFAULT_CLIENTS, DEFAULT_DIRECTORY

# The suite's clients use the registry's static tokens (a dev setting, off by default) and
# call far faster than any one client system may; tests of either set their own.
os.environ.setdefault("BRUG_ALLOW_STATIC_TOKENS", "true")
os.environ.setdefault("BRUG_RATE_LIMIT", "100000/second")
# Dead letters are kept sealed (adapters/sealing.py): the suite, the CLI it runs in-process
# and the stacks it starts use the dev key.
os.environ.setdefault("BRUG_DEAD_LETTER_KEYS", DEV_DEAD_LETTER_KEYS)


@pytest.hookimpl(optionalhook=True)  # without xdist (-p no:xdist) there is no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Units of work for ``pytest -n`` (deploy/test.sh runs two workers): the end-to-end
    tests share one running stack, so they stay together on one worker; any other module
    stays whole, so its module fixtures (a stack, a broker) start once.

    A scheduler rather than ``xdist_group`` marks: on pytest 9.2 xdist 3.8 can no longer
    write the group into the node id, and the marks silently spread one module's tests
    over both workers, each starting its own stack."""
    from xdist.scheduler import LoadScopeScheduling

    class OneStackPerUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "tests/e2e" if path.startswith("tests/e2e/") else path

    return OneStackPerUnit(config, log)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below Linux's ephemeral range
    (32768+): a neighbour of a ``free_port()`` may be any connection's local port, or one
    in TIME_WAIT after another stack just stopped, and then a service cannot bind it."""
    for base in random.sample(range(20000, 32000, count), 200):
        if all(_bindable(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports below 32000")


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _docker_engine_available() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False)
    return result.returncode == 0


@pytest.fixture(scope="session")
def infrastructure_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: that is mode 0700, and PostgreSQL runs as another user.
    folder = Path(tempfile.mkdtemp(prefix="brug-tests-"))
    folder.chmod(0o755)
    yield folder
    if not os.environ.get("BRUG_KEEP_TEST_STATE"):  # keep the logs to read after a failure
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(infrastructure_dir: Path) -> Iterator[str]:
    if external := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield external
    elif _docker_engine_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as container:
            yield container.get_bootstrap_server()
    else:
        # Authenticating, with the dev stack's users and ACLs: the tests themselves connect
        # as its super user (through the environment, as every Brug client reads it), the
        # end-to-end stack's services each as their own principal.
        node = KafkaNode(infrastructure_dir, free_port(), free_port(), secured=True)
        node.start()
        try:
            with pytest.MonkeyPatch.context() as environment:
                for name, value in node.admin.environment().items():
                    environment.setenv(name, value)
                yield node.bootstrap_servers
        finally:
            node.stop()


@pytest.fixture(scope="session")
def kafka_topics(kafka_bootstrap: str) -> str:
    """The broker with every topic of the sample directory created (and, where it
    authenticates, every principal's ACLs applied)."""
    credentials = KafkaCredentials()
    create_topics(kafka_bootstrap, DEFAULT_DIRECTORY, DEFAULT_CLIENTS, credentials)
    if credentials.authenticates:
        apply_acls(kafka_bootstrap, acl_plan(load_clients(DEFAULT_CLIENTS)), credentials)
    return kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(infrastructure_dir: Path) -> Iterator[str]:
    if external := os.environ.get("BRUG_DATABASE_URL"):
        migrate(external)
        yield external
        return
    cluster = PostgresCluster(infrastructure_dir, free_port())
    cluster.start()
    try:
        migrate(cluster.url)
        yield cluster.url
    finally:
        with contextlib.suppress(RuntimeError):
            cluster.stop()


@contextlib.contextmanager
def database_of_its_own(database_url: str, prefix: str) -> Iterator[str]:
    """A fresh, migrated database on the session's server, dropped afterwards: no other
    test's relay or delivery loop may publish, claim or purge the rows a test asserts on."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    server = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(sqlalchemy_url(database_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    try:
        migrate(rendered)
        yield rendered
    finally:
        with server.connect() as connection:
            connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        server.dispose()
