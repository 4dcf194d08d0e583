"""The record parked on the dead-letter topic when a message cannot be processed."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from contracts.cloudevents import EventData

DeadLetterReason = Literal[
    "invalid-payload",  # not JSON, or not the contract the topic promises
    "unroutable",  # no organisation serves the referral's municipality
    "gave-up",  # a handler kept failing; the record is parked instead of blocking its partition
    "undeliverable",  # a webhook kept failing past the retry window
    "refused",  # it disagrees with the ledger: forged, or sent by a party it is not about
]


class DeadLetter(EventData):
    """Everything an operator needs to understand and replay a failed record."""

    EVENT_TYPE: ClassVar[str] = "nl.brug.deadletter.v1"

    reason: DeadLetterReason
    detail: str = Field(max_length=2000, description="Why it failed, without personal data.")
    service: str
    original_topic: str
    original_partition: int
    original_offset: int
    original_key: str | None = None
    original_value: str = Field(description="The record's value as received (UTF-8, lossless).")
    original_headers: dict[str, str] = Field(default_factory=dict)
    attempts: int = Field(ge=1)
    failed_at: datetime

    def subject(self) -> str:
        return f"{self.original_topic}/{self.original_partition}/{self.original_offset}"
