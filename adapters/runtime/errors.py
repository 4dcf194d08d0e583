"""How a handler says a message can never succeed, so it is parked instead of retried."""

from __future__ import annotations

from contracts.events.deadletter import DeadLetterReason


class Unprocessable(Exception):
    """Retrying will not help: dead-letter this record with ``reason`` and move on.

    ``detail`` ends up on the dead-letter topic and in logs, so it must not carry
    personal data: name ids and codes, never names, addresses or free text.
    """

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DeadLetterReason = reason
        self.detail = detail
