"""The console's settings (``BRUG_*``): where it listens, who may log in, how often it
looks at Kafka."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from adapters.ledger.retention import RetentionSettings
from adapters.runtime.settings import DEPLOY_DIR


class ConsoleSettings(RetentionSettings):  # it runs the retention sweep
    console_host: str = "127.0.0.1"
    console_port: int = 8082
    operators_path: Path = Field(
        default=DEPLOY_DIR / "operators" / "dev.json",
        description="Who may log in, with scrypt password hashes and roles.",
    )
    max_body_bytes: int = Field(
        default=65_536, gt=0, description="Larger request bodies get a 413, unread."
    )
    session_idle_minutes: int = Field(
        default=30, gt=0, description="A session ends after this long without a request."
    )
    session_lifetime_hours: int = Field(
        default=12, gt=0, description="A session ends this long after its login, in use or not."
    )
    login_window_minutes: int = Field(
        default=15, gt=0, description="How long a failed login counts towards a block."
    )
    login_failures_per_user: int = Field(
        default=5,
        gt=0,
        description="Failed logins for one user name within the window, from any address, "
        "that block that name for the rest of the window.",
    )
    login_failures_per_address: int = Field(
        default=20,
        gt=0,
        description="Failed logins from one source address within the window, across user "
        "names, that block that address for the rest of the window.",
    )
    secure_cookies: bool = Field(
        default=False, description="Mark cookies Secure; set true whenever served over TLS."
    )
    service_metrics_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Service name → its /metrics URL (JSON); health is read from there.",
    )
    flows_cache_seconds: float = Field(
        default=5.0, ge=0, description="How long flow figures are reused between page loads."
    )
    gauges_poll_seconds: float = Field(
        default=15.0, gt=0, description="How often lag and parked dead letters are exported."
    )
    console_kafka_side: bool = Field(
        default=True,
        description="Consume dead letters into the ledger and export the lag and parked "
        "gauges. Off only where no broker runs (the in-process tests); the pages still ask "
        "Kafka and say so when it does not answer.",
    )
