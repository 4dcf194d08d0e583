from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class RelaySettings(ServiceSettings):
    relay_batch_size: int = Field(
        default=500, ge=1, description="Outbox rows published and confirmed together."
    )
    relay_poll_seconds: float = Field(
        default=1.0,
        gt=0,
        description="Fallback poll; the relay normally wakes on PostgreSQL NOTIFY at once.",
    )
    relay_keep_published_hours: float = Field(
        default=1.0, ge=0, description="How long published outbox rows stay for operators."
    )
