from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class FeedbackSettings(ServiceSettings):
    timer_poll_seconds: float = Field(
        default=30.0, gt=0, description="How often the service-level timers are checked."
    )
    feedback_workers: int = Field(
        default=3, ge=1, description="Consumers per status topic; useful up to its partitions."
    )
