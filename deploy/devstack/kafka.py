"""A real Apache Kafka (KRaft) broker from Maven Central jars, no Docker: one node
(``KafkaNode``) or a cluster of combined broker+controller nodes (``KafkaCluster``:
replication factor 3, ``min.insync.replicas=2``, every node a voter of a static quorum).

``mvn dependency:copy-dependencies`` on ``deploy/kafka/pom.xml`` fetches the broker
once into the cache; each stack then formats its own log directory and runs
``kafka.Kafka`` as a detached JVM on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from string import Template

from adapters.kafka_acls import ADMIN_PRINCIPAL
from adapters.kafka_admin import wait_until_reachable
from adapters.kafka_security import KafkaCredentials
from deploy.devstack.paths import DEPLOY_DIR, cache_dir
from deploy.devstack.processes import ManagedProcess, stop_all, wait_until_ports_free

POM = DEPLOY_DIR / "kafka" / "pom.xml"
LOG4J2_CONFIG = DEPLOY_DIR / "kafka" / "log4j2.properties"
SERVER_TEMPLATE = DEPLOY_DIR / "kafka" / "server.properties.template"
PLAINTEXT_LISTENERS = DEPLOY_DIR / "kafka" / "listeners-plaintext.template"
SASL_LISTENERS = DEPLOY_DIR / "kafka" / "listeners-sasl.template"
DEV_CREDENTIALS = DEPLOY_DIR / "kafka" / "dev-credentials.txt"
JVM_OPTIONS = ("-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-Djava.awt.headless=true")
# Once the JVM has exited its listeners are closed: the ports free at once in practice.
PORTS_FREE_AFTER_STOP_SECONDS = 10.0


def kafka_version() -> str:
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise RuntimeError(f"{POM} does not pin <kafka.version>")
    return match.group(1)


def ensure_jars() -> Path:
    """Fetch the broker jars unless the cache has them; return the jar folder."""
    # Keyed by the pom's content, so a changed pom fetches afresh instead of mixing jars.
    pom_digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    libs = cache_dir() / f"kafka-{kafka_version()}-{pom_digest}" / "libs"
    complete_marker = libs / ".complete"
    if complete_marker.exists():
        return libs
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise RuntimeError("Java 17+ and Maven are needed to fetch Kafka (apt-get install maven)")
    libs.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}",
            f"-Dmaven.repo.local={cache_dir() / 'm2'}",
            "-DincludeScope=runtime",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"fetching Kafka jars failed:\n{result.stdout}{result.stderr}")
    complete_marker.touch()
    return libs


def dev_credentials() -> dict[str, str]:
    """principal -> password of the dev stack's Kafka users (``DEV_CREDENTIALS``)."""
    lines = DEV_CREDENTIALS.read_text().splitlines()
    pairs = (line.split("\t") for line in lines if line and not line.startswith("#"))
    return {principal: password for principal, password in pairs}


def dev_principal(principal: str) -> KafkaCredentials:
    """The dev stack's credentials of one principal."""
    return KafkaCredentials.scram(principal, dev_credentials()[principal])


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller whose data lives in ``state_dir/<name>``.

    ``secured``: SASL/SCRAM with ACLs, the users of ``DEV_CREDENTIALS`` (the dev stack);
    otherwise PLAINTEXT for anyone (the test suite's shared broker). Alone (``voters``
    empty) it is its own standalone quorum with replication factor 1; as a cluster's node
    it is ``node_id`` among ``voters`` (``id@host:controller_port``), with the cluster's id."""

    state_dir: Path
    port: int
    controller_port: int
    secured: bool = False
    node_id: int = 1
    voters: str = ""
    cluster_id: str = ""
    name: str = "kafka"

    @property
    def admin(self) -> KafkaCredentials:
        """The super user's credentials (anonymous on a PLAINTEXT node)."""
        return dev_principal(ADMIN_PRINCIPAL) if self.secured else KafkaCredentials()

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def home(self) -> Path:
        return self.state_dir / self.name

    @property
    def process(self) -> ManagedProcess:
        return ManagedProcess(self.name, self.state_dir)

    def start(self, timeout: float = 90.0) -> None:
        """Start the broker (formatting storage on first use) and wait until it answers."""
        self.launch()
        self._wait_until_answering(timeout)

    def launch(self) -> None:
        """Start the JVM (formatting storage on first use) without waiting for it: a
        cluster's nodes answer only once a quorum of them runs."""
        libs = ensure_jars()
        config = self._write_config()
        if not (self.home / "data" / "meta.properties").exists():
            self._format_storage(libs, config)
        self.process.start(
            self._java(libs, "kafka.Kafka", str(config)), env=_java_env(), cwd=self.home
        )

    def stop(self) -> bool:
        """Stop the broker; return (True if it ran) once it has exited and its ports are free."""
        # A controlled shutdown flushes the log; 30 s is generous for a dev broker.
        stopped = self.process.stop(timeout=30.0)
        if stopped:
            wait_until_ports_free(
                {self.port: "Kafka", self.controller_port: "Kafka controller"},
                PORTS_FREE_AFTER_STOP_SECONDS,
            )
        return stopped

    def _wait_until_answering(self, timeout: float) -> None:
        """Until the broker answers; at once, showing the end of its log, if it exits."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                wait_until_reachable(self.bootstrap_servers, timeout=2.0, credentials=self.admin)
                return
            except TimeoutError as error:
                if not self.process.is_running():
                    raise RuntimeError(f"Kafka exited while starting; {self._log_end()}") from error
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{error}; {self._log_end()}") from error

    def _log_end(self) -> str:
        tail = "\n".join(f"    {line}" for line in self.process.log_tail(30).splitlines())
        return f"the end of {self.process.log_file}:\n{tail}"

    def _write_config(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "server.properties"
        listeners = SASL_LISTENERS if self.secured else PLAINTEXT_LISTENERS
        template = Template(SERVER_TEMPLATE.read_text() + listeners.read_text())
        passwords = dev_credentials()
        quorum = (
            f"controller.quorum.voters={self.voters}"
            if self.voters
            else f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}"
        )
        replication = 3 if self.voters else 1
        config.write_text(
            template.substitute(
                node_id=self.node_id,
                quorum=quorum,
                replication_factor=replication,
                min_isr=min(2, replication),
                port=self.port,
                controller_port=self.controller_port,
                log_dir=self.home / "data",
                admin_user=ADMIN_PRINCIPAL,
                admin_password=passwords[ADMIN_PRINCIPAL],
                controller_password=passwords["controller"],
            )
        )
        return config

    def _format_storage(self, libs: Path, config: Path) -> None:
        cluster_id = self.cluster_id or _kafka_uuid()
        argv = self._java(libs, "kafka.tools.StorageTool", "format")
        if not self.voters:
            argv.append("--standalone")
        # "--cluster-id=<id>": a base64 id may start with "-", which argparse takes for an option.
        argv += [f"--cluster-id={cluster_id}", "--config", str(config), "--ignore-formatted"]
        if self.secured:  # the SCRAM users exist from the first start (KIP-900)
            for principal, password in dev_credentials().items():
                if principal != "controller":
                    argv += ["--add-scram", f"SCRAM-SHA-512=[name={principal},password={password}]"]
        result = subprocess.run(argv, env=_java_env(), capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")

    @staticmethod
    def _java(libs: Path, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}",
            "-cp",
            f"{libs}/*",
            main_class,
            *args,
        ]


@dataclass(frozen=True)
class KafkaCluster:
    """``size`` nodes, node *i* (from 1) on ``port + 2(i-1)`` with its controller on
    ``controller_port + 2(i-1)`` and its data in ``state_dir/kafka-<i>``; the cluster id is
    kept in ``state_dir/kafka-cluster-id`` so each node is formatted into the same cluster."""

    state_dir: Path
    port: int
    controller_port: int
    size: int = 3
    secured: bool = True

    @property
    def nodes(self) -> list[KafkaNode]:
        voters = ",".join(
            f"{i}@127.0.0.1:{self.controller_port + 2 * (i - 1)}" for i in range(1, self.size + 1)
        )
        return [
            KafkaNode(
                self.state_dir,
                self.port + 2 * (i - 1),
                self.controller_port + 2 * (i - 1),
                secured=self.secured,
                node_id=i,
                voters=voters,
                cluster_id=self._cluster_id(),
                name=f"kafka-{i}",
            )
            for i in range(1, self.size + 1)
        ]

    @property
    def admin(self) -> KafkaCredentials:
        return self.nodes[0].admin

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def process(self) -> ManagedProcess:
        """The first node's (``brug dev status`` lists every node)."""
        return self.nodes[0].process

    def start(self, timeout: float = 120.0) -> None:
        """Start every node not running, then wait until the cluster answers."""
        for node in self.nodes:
            node.launch()
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            node._wait_until_answering(max(1.0, deadline - time.monotonic()))

    def stop(self) -> bool:
        """Stop every node at once; True if any ran."""
        nodes = self.nodes
        stopped = stop_all([node.process for node in nodes], grace=30.0)
        ports = {node.port: f"{node.name}" for node in nodes}
        ports |= {node.controller_port: f"{node.name} controller" for node in nodes}
        wait_until_ports_free(ports, PORTS_FREE_AFTER_STOP_SECONDS)
        return bool(stopped)

    def _cluster_id(self) -> str:
        path = self.state_dir / "kafka-cluster-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_kafka_uuid())
        return path.read_text().strip()


def _kafka_uuid() -> str:
    """A cluster id in Kafka's format: a random UUID, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def _java_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("JAVA_TOOL_OPTIONS", None)
    return env
