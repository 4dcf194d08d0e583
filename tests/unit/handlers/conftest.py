"""Fixtures of the in-process handler tests: a PostgreSQL database of their own and a
synchronous engine on it for arranging and inspecting the ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from adapters.database import make_engine
from tests.conftest import database_of_its_own


@pytest.fixture(scope="session")
def handler_database(database_url: str) -> Iterator[str]:
    with database_of_its_own(database_url, "brug_handlers") as url:
        yield url


@pytest.fixture(scope="session")
def ledger_engine(handler_database: str) -> Iterator[Engine]:
    """A synchronous engine for arranging and inspecting the ledger around a handler."""
    engine = make_engine(handler_database)
    yield engine
    engine.dispose()
