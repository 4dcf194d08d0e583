"""Disclosure control of the monitor's published counts, as Statistics Netherlands practises
it for social-care figures.

Two profiles:

- ``Threshold(k)`` (default k = 5): a count from 1 to k-1 is suppressed (primary); zeros
  and larger counts are shown exactly.
- ``CBS``: counts 0 to 7 are secret, every other count is rounded to the nearest five.

**Secondary suppression.** Published counts add up: months to quarters to the year,
municipalities (and, apart, organisations) to the national figure, categories to their
total; and some bound others (the funnel narrows step by step): such a bound is a sum
with an unpublished slack cell (``protect(..., unpublished=...)``). A suppressed cell
could be recovered from such totals by differencing, so after the primary suppression an
*attacker's audit* runs over every relation: bounds propagation (what each total and its
published parts allow, the suppressed cells known to be at least the profile's floor)
and, where values are exact, linear differencing (Gaussian elimination over the
suppressed cells). Every suppressed cell the audit pins down to one value gets a
partner: the smallest published cell in one of its relations is suppressed too. Repeat
until the audit pins down none. Suppressed and secret cells look the same, so nobody can
tell a primary from a secondary one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

Key = Any
INFINITY = float("inf")
_PRIME = (1 << 61) - 1


@dataclass(frozen=True)
class Relation:
    """``total`` is the sum of ``parts`` (as true values)."""

    total: Key
    parts: tuple[Key, ...]


@dataclass(frozen=True)
class Shown:
    """A published cell: ``value`` (None when suppressed) and the interval the profile
    itself tells anybody the true value lies in."""

    value: int | None
    low: float
    high: float

    @property
    def suppressed(self) -> bool:
        return self.value is None


class Profile(Protocol):
    @property
    def name(self) -> str: ...

    def primary(self, value: int) -> bool: ...
    def shown(self, value: int) -> Shown: ...
    def hidden(self) -> Shown: ...
    def exact(self) -> bool: ...
    def may_partner(self, value: int) -> bool: ...
    @property
    def minimum_group(self) -> int: ...


UNPUBLISHED = Shown(None, 0, INFINITY)
"""An unpublished cell as an attacker sees it: any count."""


@dataclass(frozen=True)
class Threshold:
    k: int = 5

    @property
    def name(self) -> str:
        return f"k{self.k}"

    def primary(self, value: int) -> bool:
        return 0 < value < self.k

    def shown(self, value: int) -> Shown:
        return Shown(value, value, value)

    def hidden(self) -> Shown:
        return Shown(None, 1, INFINITY)  # zeros are shown, so a suppressed cell is >= 1

    def exact(self) -> bool:
        return True

    def may_partner(self, value: int) -> bool:
        return value > 0  # a shown zero hidden would tell its own value (the floor is 1)

    @property
    def minimum_group(self) -> int:
        return self.k


@dataclass(frozen=True)
class Cbs:
    secret_up_to: int = 7
    base: int = 5

    @property
    def name(self) -> str:
        return "cbs"

    def primary(self, value: int) -> bool:
        return value <= self.secret_up_to

    def shown(self, value: int) -> Shown:
        rounded = self.base * round(value / self.base)
        half = self.base // 2
        return Shown(rounded, max(self.secret_up_to + 1, rounded - half), rounded + half)

    def hidden(self) -> Shown:
        return Shown(None, 0, INFINITY)

    def exact(self) -> bool:
        return False

    def may_partner(self, value: int) -> bool:
        return True

    @property
    def minimum_group(self) -> int:
        return self.secret_up_to + 1


def profile_named(name: str) -> Profile:
    """``k5``, ``k10``, … or ``cbs``."""
    if name == "cbs":
        return Cbs()
    if name.startswith("k") and name[1:].isdigit() and int(name[1:]) >= 2:
        return Threshold(int(name[1:]))
    raise ValueError(f"unknown disclosure profile {name!r} (kN with N >= 2, or cbs)")


def protect(
    cells: Mapping[Key, int],
    relations: Sequence[Relation],
    profile: Profile,
    unpublished: Collection[Key] = (),
) -> dict[Key, Shown]:
    """What may be published of ``cells`` under ``profile``, given that ``relations`` hold.

    ``unpublished`` cells are never shown (anything from 0 up, to an attacker) and never
    hidden as a partner: the slack of an inequality (``a + b <= total`` as
    ``total = a + b + slack``), so the audit knows what the inequality tells."""
    never = frozenset(unpublished)
    hidden = {key for key, value in cells.items() if profile.primary(value) and key not in never}
    touching: dict[Key, list[Relation]] = {}
    for relation in relations:
        for key in (relation.total, *relation.parts):
            touching.setdefault(key, []).append(relation)
    while True:
        published = _publish(cells, hidden, profile, never)
        exposed = exposed_cells(published, relations, exact=profile.exact()) - never
        if not exposed:
            return published
        added = False
        for key in sorted(exposed, key=repr):
            partner = _partner(key, cells, hidden | never, touching, profile)
            if partner is not None:
                hidden.add(partner)
                added = True
        if not added:  # nothing left to hide beside them: hide every cell they touch
            for key in exposed:
                for relation in touching.get(key, []):
                    hidden.update((relation.total, *relation.parts))


def _publish(
    cells: Mapping[Key, int], hidden: set[Key], profile: Profile, never: frozenset[Key]
) -> dict[Key, Shown]:
    return {
        key: UNPUBLISHED
        if key in never
        else profile.hidden()
        if key in hidden
        else profile.shown(value)
        for key, value in cells.items()
    }


def _partner(
    key: Key,
    cells: Mapping[Key, int],
    hidden: set[Key],
    touching: Mapping[Key, list[Relation]],
    profile: Profile,
) -> Key | None:
    """The smallest published cell sharing a relation with ``key``; parts before totals."""
    candidates = []
    for relation in touching.get(key, []):
        for rank, members in ((0, relation.parts), (1, (relation.total,))):
            for member in members:
                if member not in hidden and profile.may_partner(cells[member]):
                    candidates.append((rank, cells[member], repr(member), member))
    return min(candidates)[3] if candidates else None


def exposed_cells(
    published: Mapping[Key, Shown], relations: Sequence[Relation], *, exact: bool
) -> set[Key]:
    """Suppressed cells an attacker pins down from the published cells and the relations."""
    bounds = tighten(published, relations)
    exposed = {key for key, shown in published.items() if shown.suppressed and _pinned(bounds[key])}
    if exact:
        exposed |= _differenced(published, relations)
    return exposed


def _pinned(interval: tuple[float, float]) -> bool:
    low, high = interval
    return high - low < 1  # integers: one value left


def tighten(
    published: Mapping[Key, Shown], relations: Sequence[Relation], rounds: int = 50
) -> dict[Key, tuple[float, float]]:
    """Bounds propagation: each relation narrows its total to what its parts allow and each
    part to what the total and the other parts allow, until nothing narrows."""
    bounds = {key: (shown.low, shown.high) for key, shown in published.items()}
    for _ in range(rounds):
        changed = False
        for relation in relations:
            parts = [bounds[part] for part in relation.parts]
            low_sum = sum(low for low, _ in parts)
            high_sum = sum(high for _, high in parts)
            total_low, total_high = bounds[relation.total]
            new_total = (max(total_low, low_sum), min(total_high, high_sum))
            if new_total != (total_low, total_high):
                bounds[relation.total] = new_total
                changed = True
            total_low, total_high = bounds[relation.total]
            for part, (low, high) in zip(relation.parts, parts, strict=True):
                others_high = high_sum - high
                others_low = low_sum - low
                new = (
                    max(low, total_low - others_high),
                    min(high, total_high - others_low),
                )
                if new != (low, high):
                    bounds[part] = new
                    changed = True
        if not changed:
            break
    return bounds


def _differenced(published: Mapping[Key, Shown], relations: Sequence[Relation]) -> set[Key]:
    """Suppressed cells fixed by linear combinations of the relations (exact values)."""
    unknowns = sorted((k for k, s in published.items() if s.suppressed), key=repr)
    if not unknowns:
        return set()
    column = {key: index for index, key in enumerate(unknowns)}
    rows: list[dict[int, int]] = []
    for relation in relations:
        row: dict[int, int] = {}
        for key, sign in ((relation.total, -1), *((part, 1) for part in relation.parts)):
            if key in column:
                row[column[key]] = (row.get(column[key], 0) + sign) % _PRIME
        row = {c: v for c, v in row.items() if v}
        if row:
            rows.append(row)
    pivots = _reduce(rows)
    determined = set()
    for pivot_column, row in pivots.items():
        if all(c == pivot_column or c in pivots for c in row):
            determined.add(unknowns[pivot_column])
    return determined


def _reduce(rows: list[dict[int, int]]) -> dict[int, dict[int, int]]:
    """Sparse reduced row echelon form modulo a large prime: pivot column → its row (only
    the pivot and free columns remain non-zero)."""
    pivots: dict[int, dict[int, int]] = {}
    for row in rows:
        row = dict(row)
        for column, pivot_row in pivots.items():
            if column in row:
                _eliminate(row, pivot_row, column)
        row = {c: v for c, v in row.items() if v}
        if not row:
            continue
        column = min(row)
        inverse = pow(row[column], _PRIME - 2, _PRIME)
        row = {c: v * inverse % _PRIME for c, v in row.items()}
        for other in pivots.values():
            if column in other:
                _eliminate(other, row, column)
        pivots[column] = row
    return pivots


def _eliminate(row: dict[int, int], pivot_row: dict[int, int], column: int) -> None:
    factor = row[column]
    for c, v in pivot_row.items():
        row[c] = (row.get(c, 0) - factor * v) % _PRIME
        if not row[c]:
            del row[c]


def sum_relations(total: Key, parts: Iterable[Key]) -> Relation:
    return Relation(total, tuple(parts))
