from __future__ import annotations

from adapters.runtime import ServiceSettings


class RouterSettings(ServiceSettings):
    """The router needs only the shared settings (directory, database, Kafka)."""
