from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class RouterSettings(ServiceSettings):
    router_workers: int = Field(
        default=3, ge=1, description="Concurrent consumers; useful up to the partition count."
    )
