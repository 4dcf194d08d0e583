from __future__ import annotations

from adapters.runtime import ServiceSettings


class SocialGatewaySettings(ServiceSettings):
    social_host: str = "127.0.0.1"
    social_port: int = 8081
