"""``brug kafka …``: the ACL plan every principal gets, shown or applied to a cluster."""

from __future__ import annotations

from typing import Annotated

import typer

kafka_cli = typer.Typer(help="Kafka principals and their ACLs.", no_args_is_help=True)


@kafka_cli.command("acls")
def acls(
    apply: Annotated[
        bool, typer.Option("--apply", help="Make the cluster's ACLs the plan (as its super user).")
    ] = False,
) -> None:
    """Print the ACL plan derived from the client registry (BRUG_CLIENTS_PATH); with
    --apply, add what the cluster (BRUG_KAFKA_BOOTSTRAP_SERVERS, credentials from
    BRUG_KAFKA_USERNAME/PASSWORD) lacks and remove what is stale. Idempotent."""
    from adapters.clients import load_clients
    from adapters.kafka_acls import acl_plan, apply_acls
    from adapters.runtime import ServiceSettings

    settings = ServiceSettings()
    plan = acl_plan(load_clients(settings.clients_path))
    for grant in plan:
        typer.echo(f"  {grant}")
    typer.echo(f"{len(plan)} ACLs in the plan")
    if apply:
        changes = apply_acls(settings.kafka_bootstrap_servers, plan, settings.kafka_credentials)
        for grant in changes.added:
            typer.echo(f"+ {grant}")
        for grant in changes.removed:
            typer.echo(f"- {grant}")
        typer.echo(
            f"added {len(changes.added)}, removed {len(changes.removed)}, kept {changes.kept}"
        )
