"""Fixtures the integration tests share beyond the session's Kafka and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import database_of_its_own


@pytest.fixture(scope="module")
def own_database(database_url: str) -> Iterator[str]:
    """A database of its own: no other stack's relay may publish these tests' rows."""
    with database_of_its_own(database_url, "brug_outbox") as url:
        yield url
