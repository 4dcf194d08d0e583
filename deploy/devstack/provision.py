"""What every Brug deployment needs before services start: topics and the database schema."""

from __future__ import annotations

from pathlib import Path

from adapters.clients import ClientKind, load_clients
from adapters.database import migrate
from adapters.directory import load_directory
from adapters.kafka_admin import TopicSpec, ensure_topics
from contracts.topics import all_topics


def create_topics(bootstrap_servers: str, directory_path: Path, clients_path: Path) -> list[str]:
    """Create Brug's topics: per organisation from the directory, per GP system from the
    client registry. Returns those created."""
    organisations = [o.id for o in load_directory(directory_path).organisations]
    gp_systems = [
        c.client_id for c in load_clients(clients_path).clients if c.kind is ClientKind.GP
    ]
    wanted = all_topics(organisations, gp_systems)
    specs = [TopicSpec(name, config=tuple(config.items())) for name, config in wanted]
    return ensure_topics(bootstrap_servers, specs)


def provision(
    bootstrap_servers: str, database_url: str, directory_path: Path, clients_path: Path
) -> str:
    """Migrate the database and create the topics; idempotent. Returns a one-line summary."""
    revision = migrate(database_url)
    created = create_topics(bootstrap_servers, directory_path, clients_path)
    return f"schema at {revision}; topics created: {', '.join(created) or 'none needed'}"
