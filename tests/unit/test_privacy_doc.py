"""docs/PRIVACY.md has one row per ledger table and per Kafka topic family, and no row (or
topic name) for one that does not exist: adding a table or topic means saying where its
personal data sits, for how long, who reads it and how it is erased."""

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


def topic_families() -> set[str]:
    """Every topic name of ``all_topics``, with the sample ids as ``<org>`` / ``<client>``."""
    return {
        name.replace(SAMPLE_ORGANISATION, "<org>").replace(SAMPLE_CLIENT, "<client>")
        for name, _config in all_topics([SAMPLE_ORGANISATION], [SAMPLE_CLIENT])
    }


def sections(text: str) -> dict[str, str]:
    """The document's ``## `` sections by heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def row_names(section: str) -> list[str]:
    """The first cell of each table row, where it is one name in backticks."""
    return [match[1] for line in section.splitlines() if (match := _ROW_NAME.match(line))]


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


def test_the_document_names_no_topic_that_does_not_exist() -> None:
    """Also in prose: a renamed topic must not live on anywhere in the document."""
    named = set(_TOPIC_NAME.findall(PRIVACY.read_text(encoding="utf-8")))
    named = {name for name in named if name.endswith(".v1") or "<" in name}
    assert named - topic_families() == set()
