"""Fixtures of the in-process handler tests: a PostgreSQL database of their own and a
synchronous engine on it for arranging and inspecting the ledger."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from adapters.database import make_engine, migrate, sqlalchemy_url


@pytest.fixture(scope="session")
def handler_database(database_url: str) -> Iterator[str]:
    """A database of these tests' own: no other test's relay or delivery loop may
    publish, claim or purge the rows they assert on."""
    name = f"brug_handlers_{uuid.uuid4().hex[:8]}"
    server = make_engine(database_url).execution_options(isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = make_url(sqlalchemy_url(database_url)).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    migrate(rendered)
    yield rendered
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    server.dispose()


@pytest.fixture(scope="session")
def ledger_engine(handler_database: str) -> Iterator[Engine]:
    """A synchronous engine for arranging and inspecting the ledger around a handler."""
    engine = make_engine(handler_database)
    yield engine
    engine.dispose()
