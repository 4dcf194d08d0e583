"""``brug``: the command line for developers and operators."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from kafka.errors import KafkaError

from deploy.audit_cli import audit_cli
from deploy.devstack.paths import default_state_dir
from deploy.erase_cli import erase, purge
from deploy.kafka_cli import kafka_cli
from deploy.monitor_cli import monitor_cli
from deploy.render.cli import deploy_cli

app = typer.Typer(help="Brug: GP referrals to the social domain and back.", no_args_is_help=True)
dev = typer.Typer(help="Run the whole stack as local processes.", no_args_is_help=True)
contracts_cli = typer.Typer(help="The published contract files.", no_args_is_help=True)
app.add_typer(dev, name="dev")
app.add_typer(contracts_cli, name="contracts")
directory_cli = typer.Typer(
    help="The welfare directory and the postcode table.", no_args_is_help=True
)
ledger_cli = typer.Typer(help="The referral ledger.", no_args_is_help=True)
app.add_typer(directory_cli, name="directory")
app.add_typer(ledger_cli, name="ledger")
dlq_cli = typer.Typer(
    help="Dead letters: what a service could not process, parked for an operator.",
    no_args_is_help=True,
)
app.add_typer(dlq_cli, name="dlq")
operators_cli = typer.Typer(help="Console operators.", no_args_is_help=True)
app.add_typer(operators_cli, name="operators")
app.add_typer(kafka_cli, name="kafka")
app.add_typer(audit_cli, name="audit")
app.add_typer(deploy_cli, name="deploy")
app.add_typer(monitor_cli, name="monitor")
app.command("erase")(erase)
ledger_cli.command("purge")(purge)

StateDir = Annotated[
    Path | None,
    typer.Option(help="Folder for data, logs and pid files (default .brug/ or BRUG_STATE_DIR)."),
]


def main() -> None:
    """Entry point: operational failures end with one readable line, not a traceback."""
    try:
        app()
    except (RuntimeError, TimeoutError, OSError, KafkaError) as error:  # Kafka unreachable
        typer.echo(f"brug: {error}", err=True)
        raise SystemExit(1) from None


def _stack(  # type: ignore[no-untyped-def]
    state_dir: Path | None, brokers: int | None = None, replicas: int | None = None
):
    from deploy.devstack.stack import DevStack, StackConfig

    folder = (state_dir or default_state_dir()).resolve()
    return DevStack(StackConfig.from_environment(folder, brokers=brokers, replicas=replicas))


@dev.command("up")
def dev_up(
    state_dir: StateDir = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1, help="Kafka nodes: 1, or a cluster of 3 (replication factor 3, min ISR 2)."
        ),
    ] = None,
    replicas: Annotated[
        int | None, typer.Option(min=1, help="Instances of every service (default 1).")
    ] = None,
) -> None:
    """Start Kafka, PostgreSQL and every service (idempotent: restarts what is down).
    Without --brokers/--replicas: the layout the last `dev up` used, else 1 and 1."""
    from deploy.devstack.kafka import dev_credentials
    from deploy.devstack.stack import dev_tokens

    if brokers is not None and brokers == 2:
        raise typer.BadParameter("a cluster needs 3 or more brokers (min.insync.replicas=2)")
    stack = _stack(state_dir, brokers, replicas)
    try:
        stack.up()
    except (RuntimeError, TimeoutError, OSError) as error:
        # The error carries the end of the failing service's log: CI output shows why.
        typer.echo(f"brug dev up: {error}", err=True)
        typer.echo("what runs now: brug dev status; stop it all: brug dev down", err=True)
        raise typer.Exit(1) from None
    _print_status(stack.status())
    typer.echo(f"logs: {stack.config.state_dir / 'logs'}")
    typer.echo(f"FHIR base: {stack.fhir_base_url}   social edge: {stack.social_base_url}")
    typer.echo("development bearer tokens (deploy/clients/dev-tokens.txt):")
    for client_id, token in dev_tokens().items():
        typer.echo(f"  {client_id:<26} {token}")
    if stack.config.external_kafka is None:
        typer.echo(
            f"Kafka on {stack.bootstrap_servers}: SASL_PLAINTEXT, SCRAM-SHA-512; the parties' "
            "users (deploy/kafka/dev-credentials.txt; each reaches only its own topics):"
        )
        for principal, password in dev_credentials().items():
            if not principal.startswith(("brug-", "controller")):
                typer.echo(f"  {principal:<26} {password}")


@dev.command("down")
def dev_down(state_dir: StateDir = None) -> None:
    """Stop every service, then Kafka and PostgreSQL (data is kept)."""
    try:
        stopped = _stack(state_dir).down()
    except (RuntimeError, TimeoutError, OSError) as error:
        typer.echo(f"brug dev down: {error}", err=True)
        typer.echo("what still runs: brug dev status; try brug dev down again", err=True)
        raise typer.Exit(1) from None
    typer.echo("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@dev.command("status")
def dev_status(
    state_dir: StateDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Health of the broker, the database and each service; exit 1 if anything is unhealthy."""
    statuses = _stack(state_dir).status()
    if as_json:
        typer.echo(json.dumps([status.__dict__ for status in statuses], indent=2))
    else:
        _print_status(statuses)
    if not all(status.healthy for status in statuses):
        raise typer.Exit(1)


@app.command("setup")
def setup() -> None:
    """Migrate the database and create every topic on existing infrastructure
    (BRUG_DATABASE_URL, BRUG_KAFKA_BOOTSTRAP_SERVERS); what compose.yaml runs first."""
    from adapters.kafka_admin import wait_until_reachable
    from adapters.runtime import ServiceSettings
    from deploy.devstack.provision import provision

    settings = ServiceSettings()
    wait_until_reachable(settings.kafka_bootstrap_servers, credentials=settings.kafka_credentials)
    typer.echo(
        provision(
            settings.kafka_bootstrap_servers,
            settings.database_url,
            settings.directory_path,
            settings.clients_path,
            settings.kafka_credentials,
            settings.topic_retention(),
        )
    )


demo_cli = typer.Typer(
    help="Push a sample referral through the running stack (`brug demo`), or many "
    "synthetic ones (`brug demo load`).",
    invoke_without_command=True,
)
app.add_typer(demo_cli, name="demo")


@demo_cli.callback()
def demo(ctx: typer.Context, state_dir: StateDir = None) -> None:
    """Push a sample referral through the running stack, answer it as the case system, and
    show what each side got: the whole loop, ending with the GP's completed Task."""
    if ctx.invoked_subcommand is not None:
        return
    from deploy.demo import (
        SAMPLE_CASE_CLIENT,
        SAMPLE_GP_CLIENT,
        SAMPLE_ORGANISATION,
        describe,
        run_demo,
    )
    from deploy.devstack.stack import dev_tokens

    stack = _stack(state_dir)
    tokens = dev_tokens()
    result = run_demo(
        stack.fhir_base_url,
        stack.bootstrap_servers,
        stack.case_file(SAMPLE_ORGANISATION),
        tokens[SAMPLE_GP_CLIENT],
        social_base_url=stack.social_base_url,
        case_token=tokens[SAMPLE_CASE_CLIENT],
        kafka_credentials=stack.credentials_of(SAMPLE_CASE_CLIENT),  # it reads as the case system
    )
    typer.echo(describe(result))
    typer.echo(
        f"8. operators follow it end to end (brug trace {result.referral_id}, or the console at "
        f"{stack.console_url}/referrals/{result.referral_id}, user olga / dev-operator-olga):"
    )
    for line in _trace_lines(str(result.referral_id), stack.database_url):
        typer.echo(f"   {line}")


@demo_cli.command("load")
def demo_load(
    referrals: Annotated[int, typer.Option(min=1, max=5000, help="How many.")] = 500,
    seed: Annotated[int, typer.Option(help="The same referrals for the same seed.")] = 14,
    period: Annotated[
        str | None, typer.Option(help="The report's period (default: this month).")
    ] = None,
    state_dir: StateDir = None,
) -> None:
    """Synthetic referrals with realistic spreads (deploy/synthetic_load.py) through the
    running stack: submitted over FHIR as the GP systems, answered on Kafka as the case
    systems; then the monitor's report for each sample municipality and the nation."""
    from deploy.demo_load import await_monitor, run_load
    from deploy.devstack.stack import dev_tokens
    from deploy.monitor_cli import report_command
    from deploy.synthetic_load import MUNICIPALITIES, draw, expected_record
    from services.monitor.settings import MonitorSettings

    stack = _stack(state_dir)
    plans = draw(referrals, seed)
    result = run_load(
        plans,
        stack.fhir_base_url,
        stack.bootstrap_servers,
        dev_tokens(),
        stack.credentials_of,
        timeout=60 + referrals / 5,
    )
    typer.echo(
        f"{referrals} referral(s) submitted in {result.submitted_seconds:.1f} s, "
        f"answered after {result.answered_seconds:.1f} s"
    )
    key = MonitorSettings().monitor_key.get_secret_value()
    pseudonyms = result.pseudonyms(key)
    expected = {
        p: expected_record(plan, p, result.day) for p, plan in zip(pseudonyms, plans, strict=True)
    }
    await_monitor(stack.database_url, expected, timeout=60 + referrals / 5)
    chosen = period or result.day.strftime("%Y-%m")
    for municipality in MUNICIPALITIES:
        report_command(period=chosen, municipality=municipality, database_url=stack.database_url)
    report_command(period=chosen, national=True, database_url=stack.database_url)


@contracts_cli.command("generate")
def contracts_generate() -> None:
    """Write JSON Schemas, examples and AsyncAPI documents from the models."""
    from deploy.contract_files import write_contract_files

    for path in write_contract_files():
        typer.echo(f"wrote {path}")


@directory_cli.command("import-cbs")
def directory_import_cbs(
    cbs_file: Annotated[Path, typer.Argument(help="CBS postcode-huisnummer table (;-separated)")],
    output: Annotated[Path, typer.Option(help="Where to write Brug's PC4 table")],
    version: Annotated[str, typer.Option(help="Version label, e.g. cbs-2024-08")],
) -> None:
    """Reduce CBS's address table to Brug's PC4 -> municipality table."""
    from adapters.postcodes import import_cbs_rows

    with cbs_file.open(encoding="utf-8-sig") as lines:
        imported = import_cbs_rows(lines)
    output.write_text(imported.to_csv(version))
    typer.echo(f"{len(imported.municipality_by_pc4)} PC4 areas written to {output}")
    for pc4, counts in sorted(imported.split_pc4.items()):
        typer.echo(f"  {pc4} spans {counts}; kept the municipality with most addresses")


@ledger_cli.command("purge-details")
def ledger_purge_details() -> None:
    """Erase personal details past their retention date (BRUG_DETAILS_RETENTION_DAYS at intake)."""
    from datetime import UTC, datetime

    from adapters.database import make_engine
    from adapters.ledger.repository import Ledger
    from adapters.runtime import ServiceSettings

    engine = make_engine(ServiceSettings().database_url)
    with engine.begin() as connection:
        ledger = Ledger(connection)
        erased = ledger.purge_expired_details(datetime.now(UTC))
        ledger.audit(
            actor="cli:brug", action="purge-details", referral_id=None, detail={"erased": erased}
        )
    engine.dispose()
    typer.echo(f"erased the personal details of {erased} referral(s)")


def _operator_actor() -> str:
    """Who acts on the command line, for the audit trail."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _engine(database_url: str | None = None):  # type: ignore[no-untyped-def]
    from adapters.database import make_engine
    from adapters.runtime import ServiceSettings

    return make_engine(database_url or ServiceSettings().database_url)


@app.command("trace")
def trace(
    referral: Annotated[
        str, typer.Argument(help="Referral id, Task id or ServiceRequest identifier")
    ],
) -> None:
    """One referral end to end: every step across the services, as the console shows it."""
    for line in _trace_lines(referral):
        typer.echo(line)


def _trace_lines(referral: str, database_url: str | None = None) -> list[str]:
    from adapters.ledger.operations import Operations
    from adapters.ledger.repository import Ledger
    from adapters.ledger.timeline import format_duration, referral_timeline

    engine = _engine(database_url)
    with engine.begin() as connection:
        found = Operations(connection).find_referral(referral)
        timeline = referral_timeline(connection, found) if found else None
        if timeline is not None:
            Ledger(connection).audit(
                actor=_operator_actor(), action="viewed-timeline", referral_id=found, detail={}
            )
    engine.dispose()
    if timeline is None:
        raise RuntimeError(f"no referral with id, Task id or identifier {referral!r}")
    lines = [
        f"referral {timeline.referral_id}  task {timeline.task_id}  "
        f"organisation {timeline.organisation_id or '-'}  status {timeline.status}  "
        f"trace {timeline.trace_id or '-'}",
        *(step.line() for step in timeline.steps),
    ]
    if timeline.total is not None:
        lines.append(
            f"{len(timeline.steps)} steps, first to last {format_duration(timeline.total)}"
        )
    return lines


@dlq_cli.command("list")
def dlq_list(
    state: Annotated[
        str, typer.Option(help="parked, replaying, replayed, discarded or all")
    ] = "parked",
) -> None:
    """Dead letters, newest first (metadata only)."""
    from adapters.ledger.operations import Operations

    engine = _engine()
    with engine.connect() as connection:
        letters = Operations(connection).dead_letters(None if state == "all" else state)
    engine.dispose()
    for letter in letters:
        typer.echo(
            f"{letter.dead_letter_id}  {letter.failed_at:%Y-%m-%d %H:%M:%S}  {letter.state:<9} "
            f"{letter.reason:<16} {letter.service:<16} referral {letter.referral_id or '-'}"
        )
    typer.echo(f"{len(letters)} dead letter(s) {state}")


@dlq_cli.command("show")
def dlq_show(dead_letter_id: str) -> None:
    """One dead letter: why, where from, headers. The original value (it may hold personal
    data) is shown only in the console, to a privacy officer, audited."""
    from adapters.ledger.operations import Operations

    engine = _engine()
    with engine.connect() as connection:
        letter = Operations(connection).dead_letter(dead_letter_id)
    engine.dispose()
    if letter is None:
        raise RuntimeError(f"no dead letter {dead_letter_id}")
    for label, value in (
        ("state", letter.state),
        ("reason", letter.reason),
        ("detail", letter.detail),
        ("service", letter.service),
        ("failed at", letter.failed_at.isoformat()),
        ("attempts", letter.attempts),
        ("from", f"{letter.original_topic}/{letter.original_partition}@{letter.original_offset}"),
        ("key", letter.original_key),
        ("referral", letter.referral_id),
        ("headers", json.dumps(letter.original_headers)),
        ("value", f"{len(letter.original_value)} bytes (hidden)"),
        ("resolved", f"{letter.resolved_by} {letter.note or ''}" if letter.resolved_by else "-"),
        (
            "claimed",
            f"{letter.claimed_by} {letter.claimed_at:%Y-%m-%d %H:%M:%S}"
            if letter.claimed_at
            else "-",
        ),
        (
            "last error",
            f"{letter.replay_error} ({letter.replay_failed_at:%Y-%m-%d %H:%M:%S})"
            if letter.replay_failed_at
            else "-",
        ),
    ):
        typer.echo(f"{label:>10}: {value}")


@dlq_cli.command("replay")
def dlq_replay(
    dead_letter_id: Annotated[
        str | None, typer.Argument(help="One dead letter; or choose many with --reason")
    ] = None,
    note: Annotated[str, typer.Option(help="What was fixed (required with --reason)")] = "",
    reason: Annotated[
        str | None, typer.Option(help="Every parked dead letter with this reason...")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="...that failed at this time or later (ISO 8601, with zone)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="...and before this time (default now)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would happen")] = False,
) -> None:
    """Send a dead letter to its topic again (after a fix), re-checking withdrawal and
    erased details first; audited. With --reason and --since: every parked one in that
    window, oldest first, each at most once even when run twice or side by side."""
    from adapters.runtime import ServiceSettings
    from deploy.dlq_replay import replay_many
    from services.console.actions import ActionRefused, replay_dead_letter

    if (dead_letter_id is None) == (reason is None):
        raise typer.BadParameter("give one dead letter's id, or --reason and --since")
    if reason is not None:
        if since is None:
            raise typer.BadParameter("--reason needs --since (and maybe --until)")
        replay_many(reason, since, until, note=note, dry_run=dry_run, actor=_operator_actor())
        return
    assert dead_letter_id is not None
    settings = ServiceSettings()
    engine = _engine()
    try:
        result = replay_dead_letter(
            engine,
            settings.kafka_bootstrap_servers,
            dead_letter_id,
            actor=_operator_actor(),
            note=note,
            sealer=settings.dead_letter_sealer(),
        )
    except ActionRefused as refused:
        raise RuntimeError(f"not replayed: {refused}") from None
    finally:
        engine.dispose()
    typer.echo(result.message)


@dlq_cli.command("discard")
def dlq_discard(
    dead_letter_id: str, note: Annotated[str, typer.Option(help="Why (required)")]
) -> None:
    """Give up on a dead letter, saying why; audited."""
    from services.console.actions import ActionRefused, discard_dead_letter

    engine = _engine()
    try:
        result = discard_dead_letter(engine, dead_letter_id, actor=_operator_actor(), note=note)
    except ActionRefused as refused:
        raise RuntimeError(f"not discarded: {refused}") from None
    finally:
        engine.dispose()
    typer.echo(result.message)


@app.command("lag")
def lag(
    all_groups: Annotated[bool, typer.Option("--all", help="Also groups with no lag")] = False,
) -> None:
    """Consumer lag per group and topic: how many messages wait to be handled."""
    from adapters.kafka_admin import consumer_lag
    from adapters.runtime import ServiceSettings

    lags = consumer_lag(ServiceSettings().kafka_bootstrap_servers)
    shown = [entry for entry in lags if all_groups or entry.lag]
    for entry in shown:
        typer.echo(f"{entry.group:<40} {entry.topic:<48} {entry.lag:>8}")
    typer.echo(f"total lag {sum(entry.lag for entry in lags)} over {len(lags)} group/topic pair(s)")


@operators_cli.command("hash-password")
def operators_hash_password() -> None:
    """Hash a console password for the operator registry (BRUG_OPERATORS_PATH)."""
    from adapters.operators import hash_password

    password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    typer.echo(hash_password(password))


def _print_status(statuses) -> None:  # type: ignore[no-untyped-def]
    width = max(len(status.name) for status in statuses)
    for status in statuses:
        mark = "healthy  " if status.healthy else "UNHEALTHY"
        pid = f" pid {status.pid}" if status.pid else ""
        typer.echo(f"{status.name:<{width}}  {mark} {status.detail}{pid}")
