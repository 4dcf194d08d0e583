"""``brug erase --referral ID`` / ``--bsn BSN``: erase one patient's personal data from the
ledger (``adapters/ledger/erasure.py``), recorded in the audit trail; and ``brug ledger
purge``: the retention sweep once (``adapters/ledger/retention.py``), as the console runs
it on a schedule."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer

DatabaseUrl = Annotated[
    str | None, typer.Option(help="The ledger (default BRUG_DATABASE_URL).", show_default=False)
]


def erase(
    referral: Annotated[
        str | None,
        typer.Option(help="A referral id, its Task id or the GP's ServiceRequest identifier."),
    ] = None,
    bsn: Annotated[
        str | None,
        typer.Option(help="The patient's BSN: every referral of theirs (used for the pseudonym)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Erase a patient's personal data: details, decline texts, outcomes, Communications'
    texts, webhook and outbox rows, dead letters naming them. The GP's Task (ids and
    codes), the monitor's pseudonymous rows and the audit trail stay; Kafka's copies age
    out with their topics' retention (docs/PRIVACY.md)."""
    from adapters.database import make_engine
    from adapters.ledger.erasure import erase_referrals, referrals_of_patient
    from adapters.ledger.operations import Operations
    from adapters.pseudonyms import bsn_pseudonym
    from adapters.runtime import ServiceSettings

    if (referral is None) == (bsn is None):
        raise typer.BadParameter("name either --referral or --bsn", param_hint="--referral/--bsn")
    settings = ServiceSettings()
    pseudonym = None
    if bsn is not None:
        bsn = bsn.strip()
        if len(bsn) != 9 or not bsn.isdigit():
            raise typer.BadParameter("a BSN is nine digits", param_hint="--bsn")
        pseudonym = bsn_pseudonym(bsn, settings.pseudonym_key.get_secret_value())
    engine = make_engine(database_url or settings.database_url)
    try:
        with engine.begin() as connection:
            if pseudonym is not None:
                ids = referrals_of_patient(connection, pseudonym)
            else:
                assert referral is not None
                found = Operations(connection).find_referral(referral)
                if found is None:
                    typer.echo(f"brug erase: no referral {referral!r}", err=True)
                    raise typer.Exit(1)
                ids = [found]
            if ids and not yes:
                typer.confirm(f"erase the personal data of {len(ids)} referral(s)?", abort=True)
            erased = erase_referrals(
                connection,
                ids,
                now=datetime.now(UTC),
                actor=f"cli:{getpass.getuser()}",
                bsn=bsn,
                pseudonym=pseudonym,
                sealer=settings.dead_letter_sealer(),
            )
    finally:
        engine.dispose()
    typer.echo(f"erased {len(ids)} referral(s): " + _counts(erased.counts()))
    for referral_id in ids:
        typer.echo(f"  {referral_id}")
    typer.echo("recorded in the audit trail (action erased); Kafka copies age out by retention")


def purge(database_url: DatabaseUrl = None) -> None:
    """Apply every table's retention once (BRUG_RETENTION_* settings; the console does this
    every BRUG_RETENTION_SWEEP_MINUTES); audited as ``purged``."""
    from adapters.database import make_engine
    from adapters.ledger.retention import RetentionSettings, sweep

    settings = RetentionSettings()
    engine = make_engine(database_url or settings.database_url)
    try:
        with engine.begin() as connection:
            done = sweep(
                connection,
                settings.retention_policy(),
                datetime.now(UTC),
                actor=f"cli:{getpass.getuser()}",
            )
    finally:
        engine.dispose()
    if done is None:
        typer.echo("another sweep is running; nothing done")
        return
    typer.echo("purged: " + _counts(done.counts()))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{table} {count}" for table, count in counts.items())
