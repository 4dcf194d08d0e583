"""The welfare directory file format: which organisation serves which municipality, and how
it receives referrals. Operators maintain the file; services validate it at start."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.events.referral import MUNICIPALITY_CODE_PATTERN
from contracts.topics import ORGANISATION_ID_PATTERN


class DeliveryChannel(StrEnum):
    KAFKA = "kafka"
    WEBHOOK = "webhook"


class ServiceLevels(BaseModel):
    """What the organisation agreed with its municipality; Brug raises an overdue event when
    a timer runs out. Working days skip weekends and Dutch public holidays; 0 means at once
    (useful to see the alarm in a test)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received_within_working_days: int = Field(default=1, ge=0, le=30)
    first_contact_within_working_days: int = Field(default=5, ge=0, le=60)


class WelfareOrganisation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=ORGANISATION_ID_PATTERN, description="Stable id, used in topic names.")
    name: str = Field(min_length=1)
    municipalities: list[str] = Field(min_length=1)
    delivery: DeliveryChannel = DeliveryChannel.KAFKA
    webhook_url: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="Where webhook delivery POSTs: https to a public address.",
    )
    allow_loopback_http: bool = Field(
        default=False,
        description="Development only: the webhook may be plain http on loopback.",
    )
    service_levels: ServiceLevels = Field(default_factory=ServiceLevels)
    webhook_secret_env: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="Environment variable holding the HMAC-SHA256 signing secret.",
    )

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> Self:
        if self.delivery is DeliveryChannel.WEBHOOK and not (
            self.webhook_url and self.webhook_secret_env
        ):
            raise ValueError(
                f"{self.id}: webhook delivery needs webhook_url and webhook_secret_env"
            )
        return self

    @model_validator(mode="after")
    def _webhook_is_https(self) -> Self:
        # The address rules themselves (public, resolved, pinned) apply at every send.
        if self.webhook_url and not (
            self.webhook_url.startswith("https://") or self.allow_loopback_http
        ):
            raise ValueError(f"{self.id}: webhook_url must be https")
        return self

    @model_validator(mode="after")
    def _municipality_codes(self) -> Self:
        bad = [c for c in self.municipalities if not re.fullmatch(MUNICIPALITY_CODE_PATTERN, c)]
        if bad:
            raise ValueError(f"not CBS municipality codes (GMxxxx): {bad}")
        return self


class WelfareDirectory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(min_length=1, description="Bumped by the operator on every change.")
    organisations: list[WelfareOrganisation] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_organisation_per_municipality(self) -> Self:
        seen_ids: set[str] = set()
        served_by: dict[str, str] = {}
        for organisation in self.organisations:
            if organisation.id in seen_ids:
                raise ValueError(f"organisation id {organisation.id!r} appears twice")
            seen_ids.add(organisation.id)
            for code in organisation.municipalities:
                if code in served_by:
                    raise ValueError(
                        f"{code} is served by both {served_by[code]!r} and {organisation.id!r}"
                    )
                served_by[code] = organisation.id
        return self

    def organisation_for(self, municipality_code: str) -> WelfareOrganisation | None:
        return next(
            (org for org in self.organisations if municipality_code in org.municipalities), None
        )

    def organisation(self, organisation_id: str) -> WelfareOrganisation | None:
        return next((org for org in self.organisations if org.id == organisation_id), None)
