"""PostgreSQL access: engines, migrations applied at start, a health probe."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy
import sqlalchemy.ext.asyncio
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.library_spans import trace_sqlalchemy

MIGRATIONS = Path(__file__).resolve().parent / "ledger" / "migrations"


def sqlalchemy_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs too; Brug drives PostgreSQL with psycopg 3."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url.removeprefix(plain)
    return url


def make_engine(url: str) -> Engine:
    # Statements as spans of the current trace: the instrumentation wraps SQLAlchemy's
    # engine factories, looked up here as they run (sqlalchemy.create_engine).
    trace_sqlalchemy()
    return sqlalchemy.create_engine(sqlalchemy_url(url), pool_pre_ping=True)


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return config


def migrate(url: str) -> str:
    """Bring the schema to the newest revision; return that revision."""
    config = _alembic_config(url)
    command.upgrade(config, "head")
    return head_revision()


def head_revision() -> str:
    head = ScriptDirectory.from_config(_alembic_config("postgresql://unused")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations found in {MIGRATIONS}")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def database_health(url: str) -> tuple[bool, str]:
    """(reachable and migrated, detail); never raises."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except SQLAlchemyError as error:
        return False, f"unreachable: {type(error).__name__}"
    finally:
        engine.dispose()
    if revision != head_revision():
        return False, f"schema at {revision}, expected {head_revision()} (run migrations)"
    return True, f"ok (schema {revision})"


def make_async_engine(url: str) -> AsyncEngine:
    """For services: ``async with engine.begin() as c: await c.run_sync(work)`` keeps the
    ledger code synchronous while the event loop stays free."""
    # No pre-ping: it costs a round trip per checkout on the hot path; a dead connection
    # fails the request (503 at the edge, a retry on Kafka) and is replaced.
    trace_sqlalchemy()
    return sqlalchemy.ext.asyncio.create_async_engine(
        sqlalchemy_url(url), pool_size=10, pool_recycle=1800
    )
