from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class FeedbackSettings(ServiceSettings):
    timer_poll_seconds: float = Field(
        default=30.0, gt=0, description="How often the service-level timers are checked."
    )
