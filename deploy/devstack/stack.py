"""The whole local stack: Kafka, PostgreSQL and every service, as processes on this machine.

``KAFKA_BOOTSTRAP_SERVERS`` / ``BRUG_DATABASE_URL`` point at existing infrastructure
instead; then the stack starts only the services.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adapters.database import database_health
from adapters.kafka_admin import broker_health
from adapters.runtime.service import READY_LOG_LINE
from deploy.devstack.kafka import KafkaNode
from deploy.devstack.paths import DEPLOY_DIR, REPO_ROOT
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.processes import ManagedProcess
from deploy.devstack.provision import provision

# Each service is a module run with ``python -m``; add new services here.
SERVICES: tuple[str, ...] = (
    "router",
    "fhir_gateway",
    "social_gateway",
    "webhook_delivery",
    "feedback",
    "gp_notify",
    "console",
)
# Signing secrets of the sample directory's webhook organisations (dev only; set your own).
DEV_WEBHOOK_SECRETS = {"BRUG_WEBHOOK_SECRET_XTRA_ZOETERMEER": "dev-webhook-secret-xtra"}
# Reference case systems (deploy/simulator) the dev stack runs beside the services.
SIMULATED_ORGANISATIONS: tuple[str, ...] = ("dynamo-amsterdam", "welzijn-lelystad")
DEV_TOKENS = DEPLOY_DIR / "clients" / "dev-tokens.txt"
SERVICE_READY_MARKER = READY_LOG_LINE
DEFAULT_DIRECTORY = DEPLOY_DIR / "directory" / "sample.json"
DEFAULT_CLIENTS = DEPLOY_DIR / "clients" / "dev.json"
DEFAULT_METRICS_PORT_BASE = 9180


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
    fhir_port: int = 8080
    social_port: int = 8081
    console_port: int = 8082
    external_kafka: str | None = None
    external_database: str | None = None
    directory_path: Path = DEFAULT_DIRECTORY
    clients_path: Path = DEFAULT_CLIENTS
    # Service i of the stack serves /metrics on base + i; ``metrics_ports`` overrides per
    # service (the tests give every service a free port).
    metrics_port_base: int = DEFAULT_METRICS_PORT_BASE
    metrics_ports: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, state_dir: Path) -> StackConfig:
        env = os.environ
        return cls(
            state_dir=state_dir,
            kafka_port=int(env.get("BRUG_KAFKA_PORT", 19092)),
            kafka_controller_port=int(env.get("BRUG_KAFKA_CONTROLLER_PORT", 19093)),
            postgres_port=int(env.get("BRUG_POSTGRES_PORT", 15432)),
            fhir_port=int(env.get("BRUG_FHIR_PORT", 8080)),
            social_port=int(env.get("BRUG_SOCIAL_PORT", 8081)),
            console_port=int(env.get("BRUG_CONSOLE_PORT", 8082)),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS")
            or env.get("BRUG_KAFKA_BOOTSTRAP_SERVERS"),
            external_database=env.get("BRUG_DATABASE_URL"),
            directory_path=Path(env.get("BRUG_DIRECTORY_PATH", DEFAULT_DIRECTORY)),
            clients_path=Path(env.get("BRUG_CLIENTS_PATH", DEFAULT_CLIENTS)),
            metrics_port_base=int(env.get("BRUG_METRICS_PORT_BASE", DEFAULT_METRICS_PORT_BASE)),
        )


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
    def kafka(self) -> KafkaNode:
        c = self.config
        return KafkaNode(c.state_dir, c.kafka_port, c.kafka_controller_port)

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
        return self.config.metrics_port_base + self.services.index(name)

    def metrics_url(self, name: str) -> str:
        """Where service ``name`` (as in ``SERVICES``) serves Prometheus metrics."""
        return f"http://127.0.0.1:{self.metrics_port(name)}/metrics"

    def metrics_urls(self) -> dict[str, str]:
        return {name: self.metrics_url(name) for name in self.services}

    def service_process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.config.state_dir)

    def up_infrastructure(self) -> None:
        """Kafka and PostgreSQL up, schema migrated, topics created; idempotent."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self.config.external_kafka is None:
            self.kafka.start()
        if self.config.external_database is None:
            self.postgres.start()
        provision(
            self.bootstrap_servers,
            self.database_url,
            self.config.directory_path,
            self.config.clients_path,
        )
        self._write_connection_file()

    def up(self, timeout: float = 60.0) -> None:
        self.up_infrastructure()
        self.start_services(timeout)

    def start_services(self, timeout: float = 60.0) -> None:
        """Start every service and simulator not running; wait until each is ready."""
        commands = self._commands()
        starting = [name for name in commands if not self.service_process(name).is_running()]
        log_offsets = {name: self._log_size(name) for name in starting}
        for name in starting:
            self.service_process(name).start(
                commands[name], env=self.service_environment(name), cwd=REPO_ROOT
            )
        for name in starting:
            self._wait_until_serving(name, log_offsets[name], timeout)

    def case_file(self, organisation_id: str) -> Path:
        """What the simulated case system of ``organisation_id`` received and fetched."""
        return self.config.state_dir / "simulator" / f"{organisation_id}.jsonl"

    def _commands(self) -> dict[str, list[str]]:
        commands = {name: [sys.executable, "-m", f"services.{name}"] for name in self.services}
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
        stopped = self.stop_services()
        if self.config.external_kafka is None and self.kafka.stop():
            stopped.append("kafka")
        if self.config.external_database is None and self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def stop_services(self) -> list[str]:
        return [name for name in self._commands() if self.service_process(name).stop()]

    def status(self) -> list[ComponentStatus]:
        kafka = broker_health(self.bootstrap_servers)
        kafka_pid = None if self.config.external_kafka else self.kafka.process.pid()
        database_ok, database_detail = database_health(self.database_url)
        statuses = [
            ComponentStatus(
                "kafka", kafka.reachable, f"{self.bootstrap_servers}: {kafka.detail}", kafka_pid
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

    def service_environment(self, name: str) -> dict[str, str]:
        return {
            **DEV_WEBHOOK_SECRETS,
            **os.environ,
            "BRUG_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BRUG_DATABASE_URL": self.database_url,
            "BRUG_DIRECTORY_PATH": str(self.config.directory_path),
            "BRUG_CLIENTS_PATH": str(self.config.clients_path),
            "BRUG_FHIR_PORT": str(self.config.fhir_port),
            "BRUG_FHIR_BASE_URL": self.fhir_base_url,
            "BRUG_SOCIAL_PORT": str(self.config.social_port),
            "BRUG_CONSOLE_PORT": str(self.config.console_port),
            "BRUG_DETAILS_BASE_URL": f"{self.social_base_url}/social/v1/referrals/",
            # Simulators are no services: "0" also overrides a port left in the shell.
            "BRUG_METRICS_PORT": str(self.metrics_port(name)) if name in self.services else "0",
            "BRUG_SERVICE_METRICS_URLS": json.dumps(self.metrics_urls()),
            "BRUG_TRACE_DIR": str(self.trace_dir),
            "PYTHONUNBUFFERED": "1",
        }

    def _log_size(self, name: str) -> int:
        log_file = self.service_process(name).log_file
        return log_file.stat().st_size if log_file.exists() else 0

    def _wait_until_serving(self, name: str, log_offset: int, timeout: float) -> None:
        """Wait for FastStream's startup line in the log written since ``log_offset``."""
        process = self.service_process(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not process.is_running():
                raise RuntimeError(f"service {name} exited; see {process.log_file}")
            with process.log_file.open("rb") as log:
                log.seek(log_offset)
                if SERVICE_READY_MARKER.encode() in log.read():
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"service {name} did not start in {timeout:.0f}s; see {process.log_file}"
        )

    def _write_connection_file(self) -> None:
        """So other shells and tools find this stack without repeating the configuration."""
        details = {
            "bootstrap_servers": self.bootstrap_servers,
            "database_url": self.database_url,
            "config": {k: str(v) for k, v in asdict(self.config).items()},
        }
        (self.config.state_dir / "stack.json").write_text(json.dumps(details, indent=2))


def dev_tokens() -> dict[str, str]:
    """client id -> development bearer token (deploy/clients/dev-tokens.txt)."""
    lines = DEV_TOKENS.read_text().splitlines()
    pairs = (line.split("\t") for line in lines if line and not line.startswith("#"))
    return {client_id: token for client_id, token in pairs}
