"""``brug deploy …``: Kubernetes (``deploy/helm/brug``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

deploy_cli = typer.Typer(help="Deploying to Kubernetes (deploy/helm/brug).", no_args_is_help=True)


@deploy_cli.command("render")
def render(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Helm values from the welfare directory (BRUG_DIRECTORY_PATH) and the client registry
    (BRUG_CLIENTS_PATH): Strimzi KafkaTopics (with the retention settings), KafkaUsers with
    the ACL plan, the consumer groups KEDA scales on, the directory's ConfigMap."""
    from adapters.runtime import ServiceSettings
    from deploy.render.values import render_values, values_yaml

    settings = ServiceSettings()
    retention = settings.topic_retention()
    text = values_yaml(
        render_values(settings.directory_path, settings.clients_path, retention=retention)
    )
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"written: {output}", err=True)


@deploy_cli.command("migrate")
def migrate() -> None:
    """Migrate the database (BRUG_DATABASE_URL) and nothing else: the chart's hook Job (on
    Kubernetes, Strimzi's operators create the topics and ACLs that `brug setup` would)."""
    from adapters.database import migrate as migrate_database
    from adapters.runtime import ServiceSettings

    typer.echo(f"schema at {migrate_database(ServiceSettings().database_url)}")
