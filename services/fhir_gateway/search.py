"""FHIR search parameters → ledger queries, and the paging links of a searchset.

Supported: Task ``_id``, ``focus``, ``requester``, ``owner``, ``status``, ``_lastUpdated``
(prefixes gt, ge, lt, le, eq), ``_sort`` (``_lastUpdated`` / ``-_lastUpdated``);
Communication ``_id``, ``based-on``, ``category``; both ``_count`` and ``_offset``. A
parameter Brug does not know is refused (400) rather than ignored: a filter silently
dropped would hand the GP system more than it asked for. Comma-separated values are OR.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from adapters.fhir.outcomes import FhirProblem
from adapters.ledger.repository import CommunicationQuery, TaskQuery

DEFAULT_COUNT = 50
MAX_COUNT = 200
_ALWAYS = {"_count", "_offset", "_format"}
TASK_PARAMETERS = {"_id", "focus", "requester", "owner", "status", "_lastUpdated", "_sort"}
COMMUNICATION_PARAMETERS = {"_id", "based-on", "category"}
CATEGORIES = {"wor-feedback": "feedback", "wor-signal": "signal"}

Params = Sequence[tuple[str, str]]
MAX_VALUE = 2000
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def task_query(params: Params, organisation: str) -> TaskQuery:
    _only(params, TASK_PARAMETERS)
    count, offset = _paging(params)
    requesters = _values(params, "requester", _token)
    refused_requester = requesters is not None and organisation not in requesters
    sort = _values(params, "_sort", str) or ["_lastUpdated"]
    if sort[0] not in ("_lastUpdated", "-_lastUpdated"):
        raise _bad("_sort", "only _lastUpdated and -_lastUpdated are supported")
    return TaskQuery(
        requester_agb=organisation,
        # Another organisation's Tasks are never found: an empty id list matches nothing.
        task_ids=[] if refused_requester else _values(params, "_id", _uuid),
        referral_ids=_values(params, "focus", _reference_id("ServiceRequest")),
        owners=_values(params, "owner", _token),
        statuses=_values(params, "status", str),
        updated=[bound for value in _all(params, "_lastUpdated") for bound in _date_bounds(value)],
        descending=sort[0].startswith("-"),
        count=count,
        offset=offset,
    )


def communication_query(params: Params, organisation: str) -> CommunicationQuery:
    _only(params, COMMUNICATION_PARAMETERS)
    count, offset = _paging(params)
    categories = _values(params, "category", _token)
    if categories is not None and not set(categories) <= set(CATEGORIES):
        raise _bad("category", f"known categories: {', '.join(sorted(CATEGORIES))}")
    return CommunicationQuery(
        requester_agb=organisation,
        communication_ids=_values(params, "_id", _uuid),
        referral_ids=_values(params, "based-on", _reference_id("ServiceRequest")),
        categories=[CATEGORIES[c] for c in categories] if categories is not None else None,
        count=count,
        offset=offset,
    )


def page_links(url: str, params: Params, *, offset: int, count: int, total: int) -> dict[str, str]:
    """self, and next/previous when there are more pages (offset paging)."""
    kept = [(k, v) for k, v in params if k not in ("_count", "_offset")]

    def at(page_offset: int) -> str:
        return f"{url}?{urlencode([*kept, ('_count', str(count)), ('_offset', str(page_offset))])}"

    links = {"self": at(offset)}
    if offset + count < total:
        links["next"] = at(offset + count)
    if offset > 0:
        links["previous"] = at(max(0, offset - count))
    return links


def _only(params: Params, known: set[str]) -> None:
    for name, value in params:
        if _CONTROL.search(name) or _CONTROL.search(value) or len(value) > MAX_VALUE:
            raise _bad(name[:40], "a search parameter holds a control character or is too long")
        if name not in known | _ALWAYS:
            supported = ", ".join(sorted(known | _ALWAYS))
            raise _bad(name, f"search parameter '{name}' is not supported; use {supported}")


def _paging(params: Params) -> tuple[int, int]:
    count = _integer(params, "_count", DEFAULT_COUNT)
    offset = _integer(params, "_offset", 0)
    return min(max(count, 1), MAX_COUNT), max(offset, 0)


def _integer(params: Params, name: str, default: int) -> int:
    values = _all(params, name)
    if not values:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", values[-1]):  # ASCII digits: "²".isdigit() is True
        raise _bad(name, f"{name} must be a whole number below 1,000,000,000")
    return int(values[-1])


def _all(params: Params, name: str) -> list[str]:
    return [value for key, value in params if key == name]


def _values(params: Params, name: str, parse: Callable[[str], Any]) -> list[Any] | None:
    """Every comma-separated value of ``name``, parsed; None when the parameter is absent."""
    raw = _all(params, name)
    if not raw:
        return None
    try:
        return [parse(v.strip()) for value in raw for v in value.split(",") if v.strip()]
    except ValueError as error:
        raise _bad(name, f"{name}: {error}") from None


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ValueError(f"'{value}' is not a Brug id") from None


def _token(value: str) -> str:
    """``system|code`` or ``code``: Brug's tokens are unambiguous by code."""
    return value.rpartition("|")[2]


def _reference_id(resource_type: str) -> Callable[[str], uuid.UUID]:
    def parse(value: str) -> uuid.UUID:
        kind, _, identifier = value.rstrip("/").rpartition("/")
        if kind and not kind.endswith(resource_type):
            raise ValueError(f"expected a {resource_type} reference, got '{value}'")
        return _uuid(identifier)

    return parse


def _date_bounds(value: str) -> list[tuple[str, datetime]]:
    prefix, moment = (value[:2], value[2:]) if value[:2].isalpha() else ("eq", value)
    if prefix not in ("eq", "gt", "ge", "lt", "le"):
        raise _bad("_lastUpdated", f"prefix '{prefix}' is not supported (eq, gt, ge, lt, le)")
    try:
        parsed = datetime.fromisoformat(moment)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed.astimezone(UTC)  # 0001-01-01T00:00+01:00 has no UTC instant
        if prefix != "eq":
            return [(prefix, parsed)]
        whole_day = len(moment) == 10
        end = ("lt", parsed + timedelta(days=1)) if whole_day else ("le", parsed)
    except (ValueError, OverflowError):  # eq9999-12-31: its next day is past year 9999
        raise _bad("_lastUpdated", f"'{moment[:40]}' is not a FHIR date or dateTime") from None
    return [("ge", parsed), end]


def _bad(name: str, diagnostics: str) -> FhirProblem:
    return FhirProblem(
        400, "not-supported" if "not supported" in diagnostics else "value", diagnostics, name
    )
