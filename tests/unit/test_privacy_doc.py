"""docs/PRIVACY.md has one row per ledger table and per Kafka topic family, and no row (or
topic name) for one that does not exist: adding a table or topic means saying where its
personal data sits, for how long, who reads it and how it is erased. The tables are read
from ``adapters/ledger/tables.py``'s metadata and the topics from ``contracts/topics.py``,
so a new one fails here until the document has its row; each topic's row states the
retention ``all_topics`` gives it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters.ledger.tables import metadata
from contracts.topics import all_topics

PRIVACY = Path(__file__).resolve().parents[2] / "docs" / "PRIVACY.md"
SAMPLE_ORGANISATION, SAMPLE_CLIENT = "x-org", "x-client"
TABLES_SECTION, TOPICS_SECTION = "PostgreSQL tables", "Kafka topics"
_ROW_NAME = re.compile(r"^\|\s*`([^`]+)`\s*\|")
_TOPIC_NAME = re.compile(r"`(brug\.[^`\s]*)`")


def _family(name: str) -> str:
    return name.replace(SAMPLE_ORGANISATION, "<org>").replace(SAMPLE_CLIENT, "<client>")


def topic_families() -> set[str]:
    """Every topic name of ``all_topics``, with the sample ids as ``<org>`` / ``<client>``."""
    return {_family(name) for name, _config in all_topics([SAMPLE_ORGANISATION], [SAMPLE_CLIENT])}


def spoken(milliseconds: int) -> str:
    """A retention as the document writes it: ``6 hours``, ``3 days``."""
    hours, rest = divmod(milliseconds, 3600 * 1000)
    assert rest == 0 and hours > 0, f"not whole hours: {milliseconds} ms"
    days, left = divmod(hours, 24)
    if left:
        return f"{hours} hour{'s' * (hours != 1)}"
    return f"{days} day{'s' * (days != 1)}"


def sections(text: str) -> dict[str, str]:
    """The document's ``## `` sections by heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def row_names(section: str) -> list[str]:
    """The first cell of each table row, where it is one name in backticks."""
    return [match[1] for line in section.splitlines() if (match := _ROW_NAME.match(line))]


def rows(section: str) -> dict[str, dict[str, str]]:
    """Each table row whose first cell is one name in backticks, by that name: its cells by
    the header's column names."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return {
        match[1]: dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[2:]
        if (match := _ROW_NAME.match(line))
    }


@pytest.fixture(scope="module")
def document() -> dict[str, str]:
    return sections(PRIVACY.read_text(encoding="utf-8"))


def test_the_sample_ids_make_distinct_families() -> None:
    families = topic_families()
    assert len(families) == len(all_topics([SAMPLE_ORGANISATION], [SAMPLE_CLIENT]))
    assert not any(sample in family for family in families for sample in ("x-org", "x-client"))


def test_every_ledger_table_has_exactly_one_row(document: dict[str, str]) -> None:
    assert TABLES_SECTION in document, f"docs/PRIVACY.md needs a '## {TABLES_SECTION}' section"
    rows = row_names(document[TABLES_SECTION])
    declared = set(metadata.tables)
    missing = declared - set(rows)
    unknown = set(rows) - declared
    assert not missing, f"tables without a row in docs/PRIVACY.md: {sorted(missing)}"
    assert not unknown, f"rows in docs/PRIVACY.md for tables that do not exist: {sorted(unknown)}"
    assert len(rows) == len(set(rows)), f"a table has more than one row: {sorted(rows)}"


def test_every_topic_family_has_exactly_one_row(document: dict[str, str]) -> None:
    assert TOPICS_SECTION in document, f"docs/PRIVACY.md needs a '## {TOPICS_SECTION}' section"
    rows = row_names(document[TOPICS_SECTION])
    families = topic_families()
    missing = families - set(rows)
    unknown = set(rows) - families
    assert not missing, f"topics without a row in docs/PRIVACY.md: {sorted(missing)}"
    assert not unknown, f"rows in docs/PRIVACY.md for topics that do not exist: {sorted(unknown)}"
    assert len(rows) == len(set(rows)), f"a topic has more than one row: {sorted(rows)}"


def test_every_topic_row_states_its_retention(document: dict[str, str]) -> None:
    """Every topic has a ``retention.ms`` of its own (``tests/unit/test_topics.py``), and its
    row says how long that is by default."""
    stated = rows(document[TOPICS_SECTION])
    for name, config in all_topics([SAMPLE_ORGANISATION], [SAMPLE_CLIENT]):
        assert "retention.ms" in config, f"{name} has no explicit retention"
        family, kept = _family(name), spoken(int(config["retention.ms"]))
        assert kept in stated[family]["retention"], f"the row of {family} must say {kept!r}"


def test_the_document_names_no_topic_that_does_not_exist() -> None:
    """Also in prose: a renamed topic must not live on anywhere in the document."""
    named = set(_TOPIC_NAME.findall(PRIVACY.read_text(encoding="utf-8")))
    named = {name for name in named if name.endswith(".v1") or "<" in name}
    assert named - topic_families() == set()
