from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class WebhookSettings(ServiceSettings):
    webhook_backoff_base_seconds: float = Field(default=30.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_age_seconds: float = Field(
        default=86400.0, gt=0, description="Retry at least this long, then park."
    )
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    details_grace_after_end_seconds: float = Field(
        default=0.0,
        ge=0,
        description="As the social gateway's: details are pushed after a referral ended "
        "only within this period; 0: not at all. A withdrawn referral's never.",
    )
