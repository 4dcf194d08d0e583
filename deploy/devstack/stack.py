"""The whole local stack: Kafka, PostgreSQL and every service, as processes on this machine.

``KAFKA_BOOTSTRAP_SERVERS`` / ``BRUG_DATABASE_URL`` point at existing infrastructure
instead; then the stack starts only the services.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from adapters.database import database_health
from adapters.kafka_admin import broker_health
from deploy.devstack.kafka import KafkaNode
from deploy.devstack.paths import DEPLOY_DIR, REPO_ROOT
from deploy.devstack.postgres import PostgresCluster
from deploy.devstack.processes import ManagedProcess
from deploy.devstack.provision import provision

# Each service is a module run with ``python -m``; add new services here.
SERVICES: tuple[str, ...] = ("router",)
SERVICE_READY_MARKER = "started successfully"
DEFAULT_DIRECTORY = DEPLOY_DIR / "directory" / "sample.json"


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
    external_kafka: str | None = None
    external_database: str | None = None
    directory_path: Path = DEFAULT_DIRECTORY

    @classmethod
    def from_environment(cls, state_dir: Path) -> StackConfig:
        env = os.environ
        return cls(
            state_dir=state_dir,
            kafka_port=int(env.get("BRUG_KAFKA_PORT", 19092)),
            kafka_controller_port=int(env.get("BRUG_KAFKA_CONTROLLER_PORT", 19093)),
            postgres_port=int(env.get("BRUG_POSTGRES_PORT", 15432)),
            external_kafka=env.get("KAFKA_BOOTSTRAP_SERVERS")
            or env.get("BRUG_KAFKA_BOOTSTRAP_SERVERS"),
            external_database=env.get("BRUG_DATABASE_URL"),
            directory_path=Path(env.get("BRUG_DIRECTORY_PATH", DEFAULT_DIRECTORY)),
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

    def service_process(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, self.config.state_dir)

    def up_infrastructure(self) -> None:
        """Kafka and PostgreSQL up, schema migrated, topics created; idempotent."""
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        if self.config.external_kafka is None:
            self.kafka.start()
        if self.config.external_database is None:
            self.postgres.start()
        provision(self.bootstrap_servers, self.database_url, self.config.directory_path)
        self._write_connection_file()

    def up(self, timeout: float = 60.0) -> None:
        self.up_infrastructure()
        self.start_services(timeout)

    def start_services(self, timeout: float = 60.0) -> None:
        """Start every service that is not running and wait until each consumes."""
        starting = [name for name in self.services if not self.service_process(name).is_running()]
        log_offsets = {name: self._log_size(name) for name in starting}
        for name in starting:
            self.service_process(name).start(
                [sys.executable, "-m", f"services.{name}"],
                env=self.service_environment(name),
                cwd=REPO_ROOT,
            )
        for name in starting:
            self._wait_until_serving(name, log_offsets[name], timeout)

    def down(self) -> list[str]:
        stopped = self.stop_services()
        if self.config.external_kafka is None and self.kafka.stop():
            stopped.append("kafka")
        if self.config.external_database is None and self.postgres.stop():
            stopped.append("postgres")
        return stopped

    def stop_services(self) -> list[str]:
        return [name for name in self.services if self.service_process(name).stop()]

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
        for name in self.services:
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
            **os.environ,
            "BRUG_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "BRUG_DATABASE_URL": self.database_url,
            "BRUG_DIRECTORY_PATH": str(self.config.directory_path),
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
