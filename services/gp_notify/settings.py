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
        default=3, ge=1, description="Quick attempts per notification before it is retried later."
    )
    notify_retry_seconds: float = Field(
        default=0.5, ge=0, description="Pause between those attempts (doubles each time)."
    )
    notify_backoff_base_seconds: float = Field(
        default=30.0, gt=0, description="First wait before a failed notification is retried."
    )
    notify_backoff_cap_seconds: float = Field(
        default=3600.0, gt=0, description="Longest wait between retries (the wait doubles)."
    )
    notify_give_up_seconds: float = Field(
        default=86400.0, gt=0, description="How long an endpoint may fail before status error."
    )
    notify_events_keep_days: float = Field(
        default=30.0, gt=0, description="How long $events can return an event."
    )
    notify_workers: int = Field(
        default=3, ge=1, description="Consumers per change topic; useful up to its partitions."
    )
