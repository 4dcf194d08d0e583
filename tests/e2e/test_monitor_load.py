"""Issue 14's "done when", over the running stack: 200 synthetic referrals
(``deploy/synthetic_load.py``) submitted by the GP systems over FHIR and answered by the
case systems over Kafka become 200 monitor rows whose every report figure is the ground
truth the generator kept; the published report resists the differencing attack; the
rebuilt dataset equals the live one; and neither the monitor's tables nor an export hold
anything that identifies the synthetic patients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from adapters.database import make_engine
from adapters.kafka_security import KafkaCredentials
from adapters.ledger.tables import monitor_referrals
from adapters.monitor.export import write_package
from adapters.monitor.rebuild import differences, rebuild
from deploy.demo_load import await_monitor, run_load
from deploy.devstack.kafka import dev_principal
from deploy.devstack.stack import DevStack, dev_tokens
from deploy.synthetic_load import MUNICIPALITIES, draw, expected_counts, expected_record
from domain.monitor.disclosure import Threshold
from domain.monitor.periods import Period
from domain.monitor.reports import NATIONAL, ground_truth, protect_year, relations
from services.monitor.settings import DEV_MONITOR_KEY
from tests.e2e.conftest import OVERDUE_AT_ONCE
from tests.unit.test_monitor_disclosure import recovered

pytestmark = pytest.mark.integration

REFERRALS = 200
# Its service levels are 0 days in the e2e directory: its timers would race the answers.
MUNICIPALITIES_HERE = [m for m, v in MUNICIPALITIES.items() if v[0] != OVERDUE_AT_ONCE]
# Columns that would identify a person or a referral; the dataset has none of them.
IDENTITY_COLUMNS = ("name", "bsn", "birth", "postcode", "postal", "address", "referral_id")


def test_synthetic_load_gives_the_generators_figures_safely(
    stack: DevStack, database_url: str, tmp_path: Path
) -> None:
    plans = [
        p for p in draw(REFERRALS * 2, seed=1414) if p.municipality_code in MUNICIPALITIES_HERE
    ]
    plans = plans[:REFERRALS]
    result = run_load(
        plans,
        stack.fhir_base_url,
        stack.bootstrap_servers,
        dev_tokens(),
        dev_principal,
        timeout=90,  # bounds, not waits: on two busy cores the stack takes its time
    )
    pseudonyms = result.pseudonyms(DEV_MONITOR_KEY)
    expected = {
        p: expected_record(plan, p, result.day) for p, plan in zip(pseudonyms, plans, strict=True)
    }
    live = await_monitor(database_url, expected, timeout=90)
    assert len(live) == REFERRALS
    records = list(live.values())
    month = Period.parse(result.day.strftime("%Y-%m"))

    # Every figure is the generator's: the true counts, and the published report (the
    # medians and Positive Health means too) is the one the ground truth's records give.
    scopes = [
        NATIONAL,
        *(("municipality", m) for m in MUNICIPALITIES_HERE),
        *(("organisation", MUNICIPALITIES[m][0]) for m in MUNICIPALITIES_HERE),
    ]
    published = protect_year(records, month.year, Threshold(5))
    truth = protect_year(list(expected.values()), month.year, Threshold(5))
    for scope in scopes:
        assert ground_truth(records, scope, month) == expected_counts(plans, scope), scope
        for period in (month, Period.parse(str(month.year))):
            assert published.report(scope, period) == truth.report(scope, period), scope
    national = published.report(NATIONAL, month)["counts"]
    assert national["referrals"]["all"] == REFERRALS
    assert national["funnel"]["completed"] == sum(p.path == "completed" for p in plans)

    # The differencing attack recovers no suppressed cell of the published year.
    every = relations(published.counts, month.year)
    hidden = [k for k, shown in published.counts.items() if shown.suppressed]
    assert hidden, "small cells to protect"
    for figure in ("referrals", "declines", "funnel"):
        own = [r for r in every if {k[0] for k in (r.total, *r.parts)} == {figure}]
        cells = {k: shown for k, shown in published.counts.items() if k[0] == figure}
        assert recovered(cells, own, Threshold(5)) == {}, figure

    # Rebuilt from the topics, the dataset equals the live one.
    engine = make_engine(database_url)
    try:
        rebuilt = rebuild(
            engine,
            stack.bootstrap_servers,
            DEV_MONITOR_KEY,
            credentials=KafkaCredentials(),  # the suite's (its super user)
            swap=False,
        )
        assert rebuilt.rows >= REFERRALS
        with engine.connect() as connection:
            assert differences(connection) == []
            columns = [c["name"] for c in inspect(connection).get_columns("monitor_referrals")]
            table = [dict(r._mapping) for r in connection.execute(select(monitor_referrals))]
    finally:
        engine.dispose()

    # No identity column, and no marker, BSN or referral id in the table or an export.
    assert not [c for c in columns if any(word in c for word in IDENTITY_COLUMNS)]
    written = write_package(records, tmp_path / "csv", fmt="csv", period=str(month))
    written += write_package(records, tmp_path / "json", fmt="json", period=str(month))
    scanned = json.dumps(table, default=str) + "".join(p.read_text() for p in written)
    secrets = [m for plan in plans for m in plan.markers] + list(result.referral_ids)
    assert not [s for s in secrets if s in scanned]
    assert "Synth1414Mark" not in scanned
