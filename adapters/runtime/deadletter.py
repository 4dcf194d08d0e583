"""Park what cannot be processed on the dead-letter topic, so nothing blocks and nothing is lost.

Decision per failed record:
- ``Unprocessable`` or a payload that does not match the contract: park at once.
- a transient failure (broker or database unreachable): retry with backoff, forever;
  parking would only move the outage's work onto an operator.
- anything else: retry up to ``max_attempts`` times, then park as ``gave-up``.
The record is committed only after it was handled or its dead letter was acknowledged.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from faststream import BaseMiddleware
from faststream.exceptions import HandlerException
from pydantic import ValidationError

from adapters.runtime.errors import Unprocessable
from adapters.runtime.metrics import DEAD_LETTERED
from contracts import topics
from contracts.cloudevents import CloudEvent
from contracts.events.deadletter import DeadLetter, DeadLetterReason

if TYPE_CHECKING:
    from faststream._internal.context.repository import ContextRepo
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

log = structlog.get_logger("brug.deadletter")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, ConnectionError)
MAX_BACKOFF_SECONDS = 30.0


def _is_transient(error: BaseException) -> bool:
    if isinstance(error, TRANSIENT_ERRORS):
        return True
    # Driver errors are matched by name so this module needs neither driver installed.
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"KafkaConnectionError", "OperationalError", "InterfaceError"})


class DeadLetterPolicy:
    """Broker middleware factory; remembers attempts per record across redeliveries."""

    def __init__(self, broker: KafkaBroker, service: str, max_attempts: int) -> None:
        self.broker = broker
        self.service = service
        self.max_attempts = max_attempts
        self.attempts: Counter[tuple[str, int, int]] = Counter()

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, context=context, policy=self)

    async def handle_failure(self, message: StreamMessage[Any], error: Exception) -> None:
        """Park the record (returns, so it is committed) or re-raise it for redelivery."""
        record = message.raw_message
        position = (record.topic, record.partition, record.offset)
        self.attempts[position] += 1
        attempts = self.attempts[position]
        verdict = self.verdict(error, attempts)
        if verdict is None:
            delay = min(MAX_BACKOFF_SECONDS, 0.2 * 2 ** min(attempts, 10))
            _record_log(record).warning(
                "handling failed, will retry",
                attempt=attempts,
                error_type=type(error).__name__,
                retry_in_seconds=delay,
            )
            await asyncio.sleep(delay)
            raise error
        reason, detail = verdict
        await self.park(message, reason, detail, attempts)
        del self.attempts[position]

    def verdict(self, error: Exception, attempts: int) -> tuple[DeadLetterReason, str] | None:
        """Why to park the record now, or None to retry it."""
        if isinstance(error, Unprocessable):
            return error.reason, error.detail
        if isinstance(error, ValidationError | json.JSONDecodeError | UnicodeDecodeError):
            return "invalid-payload", _describe_invalid(error)
        if _is_transient(error) or attempts < self.max_attempts:
            return None
        return "gave-up", f"{type(error).__name__} after {attempts} attempts"

    async def park(
        self, message: StreamMessage[Any], reason: DeadLetterReason, detail: str, attempts: int
    ) -> None:
        record = message.raw_message
        key = record.key.decode("utf-8", "replace") if record.key else None
        dead_letter = DeadLetter(
            reason=reason,
            detail=detail[:2000],
            service=self.service,
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_key=key,
            original_value=(record.value or b"").decode("utf-8", "backslashreplace"),
            original_headers={
                name: value.decode("utf-8", "replace") for name, value in record.headers or ()
            },
            attempts=attempts,
            failed_at=datetime.now(UTC),
        )
        event = CloudEvent[DeadLetter].wrap(dead_letter, service=self.service)
        await self.broker.publish(
            event.to_json_bytes(),
            topic=topics.DEAD_LETTER,
            key=record.key,
            headers={"content-type": "application/cloudevents+json", "brug-reason": reason},
        )
        DEAD_LETTERED.labels(service=self.service, reason=reason).inc()
        _record_log(record).warning(
            "record dead-lettered",
            reason=reason,
            detail=detail,
            dead_letter_id=event.id,
        )


def _record_log(record: Any) -> Any:
    return log.bind(topic=record.topic, partition=record.partition, offset=record.offset)


def _describe_invalid(error: Exception) -> str:
    """Where the payload is wrong, without echoing its values (they may be personal data)."""
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in issue['loc'])}: {issue['type']}"
            for issue in error.errors(include_input=False, include_url=False)
        ]
        return "payload does not match the contract: " + "; ".join(problems[:20])
    return f"payload is not valid JSON/UTF-8: {type(error).__name__}"


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, policy: DeadLetterPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        try:
            return await call_next(msg)
        except HandlerException:
            raise  # an explicit ack/nack/reject from the handler wins
        except Exception as error:
            await self.policy.handle_failure(msg, error)
            return None
