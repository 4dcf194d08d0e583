"""Settings for every service: environment variables with the ``BRUG_`` prefix."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.kafka_security import KafkaCredentials
from adapters.pseudonyms import DEV_PSEUDONYM_KEY
from adapters.sealing import Sealer

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy"


class ServiceSettings(BaseSettings):
    """What every service needs; a service subclasses it for its own settings."""

    model_config = SettingsConfigDict(env_prefix="BRUG_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        # The plain name is what Kafka tooling and testcontainers users expect.
        validation_alias=AliasChoices("BRUG_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    # Who this service is to Kafka (BRUG_KAFKA_USERNAME, …; see adapters/kafka_security.py).
    kafka_credentials: KafkaCredentials = Field(default_factory=KafkaCredentials)
    # How long topics carrying personal data keep records (applied by `brug setup`).
    gp_inbound_retention_hours: float = Field(default=6, gt=0)
    dead_letter_retention_days: float = Field(default=3, gt=0)
    status_retention_days: float = Field(default=3, gt=0)
    # The dev stack's cluster (deploy/devstack/postgres.py); engines connect lazily.
    database_url: str = "postgresql+psycopg://brug:brug@127.0.0.1:15432/brug"
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    max_handler_attempts: int = Field(
        default=5, ge=1, description="Failures of one record before it is dead-lettered."
    )
    graceful_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long shutdown waits for in-flight messages."
    )
    directory_path: Path = Field(
        default=DEPLOY_DIR / "directory" / "sample.json",
        description="The welfare directory: organisations and the municipalities they serve.",
    )
    postcode_table_path: Path = Field(
        default=DEPLOY_DIR / "directory" / "pc4-municipality.sample.csv",
        description="PC4 -> municipality table (import CBS's with `brug directory import-cbs`).",
    )
    clients_path: Path = Field(
        default=DEPLOY_DIR / "clients" / "dev.json",
        description="Client systems allowed at the HTTP edges, with hashed bearer tokens.",
    )
    details_base_url: str = Field(
        default="http://127.0.0.1:8081/social/v1/referrals/",
        description="Where case systems fetch a referral's details; the id is appended.",
    )
    metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Serve Prometheus /metrics on this port; 0 (the default) serves none, "
        "so several services on one host never collide by accident (the dev stack sets one "
        "per service from 9180).",
    )
    http_reuse_port: bool = Field(
        default=False,
        description="Bind the HTTP port with SO_REUSEPORT, so several replicas on one host "
        "share it (the dev stack's --replicas; adapters/runtime/serving.py).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface for /metrics (0.0.0.0 in containers)."
    )
    trace_dir: Path | None = Field(
        default=None,
        description="Append finished spans as JSON lines to <dir>/<service>.jsonl; unset "
        "exports none (trace ids still reach logs and propagate).",
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(DEV_PSEUDONYM_KEY),
        description="HMAC key of the BSN pseudonym in the audit trail (adapters/pseudonyms.py); "
        "the default is for development only.",
    )
    dead_letter_keys: SecretStr | None = Field(
        default=None,
        description="AES-GCM keys that seal dead letters' originals at rest, kid:<base64 of 32 "
        "bytes>, comma-separated, newest first: the first seals, all open (rotation; "
        "adapters/sealing.py). Required by the console; the dev stack sets a dev key.",
    )

    def dead_letter_sealer(self) -> Sealer:
        keys = self.dead_letter_keys
        return Sealer.parse(None if keys is None else keys.get_secret_value())

    def topic_retention(self) -> dict[str, timedelta]:
        """These settings as ``contracts.topics.all_topics``' retention keywords."""
        return {
            "gp_inbound_retention": timedelta(hours=self.gp_inbound_retention_hours),
            "dead_letter_retention": timedelta(days=self.dead_letter_retention_days),
            "status_retention": timedelta(days=self.status_retention_days),
        }


class EdgeSettings(ServiceSettings):
    """What both HTTP edges need to know who is calling (``adapters/smart.py``) and how
    often each client may."""

    allow_static_tokens: bool = Field(
        default=False,
        description="Development only: also accept the registry's static bearer tokens "
        "(full scopes of the client's kind). Off, only SMART access tokens are accepted.",
    )
    token_signing_key_file: Path | None = Field(
        default=None,
        description="PEM private key (EC P-256/P-384 or RSA) that signs and verifies access "
        "tokens; unset: no token is issued or accepted. The dev stack uses "
        "deploy/clients/dev-token-signing-key.pem (dev only: its private key is public).",
    )
    token_issuer: str = Field(
        default="brug", description="iss and aud of the access tokens; the same on both edges."
    )
    rate_limit: str = Field(
        default="200/second;6000/minute",
        description="Requests per authenticated client (limits' notation, moving windows, "
        "in this process's memory: each replica counts on its own).",
    )
    token_rate_limit: str = Field(
        default="10/second;120/minute",
        description="Token requests per asserted client id (or source address).",
    )
