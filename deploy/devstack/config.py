"""What a dev stack is made of: its services, its settings (``StackConfig``, from the
environment and the last layout) and the dev credentials it hands out."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from adapters.sealing import DEV_DEAD_LETTER_KEYS
from deploy.devstack.paths import DEPLOY_DIR

# Each service is a module run with ``python -m``; add new services here.
SERVICES: tuple[str, ...] = (
    "router",
    "fhir_gateway",
    "social_gateway",
    "webhook_delivery",
    "feedback",
    "gp_notify",
    "console",
    "relay",
    "monitor",
)
# Signing secrets of the sample directory's webhook organisations, Standard Webhooks
# ``whsec_<base64>`` (dev only; set your own).
DEV_WEBHOOK_SECRETS = {
    "BRUG_WEBHOOK_SECRET_XTRA_ZOETERMEER": "whsec_YnJ1Zy1kZXYtd2ViaG9vay1rZXkteHRyYS16b2V0ZXJtZWVy"
}
# The key that seals dead letters' originals in the ledger (dev only: it is public).
DEV_DEAD_LETTER_KEY = {"BRUG_DEAD_LETTER_KEYS": DEV_DEAD_LETTER_KEYS}
# Reference case systems (deploy/simulator) the dev stack runs beside the services.
SIMULATED_ORGANISATIONS: tuple[str, ...] = ("dynamo-amsterdam", "welzijn-lelystad")
DEV_TOKENS = DEPLOY_DIR / "clients" / "dev-tokens.txt"
DEFAULT_DIRECTORY = DEPLOY_DIR / "directory" / "sample.json"
DEFAULT_CLIENTS = DEPLOY_DIR / "clients" / "dev.json"
DEFAULT_METRICS_PORT_BASE = 9180
# Instance r (from 1) of service i serves /metrics on metrics_port_base + i + stride * (r - 1).
REPLICA_METRICS_STRIDE = 50
LAYOUT_FILE = "layout.json"


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
    # The external broker has the dev stack's users (the test suite's): each service and
    # simulator connects as its own principal, not as the environment's.
    kafka_dev_users: bool = False
    external_database: str | None = None
    directory_path: Path = DEFAULT_DIRECTORY
    clients_path: Path = DEFAULT_CLIENTS
    # Service i of the stack serves /metrics on base + i; ``metrics_ports`` overrides per
    # service (the tests give every service a free port).
    metrics_port_base: int = DEFAULT_METRICS_PORT_BASE
    metrics_ports: Mapping[str, int] = field(default_factory=dict)
    # Kafka nodes (1, or a cluster of 3+) and instances of every service.
    brokers: int = 1
    replicas: int = 1

    @classmethod
    def from_environment(
        cls, state_dir: Path, *, brokers: int | None = None, replicas: int | None = None
    ) -> StackConfig:
        """The environment's settings; the layout as given, else as the last ``dev up``
        in ``state_dir`` left it (``layout.json``), else one broker and one instance."""
        env = os.environ
        saved = saved_layout(state_dir)
        return cls(
            brokers=brokers or int(env.get("BRUG_DEV_BROKERS", 0)) or saved.get("brokers", 1),
            replicas=replicas or int(env.get("BRUG_DEV_REPLICAS", 0)) or saved.get("replicas", 1),
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


def saved_layout(state_dir: Path) -> dict[str, int]:
    """The brokers and replicas the last ``dev up`` in ``state_dir`` ran with."""
    try:
        layout = json.loads((state_dir / LAYOUT_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {k: int(v) for k, v in layout.items() if k in ("brokers", "replicas")}


def dev_tokens() -> dict[str, str]:
    """client id -> development bearer token (deploy/clients/dev-tokens.txt)."""
    lines = DEV_TOKENS.read_text().splitlines()
    pairs = (line.split("\t") for line in lines if line and not line.startswith("#"))
    return {client_id: token for client_id, token in pairs}
