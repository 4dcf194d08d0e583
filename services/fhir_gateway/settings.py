from __future__ import annotations

from pydantic import Field

from adapters.runtime.settings import EdgeSettings


class GatewaySettings(EdgeSettings):
    fhir_host: str = "127.0.0.1"
    fhir_port: int = 8080
    fhir_base_url: str = Field(
        default="http://127.0.0.1:8080/fhir", description="The FHIR base URL clients use."
    )
    max_body_bytes: int = Field(default=1_048_576, description="Larger requests get a 413.")
    max_subscriptions_per_client: int = Field(
        default=10, ge=1, description="Requested or active FHIR Subscriptions per GP system."
    )
    details_retention_days: int = Field(
        default=365, description="How long personal details are kept after submission."
    )
