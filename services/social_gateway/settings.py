from __future__ import annotations

from pydantic import Field

from adapters.runtime.settings import EdgeSettings


class SocialGatewaySettings(EdgeSettings):
    social_host: str = "127.0.0.1"
    social_port: int = 8081
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Larger request bodies get a 413, unread."
    )
    details_grace_after_end_seconds: float = Field(
        default=0.0,
        ge=0,
        description="How long the details stay readable after a referral ended (completed, "
        "declined, unreachable); 0: not at all. A withdrawal ends access at once.",
    )
