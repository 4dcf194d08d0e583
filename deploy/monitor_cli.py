"""``brug monitor …``: the national monitor's dataset (issue 14, docs/MONITOR.md).

- ``rebuild``: replay Brug's event topics from the start into fresh rows, then swap them in
  (``adapters/monitor/rebuild.py``); ``--check`` rebuilds beside the live rows and reports
  where they differ, without swapping.
- ``export``: the pseudonymous rows as a package per the contract (CSV + datapackage.json,
  or JSON), for a period.
- ``report``: one municipality's, organisation's or the nation's figures for a month,
  quarter or year, after disclosure control (``domain/monitor/reports.py``).
- ``merge``: several installations' signed export packages into the national report,
  disclosure control after the merge (``domain/monitor/federation.py``); ``keygen``: a
  signing key pair for the packages.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

monitor_cli = typer.Typer(help="The national monitor's minimal dataset.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None, typer.Option(help="The ledger (default BRUG_DATABASE_URL).", show_default=False)
]
PeriodOption = Annotated[
    str | None, typer.Option(help="A month (2026-10), quarter (2026-Q4) or year (2026).")
]


def _settings():  # type: ignore[no-untyped-def]
    from services.monitor.settings import MonitorSettings

    return MonitorSettings()


def _engine(database_url: str | None):  # type: ignore[no-untyped-def]
    from adapters.database import make_engine

    return make_engine(database_url or _settings().database_url)


def _period(text: str | None):  # type: ignore[no-untyped-def]
    from domain.monitor.periods import Period

    if text is None:
        return None
    try:
        return Period.parse(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--period") from None


def _records(database_url: str | None, period: object = None) -> list:  # type: ignore[type-arg]
    from adapters.monitor.store import MonitorStore

    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            months = period.months() if period is not None else None  # type: ignore[attr-defined]
            return MonitorStore(connection).records(months)
    finally:
        engine.dispose()


@monitor_cli.command("rebuild")
def rebuild_command(
    check: Annotated[
        bool,
        typer.Option("--check", help="Rebuild beside the live rows and compare; do not swap."),
    ] = False,
    allow_truncated: Annotated[
        bool,
        typer.Option(
            "--allow-truncated",
            help="Rebuild even where records have aged out of a topic (the rebuilt dataset "
            "then lacks those referrals).",
        ),
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Replay every monitored topic from its first record into fresh rows and swap them in
    (the live service keeps running; it waits for the swap)."""
    from adapters.monitor.rebuild import RebuildRefused, differences, rebuild

    settings = _settings()
    engine = _engine(database_url)
    try:
        result = rebuild(
            engine,
            settings.kafka_bootstrap_servers,
            settings.monitor_key.get_secret_value(),
            credentials=settings.kafka_credentials,
            swap=not check,
            allow_truncated=allow_truncated,
        )
        with engine.connect() as connection:
            differing = differences(connection) if check else []
    except RebuildRefused as refused:
        typer.echo(f"brug monitor rebuild: {refused}", err=True)
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    outcomes = ", ".join(f"{o.value} {n}" for o, n in sorted(result.outcomes.items()))
    typer.echo(
        f"read {result.records} record(s) from {result.partitions} partition(s)"
        + (f" ({outcomes})" if outcomes else "")
    )
    if result.truncated:
        typer.echo(f"records had aged out of: {', '.join(result.truncated)}")
    if result.swapped:
        typer.echo(f"swapped in: {result.rows} row(s)")
        return
    typer.echo(f"rebuilt {result.rows} row(s) beside the live ones (not swapped)")
    if differing:
        typer.echo(f"{len(differing)} row(s) differ from the live dataset")
        raise typer.Exit(1)
    typer.echo("the rebuilt rows equal the live ones")


@monitor_cli.command("export")
def export_command(
    out: Annotated[Path, typer.Option(help="Folder to write the package into.")],
    period: PeriodOption = None,
    fmt: Annotated[str, typer.Option("--format", help="csv (and datapackage.json), json")] = "csv",
    installation: Annotated[
        str | None,
        typer.Option(
            help="This installation's id in a signed package (BRUG_MONITOR_INSTALLATION)."
        ),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """The pseudonymous rows (by month of referral) as a package per contracts/monitor.
    With BRUG_MONITOR_SIGNING_KEY set a CSV package is signed (manifest.json with the
    files' SHA-256, manifest.sig), for `brug monitor merge` elsewhere."""
    from adapters.monitor.export import write_package
    from adapters.monitor.packages import KeyRefused, public_key_text, signing_key

    if fmt not in ("csv", "json"):
        raise typer.BadParameter("csv or json", param_hint="--format")
    settings = _settings()
    key_text = settings.monitor_signing_key
    signer = installation or settings.monitor_installation
    key = None
    if key_text is not None and fmt == "csv":
        try:
            key = signing_key(key_text.get_secret_value())
        except KeyRefused as refused:
            typer.echo(f"brug monitor export: BRUG_MONITOR_SIGNING_KEY: {refused}", err=True)
            raise typer.Exit(1) from None
        if not signer or not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", signer):
            raise typer.BadParameter(
                "a signed package names its installation (a-z, 0-9, -): "
                "--installation or BRUG_MONITOR_INSTALLATION",
                param_hint="--installation",
            )
    chosen = _period(period)
    records = _records(database_url, chosen)
    label = str(chosen) if chosen is not None else None
    if key is not None and signer:
        from adapters.monitor.packages import write_signed_package

        written = write_signed_package(records, out, installation=signer, period=label, key=key)
        typer.echo(f"signed by {signer}, public key {public_key_text(key)}")
    else:
        written = write_package(records, out, fmt="json" if fmt == "json" else "csv", period=label)
    typer.echo(f"{len(records)} referral(s): " + ", ".join(str(path) for path in written))


@monitor_cli.command("keygen")
def keygen_command() -> None:
    """A new Ed25519 key pair for signing export packages: the private key for this
    installation's BRUG_MONITOR_SIGNING_KEY (a secret), the public key for whoever merges."""
    from adapters.monitor.packages import new_signing_key

    private, public = new_signing_key()
    typer.echo(f"BRUG_MONITOR_SIGNING_KEY={private}")
    typer.echo(f"public key: {public}")


@monitor_cli.command("merge")
def merge_command(
    packages: Annotated[list[Path], typer.Argument(help="Package folders, one per installation.")],
    period: Annotated[str, typer.Option(help="A month (2026-10), quarter (2026-Q4) or year.")],
    trust: Annotated[
        list[str] | None,
        typer.Option(help="installation=<base64 Ed25519 public key>; repeat per installation."),
    ] = None,
    trust_file: Annotated[
        Path | None, typer.Option(help="A file of installation=<public key> lines.")
    ] = None,
    profile: Annotated[str, typer.Option(help="Disclosure control: kN (k5 …) or cbs.")] = "k5",
    fmt: Annotated[str, typer.Option("--format", help="text or json")] = "text",
) -> None:
    """Verify each installation's signed package, combine their rows and report the
    nation's and each municipality's figures, disclosure control applied after the merge.
    A package that is tampered with, untrusted or does not fit is refused (exit 1)."""
    from adapters.monitor.packages import KeyRefused, read_package, trust_entries
    from contracts.monitor import DATASET_VERSION
    from domain.monitor.disclosure import profile_named
    from domain.monitor.federation import PackageRefused, merge, national_report

    if fmt not in ("text", "json"):
        raise typer.BadParameter("text or json", param_hint="--format")
    chosen = _period(period)
    try:
        rules = profile_named(profile)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--profile") from None
    try:
        lines = list(trust or [])
        if trust_file is not None:
            lines += trust_file.read_text(encoding="utf-8").splitlines()
        trusted = trust_entries(lines)
        read = [read_package(path, trusted) for path in packages]
        protected = merge(read, DATASET_VERSION, chosen, rules)
    except (KeyRefused, PackageRefused, OSError) as refused:
        typer.echo(f"brug monitor merge: {refused}", err=True)
        raise typer.Exit(1) from None
    report = national_report(read, protected, chosen)
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(_merged_text(report))


def _merged_text(report: dict) -> str:  # type: ignore[type-arg]
    national = report["national"]
    lines = [
        f"national report {national['period']}, disclosure {national['disclosure']}, from "
        + ", ".join(f"{i['installation']} ({i['referrals']})" for i in report["installations"])
    ]
    for figure, categories in national["counts"].items():
        for category, value in categories.items():
            shown = "too few to show" if value is None else value
            lines.append(f"  {figure}.{category}: {shown}")
    for name in ("feedback_to_gp_within_30_days_share", "median_days_to_first_contact"):
        lines.append(f"  {name}: {'too few to show' if national[name] is None else national[name]}")
    for municipality in report["municipalities"]:
        value = municipality["counts"]["referrals"]["all"]
        shown = "too few to show" if value is None else value
        lines.append(f"{municipality['scope']['code']}: referrals {shown}")
    return "\n".join(lines)


@monitor_cli.command("report")
def report_command(
    period: Annotated[str, typer.Option(help="A month (2026-10), quarter (2026-Q4) or year.")],
    municipality: Annotated[str | None, typer.Option(help="CBS code, GMxxxx.")] = None,
    organisation: Annotated[str | None, typer.Option(help="A directory organisation id.")] = None,
    national: Annotated[bool, typer.Option("--national", help="The national figures.")] = False,
    profile: Annotated[str, typer.Option(help="Disclosure control: kN (k5 …) or cbs.")] = "k5",
    database_url: DatabaseUrl = None,
) -> None:
    """The figures one municipality, organisation or the nation may see, suppressed where a
    count is small and where a small count could be derived from the totals."""
    from domain.monitor.disclosure import profile_named
    from domain.monitor.reports import NATIONAL, protect_year

    scopes = [
        ("municipality", municipality) if municipality else None,
        ("organisation", organisation) if organisation else None,
        NATIONAL if national else None,
    ]
    chosen_scopes = [scope for scope in scopes if scope is not None]
    if len(chosen_scopes) != 1:
        raise typer.BadParameter(
            "name one of --municipality, --organisation, --national", param_hint="--municipality"
        )
    scope = chosen_scopes[0]
    if municipality and not re.fullmatch(r"GM[0-9]{4}", municipality):
        raise typer.BadParameter("a CBS code: GM and four digits", param_hint="--municipality")
    chosen = _period(period)
    try:
        rules = profile_named(profile)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--profile") from None
    records = _records(database_url)
    protected = protect_year(records, chosen.year, rules)
    typer.echo(json.dumps(protected.report(scope, chosen), indent=2))
