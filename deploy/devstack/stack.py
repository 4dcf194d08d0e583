"""The whole local stack: Kafka, PostgreSQL and every service, as processes on this machine.

``KAFKA_BOOTSTRAP_SERVERS`` / ``BRUG_DATABASE_URL`` point at existing infrastructure
instead; then the stack starts only the services.

``brokers`` > 1 runs a Kafka cluster (``KafkaCluster``: replication factor 3,
``min.insync.replicas=2``); ``replicas`` > 1 runs each service that many times: instance 1
keeps the service's name, instance *r* is ``<service>-<r>`` (its own log, pid file and
metrics port, ``REPLICA_METRICS_STRIDE`` further on); the HTTP services share their port
(``SO_REUSEPORT``), the others share the work through their consumer groups and the
ledger's claims. The layout is kept in ``<state>/layout.json``, so ``status`` and ``down``
from another shell see every instance.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adapters.database import database_health
from adapters.kafka_acls import service_principal
from adapters.kafka_admin import broker_health
from adapters.kafka_security import KafkaCredentials
from adapters.runtime.service import READY_LOG_LINE
from deploy.devstack.config import (
    DEFAULT_CLIENTS,
    DEFAULT_DIRECTORY,
    DEV_DEAD_LETTER_KEY,
    DEV_WEBHOOK_SECRETS,
    LAYOUT_FILE,
    REPLICA_METRICS_STRIDE,
    SERVICES,
    SIMULATED_ORGANISATIONS,
    StackConfig,
    dev_tokens,
)
from deploy.devstack.kafka import KafkaCluster, KafkaNode, dev_principal
from deploy.devstack.paths import DEPLOY_DIR, REPO_ROOT
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.processes import (
    ManagedProcess,
    accepts_connections,
    stop_all,
    wait_until_ports_free,
)
from deploy.devstack.provision import provision

SERVICE_READY_MARKER = READY_LOG_LINE
# Before starting a service, how long to wait for its ports to come free: longer than the
# 60 s Linux keeps a TIME_WAIT, which blocks a listener's bind (see ``port_is_free``).
PORTS_FREE_BEFORE_START_SECONDS = 70.0
# After a stop, the stopped processes are gone: their ports free at once in practice.
PORTS_FREE_AFTER_STOP_SECONDS = 10.0
# More than a service's graceful shutdown (BRUG_GRACEFUL_TIMEOUT_SECONDS, 15 s).
SERVICE_STOP_GRACE_SECONDS = 20.0
# Lines of a service's log an error about its start shows.
LOG_TAIL_LINES = 30

# What callers import from here (the tests, bench/, the CLI) beside the stack itself.
__all__ = [
    "DEFAULT_CLIENTS",
    "DEFAULT_DIRECTORY",
    "DEV_WEBHOOK_SECRETS",
    "LAYOUT_FILE",
    "SERVICES",
    "ComponentStatus",
    "DevStack",
    "StackConfig",
    "dev_tokens",
]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    healthy: bool
    detail: str
    pid: int | None = None
    log: str | None = None


@dataclass
class DevStack:
    config: StackConfig
    services: tuple[str, ...] = field(default=SERVICES)
    simulated_organisations: tuple[str, ...] = field(default=SIMULATED_ORGANISATIONS)

    @property
    def kafka(self) -> KafkaNode | KafkaCluster:
        c = self.config
        if c.brokers > 1:
            return KafkaCluster(c.state_dir, c.kafka_port, c.kafka_controller_port, c.brokers)
        return KafkaNode(c.state_dir, c.kafka_port, c.kafka_controller_port, secured=True)

    def instances(self) -> list[str]:
        """Every service process: ``router``, ``router-2``, … (``replicas`` of each)."""
        return [
            name if replica == 1 else f"{name}-{replica}"
            for name in self.services
            for replica in range(1, self.config.replicas + 1)
        ]

    def service_of(self, name: str) -> str | None:
        """The service an instance runs (``router-2`` -> ``router``); None for a simulator."""
        if name in self.services:
            return name
        base, _, replica = name.rpartition("-")
        return base if base in self.services and replica.isdigit() else None

    def replica_of(self, name: str) -> int:
        return 1 if name in self.services else int(name.rpartition("-")[2])

    def credentials_of(self, principal: str) -> KafkaCredentials:
        """How ``principal`` (a service's, a client id) connects: its dev SCRAM user on the
        stack's own broker; on an external one, whatever the environment says."""
        if self.config.external_kafka is None or self.config.kafka_dev_users:
            return dev_principal(principal)
        return KafkaCredentials()

    @property
    def admin_credentials(self) -> KafkaCredentials:
        return self.credentials_of("brug-admin")

    @property
    def postgres(self) -> PostgresCluster:
        return PostgresCluster(self.config.state_dir, self.config.postgres_port)

    @property
    def bootstrap_servers(self) -> str:
        return self.config.external_kafka or self.kafka.bootstrap_servers

    @property
    def database_url(self) -> str:
        return self.config.external_database or self.postgres.url

    @property
    def fhir_base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.fhir_port}/fhir"

    @property
    def social_base_url(self) -> str:
        return f"http://127.0.0.1:{self.config.social_port}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.config.console_port}"

    @property
    def trace_dir(self) -> Path:
        """Where every service appends its spans (``<service>.jsonl``)."""
        return self.config.state_dir / "traces"

    def metrics_port(self, name: str) -> int:
        if name in self.config.metrics_ports:
            return self.config.metrics_ports[name]
        service = self.service_of(name)
        assert service is not None, f"{name} is no service"
        further = REPLICA_METRICS_STRIDE * (self.replica_of(name) - 1)
        if service in self.config.metrics_ports:
            return self.config.metrics_ports[service] + further
        return self.config.metrics_port_base + self.services.index(service) + further

    def metrics_url(self, name: str) -> str:
        """Where service instance ``name`` (``router``, ``router-2``) serves Prometheus metrics."""
        return f"http://127.0.0.1:{self.metrics_port(name)}/metrics"

    def metrics_urls(self) -> dict[str, str]:
        return {name: self.metrics_url(name) for name in self.instances()}

    def service_process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.config.state_dir)

    def up_infrastructure(self) -> None:
        """Kafka and PostgreSQL up, schema migrated, topics created; idempotent."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self.config.external_kafka is None:
            self.kafka.start()
        if self.config.external_database is None:
            self.postgres.start()
        (self.config.state_dir / LAYOUT_FILE).write_text(
            json.dumps({"brokers": self.config.brokers, "replicas": self.config.replicas})
        )
        provision(
            self.bootstrap_servers,
            self.database_url,
            self.config.directory_path,
            self.config.clients_path,
            self.admin_credentials,
        )
        self._write_connection_file()

    def up(self, timeout: float = 60.0) -> None:
        self.up_infrastructure()
        self.start_services(timeout)

    def start_services(self, timeout: float = 60.0) -> None:
        """Start every service and simulator not running; wait until each is ready.

        Raises naming each service that exited or was not ready in ``timeout``, with the
        end of its log, so a CI run's output says why."""
        commands = self._commands()
        starting = [name for name in commands if not self.service_process(name).is_running()]
        # A port still held makes a service exit at once ("address already in use"):
        # right after another stack's `dev down` its processes may still be dying, and
        # its closed Kafka/PostgreSQL connections leave TIME_WAITs on ephemeral ports for
        # 60 s, where a metrics port (BRUG_METRICS_PORT_BASE + i) may fall. Wait those out.
        wait_until_ports_free(self._ports_of(starting), PORTS_FREE_BEFORE_START_SECONDS)
        log_offsets = {name: self._log_size(name) for name in starting}
        for name in starting:
            self.service_process(name).start(
                commands[name], env=self.service_environment(name), cwd=REPO_ROOT
            )
        deadline = time.monotonic() + timeout
        failures: list[str] = []
        for name in starting:
            try:
                self._wait_until_serving(name, log_offsets[name], deadline - time.monotonic())
            except RuntimeError as failure:
                failures.append(str(failure))
        if failures:
            # Half a stack left running would hold its ports and burn CPU behind a failed
            # test or CI step, with nobody to stop it.
            for name in starting:
                self.service_process(name).stop()
            heading = (
                f"{len(failures)} of {len(starting)} did not start (waited up to {timeout:.0f}s)"
            )
            raise RuntimeError(heading + ":\n" + "\n\n".join(failures))

    def case_file(self, organisation_id: str) -> Path:
        """What the simulated case system of ``organisation_id`` received and fetched."""
        return self.config.state_dir / "simulator" / f"{organisation_id}.jsonl"

    def _commands(self) -> dict[str, list[str]]:
        commands = {
            name: [sys.executable, "-m", f"services.{self.service_of(name)}"]
            for name in self.instances()
        }
        tokens = dev_tokens()
        for organisation in self.simulated_organisations:
            self.case_file(organisation).parent.mkdir(parents=True, exist_ok=True)
            commands[f"case-system-{organisation}"] = [
                sys.executable,
                "-m",
                "deploy.simulator",
                "--organisation",
                organisation,
                "--token",
                tokens[f"case-{organisation}"],
                "--bootstrap-servers",
                self.bootstrap_servers,
                "--case-file",
                str(self.case_file(organisation)),
            ]
        return commands

    def down(self) -> list[str]:
        """Stop the services, then Kafka and PostgreSQL; return what was stopped once every
        stopped process has exited and its ports are free (a next `dev up` can bind them)."""
        stopped = self.stop_services()
        if self.config.external_kafka is None and self.kafka.stop():
            stopped.append("kafka")
        if self.config.external_database is None and self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def stop_services(self) -> list[str]:
        """Stop every service and simulator at once (SIGTERM, SIGKILL after a grace period);
        return the stopped ones once they have exited and their ports are free."""
        names = set(self._commands()) | self._leftovers()
        processes = [self.service_process(name) for name in sorted(names)]
        stopped = [process.name for process in stop_all(processes, SERVICE_STOP_GRACE_SECONDS)]
        wait_until_ports_free(self._ports_of(stopped), PORTS_FREE_AFTER_STOP_SECONDS)
        return stopped

    def _leftovers(self) -> set[str]:
        """Services and simulators with a pid file that this layout does not name (a
        stack that ran with more replicas): ``down`` stops them too."""
        run = self.config.state_dir / "run"
        found = {path.stem for path in run.glob("*.pid")} if run.is_dir() else set()
        return {name for name in found if not name.startswith(("kafka", "postgres"))}

    def _http_ports(self) -> dict[str, int]:
        """The services that serve HTTP, and on which port (as service_environment says)."""
        c = self.config
        return {
            "fhir_gateway": c.fhir_port,
            "social_gateway": c.social_port,
            "console": c.console_port,
        }

    def _http_port_of(self, name: str) -> int | None:
        return self._http_ports().get(self.service_of(name) or name)

    def _ports_of(self, names: list[str]) -> dict[int, str]:
        """port -> what it is for, of every port the named services listen on (an HTTP
        port that a running instance outside ``names`` shares is not theirs alone)."""
        ports: dict[int, str] = {}
        for name in names:
            http_port = self._http_port_of(name)
            siblings = [
                other
                for other in self.instances()
                if self.service_of(other) == self.service_of(name) and other not in names
            ]
            shared = any(self.service_process(other).is_running() for other in siblings)
            if http_port is not None and not shared:
                ports[http_port] = f"{name} HTTP"
            if self.service_of(name) is not None and self.metrics_port(name) > 0:
                ports[self.metrics_port(name)] = f"{name} metrics"
        return ports

    def status(self) -> list[ComponentStatus]:
        kafka = broker_health(self.bootstrap_servers, self.admin_credentials)
        kafka_pid = None if self.config.external_kafka else self.kafka.process.pid()
        database_ok, database_detail = database_health(self.database_url)
        statuses = [
            ComponentStatus(
                "kafka", kafka.reachable, f"{self.bootstrap_servers}: {kafka.detail}", kafka_pid
            ),
            *(
                ComponentStatus(
                    node.name,
                    node.process.is_running(),
                    node.bootstrap_servers,
                    node.process.pid(),
                    str(node.process.log_file),
                )
                for node in (self.kafka.nodes if isinstance(self.kafka, KafkaCluster) else [])
                if self.config.external_kafka is None
            ),
            ComponentStatus(
                "postgres",
                database_ok,
                f"port {self.config.postgres_port}: {database_detail}"
                if not self.config.external_database
                else database_detail,
            ),
        ]
        for name in self._commands():
            process = self.service_process(name)
            pid = process.pid()
            statuses.append(
                ComponentStatus(
                    name,
                    pid is not None,
                    "running" if pid else "stopped",
                    pid,
                    str(process.log_file),
                )
            )
        return statuses

    def principal_of(self, name: str) -> str:
        """Who a service or simulator is to Kafka: ``brug-router``, ``case-dynamo-amsterdam``."""
        if name.startswith("case-system-"):
            return f"case-{name.removeprefix('case-system-')}"
        return service_principal(self.service_of(name) or name)

    def service_environment(self, name: str) -> dict[str, str]:
        credentials = self.credentials_of(self.principal_of(name))
        return {
            **DEV_WEBHOOK_SECRETS,
            **DEV_DEAD_LETTER_KEY,
            **os.environ,
            **(credentials.environment() if credentials.authenticates else {}),
            "BRUG_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BRUG_DATABASE_URL": self.database_url,
            "BRUG_DIRECTORY_PATH": str(self.config.directory_path),
            "BRUG_CLIENTS_PATH": str(self.config.clients_path),
            "BRUG_ALLOW_STATIC_TOKENS": "true",  # the dev tokens; SMART works beside them
            "BRUG_TOKEN_SIGNING_KEY_FILE": str(
                DEPLOY_DIR / "clients" / "dev-token-signing-key.pem"
            ),
            "BRUG_FHIR_PORT": str(self.config.fhir_port),
            "BRUG_FHIR_BASE_URL": self.fhir_base_url,
            "BRUG_SOCIAL_PORT": str(self.config.social_port),
            "BRUG_CONSOLE_PORT": str(self.config.console_port),
            "BRUG_DETAILS_BASE_URL": f"{self.social_base_url}/social/v1/referrals/",
            # Simulators are no services: "0" also overrides a port left in the shell.
            "BRUG_METRICS_PORT": str(self.metrics_port(name)) if self.service_of(name) else "0",
            "BRUG_HTTP_REUSE_PORT": "true" if self.config.replicas > 1 else "false",
            "BRUG_SERVICE_METRICS_URLS": json.dumps(self.metrics_urls()),
            "BRUG_TRACE_DIR": str(self.trace_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def _log_size(self, name: str) -> int:
        log_file = self.service_process(name).log_file
        return log_file.stat().st_size if log_file.exists() else 0

    def _wait_until_serving(self, name: str, log_offset: int, timeout: float) -> None:
        """Wait for the ready line in the log written since ``log_offset`` and, for an
        HTTP service, for its port: the gateways log it from their lifespan start-up,
        before uvicorn binds the port (and exits if it cannot)."""
        process = self.service_process(name)
        http_port = self._http_port_of(name)
        deadline = time.monotonic() + timeout
        # Checked at least once: a service waited for after another's timeout may be ready.
        while True:
            if not process.is_running():
                raise RuntimeError(self._start_failure(name, log_offset, _exited(process)))
            if self._logged_ready(process, log_offset) and (
                http_port is None or accepts_connections(http_port)
            ):
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        raise RuntimeError(self._start_failure(name, log_offset, "was not ready in time"))

    @staticmethod
    def _logged_ready(process: ManagedProcess, log_offset: int) -> bool:
        with process.log_file.open("rb") as log:
            log.seek(log_offset)
            return SERVICE_READY_MARKER.encode() in log.read()

    def _start_failure(self, name: str, log_offset: int, reason: str) -> str:
        process = self.service_process(name)
        tail = process.log_tail(LOG_TAIL_LINES, since=log_offset) or "(nothing logged)"
        indented = "\n".join(f"    {line}" for line in tail.splitlines())
        return f"service {name} {reason}; the end of {process.log_file}:\n{indented}"

    def _write_connection_file(self) -> None:
        """So other shells and tools find this stack without repeating the configuration."""
        details = {
            "bootstrap_servers": self.bootstrap_servers,
            "database_url": self.database_url,
            "config": {k: str(v) for k, v in asdict(self.config).items()},
        }
        (self.config.state_dir / "stack.json").write_text(json.dumps(details, indent=2))


def _exited(process: ManagedProcess) -> str:
    code = process.exit_code()
    if code is None:
        return "exited while starting"
    return f"exited while starting ({f'signal {-code}' if code < 0 else f'exit code {code}'})"
