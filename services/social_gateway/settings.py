from __future__ import annotations

from pydantic import Field

from adapters.runtime import ServiceSettings


class SocialGatewaySettings(ServiceSettings):
    social_host: str = "127.0.0.1"
    social_port: int = 8081
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger request bodies get a 413, unread."
    )
