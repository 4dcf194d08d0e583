"""``brug audit …``: check the audit trail's hash chain, and answer a patient's question who
accessed their data (AVG art. 15). See ``adapters/ledger/audit_trail.py``."""

from __future__ import annotations

from typing import Annotated

import typer

audit_cli = typer.Typer(help="The NEN 7513 audit trail.", no_args_is_help=True)

DatabaseUrl = Annotated[
    str | None, typer.Option(help="The ledger (default BRUG_DATABASE_URL).", show_default=False)
]


@audit_cli.command("verify")
def verify(database_url: DatabaseUrl = None) -> None:
    """Walk the hash chains: report every deleted row (a gap in the sequence) and every
    altered one (its hash does not match); exit 1 if there is any, 0 when intact."""
    from adapters.ledger.audit_trail import verify_chain

    engine = _engine(database_url)
    try:
        with engine.connect() as connection:
            checked = verify_chain(connection)
    finally:
        engine.dispose()
    for problem in checked.problems:
        typer.echo(problem)
    head = "; ".join(
        f"chain {chain} head row {seq}, hash {row_hash}"
        for chain, (seq, row_hash) in sorted(checked.heads.items())
    )
    if not checked.intact:
        typer.echo(f"audit trail NOT intact: {len(checked.problems)} problem(s); {head}")
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {checked.rows} row(s); {head}")


@audit_cli.command("report")
def report(
    bsn: Annotated[str, typer.Option(help="The patient's BSN (used for the pseudonym only).")],
    database_url: DatabaseUrl = None,
) -> None:
    """Who accessed this patient's data, when, why, with what result (the AVG art. 15
    answer). The BSN is turned into its pseudonym (BRUG_PSEUDONYM_KEY) and not kept; the
    report itself is audited."""
    import getpass

    from adapters.ledger.audit_trail import accesses_of
    from adapters.ledger.repository import Ledger
    from adapters.pseudonyms import bsn_pseudonym
    from adapters.runtime import ServiceSettings

    bsn = bsn.strip()
    if len(bsn) != 9 or not bsn.isdigit():
        raise typer.BadParameter("a BSN is nine digits", param_hint="--bsn")
    settings = ServiceSettings()
    pseudonym = bsn_pseudonym(bsn, settings.pseudonym_key.get_secret_value())
    engine = _engine(database_url or settings.database_url)
    try:
        with engine.begin() as connection:
            accesses = accesses_of(connection, pseudonym)
            Ledger(connection).audit(
                actor=f"cli:{getpass.getuser()}",
                action="reported-accesses",
                referral_id=None,
                detail={"accesses": len(accesses)},
                patient_pseudonym=pseudonym,
            )
    finally:
        engine.dispose()
    typer.echo(f"patient {pseudonym[:12]}…: {len(accesses)} access(es)")
    typer.echo("when (UTC)  who  what  why  result  referral")
    for access in accesses:
        typer.echo(access.line())


def _engine(database_url: str | None):  # type: ignore[no-untyped-def]
    from adapters.database import make_engine
    from adapters.runtime import ServiceSettings

    return make_engine(database_url or ServiceSettings().database_url)
