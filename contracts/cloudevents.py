"""CloudEvents 1.0 envelope in structured JSON mode, with W3C trace context.

Spec: https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md and the
distributed-tracing extension (``traceparent``/``tracestate``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

SOURCE_PREFIX = "urn:brug:service:"
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


def _no_trace() -> str | None:
    return None


# Where ``wrap`` finds the current trace context when none is given. The service runtime
# (adapters/runtime/tracing.py) plugs in OpenTelemetry's; contracts stay free of it.
_traceparent_source: Callable[[], str | None] = _no_trace


def set_traceparent_source(source: Callable[[], str | None]) -> None:
    global _traceparent_source
    _traceparent_source = source


class EventData(BaseModel):
    """Base for every event payload; ``EVENT_TYPE`` is the CloudEvents ``type`` it travels as."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str]

    def subject(self) -> str | None:
        """What the event is about (CloudEvents ``subject``), e.g. the referral id."""
        return None


DataT = TypeVar("DataT", bound=EventData)


class CloudEvent(BaseModel, Generic[DataT]):
    """The envelope every Brug event travels in on Kafka (one JSON document per record)."""

    # Extension attributes from other producers are kept, not rejected.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(min_length=1, description="Unique per source; consumers deduplicate on it.")
    source: str = Field(min_length=1, description="URI-reference of the producing service.")
    type: str = Field(pattern=r"^nl\.brug\.[a-z0-9.-]+\.v[0-9]+$")
    subject: str | None = None
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)
    tracestate: str | None = None
    data: DataT

    @model_validator(mode="after")
    def _type_matches_data(self) -> Self:
        expected = getattr(self.data, "EVENT_TYPE", None)
        if expected is not None and self.type != expected:
            raise ValueError(f"type {self.type!r} does not match the data, a {expected!r}")
        return self

    @classmethod
    def wrap(
        cls,
        data: DataT,
        *,
        service: str,
        traceparent: str | None = None,
        event_id: str | None = None,
        time: datetime | None = None,
    ) -> Self:
        """Envelope ``data`` as an event from ``service``, with a fresh id unless given; the
        trace context is the given one, else the current span's (if tracing is set up)."""
        return cls(
            id=event_id or str(uuid.uuid4()),
            source=f"{SOURCE_PREFIX}{service}",
            type=data.EVENT_TYPE,
            subject=data.subject(),
            time=time or datetime.now(UTC),
            dataschema=f"urn:brug:schema:{data.EVENT_TYPE}",
            traceparent=traceparent or _traceparent_source(),
            data=data,
        )

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def extensions(self) -> dict[str, Any]:
        return dict(self.model_extra or {})
