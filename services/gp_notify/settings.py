from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class NotifySettings(ServiceSettings):
    fhir_base_url: str = Field(
        default="http://127.0.0.1:8080/fhir",
        description="The FHIR base URL GP systems use: focus and subscription URLs start with it.",
    )
    notify_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often handshakes and heartbeats are looked for."
    )
    notify_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long one POST to a GP endpoint may take."
    )
    notify_attempts: int = Field(
        default=3, ge=1, description="Quick attempts per notification before status error."
    )
    notify_retry_seconds: float = Field(
        default=0.5, ge=0, description="Pause between those attempts (doubles each time)."
    )
    notify_workers: int = Field(
        default=3, ge=1, description="Consumers per change topic; useful up to its partitions."
    )
