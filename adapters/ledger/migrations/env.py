"""Alembic environment: the URL comes from adapters.database.migrate(), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from adapters.ledger.tables import metadata

url = context.config.get_main_option("sqlalchemy.url")
if url is None:
    raise RuntimeError("adapters.database.migrate() sets sqlalchemy.url")

engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
