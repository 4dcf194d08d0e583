from __future__ import annotations

from adapters.runtime import ServiceSettings


class FeedbackSettings(ServiceSettings):
    """The feedback service needs only the shared settings (database, Kafka)."""
