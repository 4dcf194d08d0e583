"""Fixtures the integration tests share beyond the session's Kafka and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapters.database import make_engine, migrate, sqlalchemy_url


@pytest.fixture(scope="module")
def own_database(database_url: str) -> Iterator[str]:
    """A database of its own: no other stack's relay may publish these tests' rows."""
    name = f"brug_outbox_{uuid.uuid4().hex[:8]}"
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
