from __future__ import annotations

from pydantic import Field

from adapters.runtime.settings import EdgeSettings


class MonitorApiSettings(EdgeSettings):
    monitor_api_host: str = "127.0.0.1"
    monitor_api_port: int = 8083
    monitor_api_profiles: tuple[str, ...] = Field(
        default=("k5", "cbs"),
        description="The disclosure profiles a municipality may ask for (the first is the "
        "default).",
    )
