"""The monitor's rows: one ``MonitorState`` per referral pseudonym, in the live table or the
one a rebuild fills (``adapters/ledger/tables.py``), with the keyed digests of the events
already applied."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select
from sqlalchemy.dialects.postgresql import insert as upsert

from adapters.ledger.tables import monitor_rebuild_referrals, monitor_referrals
from contracts.codes import AgeBand, ReferrerDiscipline, SubmissionChannel, Urgency, WorTheme
from contracts.events.status import (
    ActivityKind,
    DeclineReason,
    PositiveHealthDimension,
    SignalKind,
    WelfareStatus,
)
from contracts.monitor import EndStatus, MonitorRecord
from domain.monitor.dataset import MonitorState

LIVE = monitor_referrals
REBUILD = monitor_rebuild_referrals

_TUPLES = {"themes": WorTheme, "activity_kinds": ActivityKind, "signal_kinds": SignalKind}
_ENUMS: dict[str, Any] = {
    "referrer_discipline": ReferrerDiscipline,
    "channel": SubmissionChannel,
    "age_band": AgeBand,
    "urgency": Urgency,
    "welfare_status": WelfareStatus,
    "welfare_end": EndStatus,
    "decline_reason": DeclineReason,
}
STATE_FIELDS = tuple(f.name for f in fields(MonitorState))


@dataclass(frozen=True)
class Row:
    state: MonitorState
    seen: frozenset[str]


def state_of(row: Any) -> MonitorState:
    values: dict[str, Any] = {}
    for name in STATE_FIELDS:
        value = getattr(row, name)
        if name in _TUPLES:
            value = tuple(_TUPLES[name](item) for item in value or ())
        elif name in _ENUMS and value is not None:
            value = _ENUMS[name](value)
        elif name == "positive_health_change":
            value = {PositiveHealthDimension(k): int(v) for k, v in (value or {}).items()}
        values[name] = value
    return MonitorState(**values)


def columns_of(state: MonitorState) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in STATE_FIELDS:
        value = getattr(state, name)
        if name in _TUPLES:
            value = [str(item) for item in value]
        elif name == "positive_health_change":
            value = {str(k): v for k, v in value.items()}
        elif value is not None and not isinstance(value, bool | int | date):
            value = str(value)
        values[name] = value
    return values


class MonitorStore:
    """The rows of one of the monitor's tables, in the caller's transaction."""

    def __init__(self, connection: Connection, table: Table = LIVE) -> None:
        self.connection = connection
        self.table = table

    def row_for_update(self, pseudonym: str) -> Row:
        """The referral's row, locked (created empty first): concurrent consumers of
        different topics change one referral's row one after the other."""
        self.connection.execute(
            upsert(self.table)
            .values(**columns_of(MonitorState(pseudonym)), seen_events=[])
            .on_conflict_do_nothing(index_elements=["pseudonym"])
        )
        found = self.connection.execute(
            select(self.table).where(self.table.c.pseudonym == pseudonym).with_for_update()
        ).one()
        return Row(state_of(found), frozenset(found.seen_events))

    def save(self, state: MonitorState, seen: frozenset[str]) -> None:
        self.connection.execute(
            self.table.update()
            .where(self.table.c.pseudonym == state.pseudonym)
            .values(**columns_of(state), seen_events=sorted(seen))
        )

    def states(self) -> list[MonitorState]:
        rows = self.connection.execute(select(self.table).order_by(self.table.c.pseudonym))
        return [state_of(row) for row in rows]

    def records(self, months: tuple[str, ...] | None = None) -> list[MonitorRecord]:
        """The published records (``contracts/monitor``), of ``months`` (``YYYY-MM``) only
        if given; rows whose referral event has not been seen yet are left out."""
        records = [s.record() for s in self.states() if s.submitted_on is not None]
        if months is None:
            return records
        return [record for record in records if record.referral_month in months]

    def count(self) -> int:
        return self.connection.execute(select(func.count()).select_from(self.table)).scalar_one()

    def clear(self) -> None:
        self.connection.execute(delete(self.table))

    def replace_with(self, source: Table) -> int:
        """This table's rows become ``source``'s (the rebuild's swap); returns how many."""
        self.clear()
        columns = [column.name for column in self.table.columns]
        self.connection.execute(
            insert(self.table).from_select(columns, select(*(source.c[c] for c in columns)))
        )
        return self.count()
