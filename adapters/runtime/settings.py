"""Settings for every service: environment variables with the ``BRUG_`` prefix."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs; a service subclasses it for its own settings."""

    model_config = SettingsConfigDict(env_prefix="BRUG_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092",
        # The plain name is what Kafka tooling and testcontainers users expect.
        validation_alias=AliasChoices("BRUG_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    database_url: str | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    max_handler_attempts: int = Field(
        default=5, ge=1, description="Failures of one record before it is dead-lettered."
    )
    graceful_timeout_seconds: float = Field(
        default=15.0, gt=0, description="How long shutdown waits for in-flight messages."
    )
