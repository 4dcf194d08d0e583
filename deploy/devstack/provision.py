"""What every Brug deployment needs before services start: topics and the database schema."""

from __future__ import annotations

from pathlib import Path

from adapters.database import migrate
from adapters.directory import load_directory
from adapters.kafka_admin import TopicSpec, ensure_topics
from contracts.topics import all_topics


def create_topics(bootstrap_servers: str, directory_path: Path) -> list[str]:
    """Create Brug's topics, per-organisation ones from the directory; return those created."""
    directory = load_directory(directory_path)
    wanted = all_topics([organisation.id for organisation in directory.organisations])
    return ensure_topics(bootstrap_servers, [TopicSpec(name) for name in wanted])


def provision(bootstrap_servers: str, database_url: str, directory_path: Path) -> str:
    """Migrate the database and create the topics; idempotent. Returns a one-line summary."""
    revision = migrate(database_url)
    created = create_topics(bootstrap_servers, directory_path)
    return f"schema at {revision}; topics created: {', '.join(created) or 'none needed'}"
