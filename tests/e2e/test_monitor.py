"""The monitor in the running stack: a referral from a POH-GGZ over FHIR, routed to Dynamo,
received and accepted by its case system over HTTPS, becomes one row of the dataset with
the discipline, channel and days, and with none of what identifies the patient."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from adapters.database import make_engine
from adapters.ledger.tables import monitor_referrals
from contracts.fhir_systems import REFERRER_DISCIPLINE
from deploy.devstack.stack import DevStack
from domain.monitor.dataset import referral_pseudonym
from services.monitor.settings import DEV_MONITOR_KEY
from tests.e2e.conftest import WELFARE_AMSTERDAM, new_bundle, referral_id_of, resource, task_of
from tests.helpers import eventually

pytestmark = pytest.mark.integration

# What the sample Bundle says about Johanna that the dataset must never hold.
IDENTIFYING = ("Johanna", "Vries", "999993653", "1017", "Kerkstraat", "1946-03-02", "Jansen")


def _row(database_url: str, referral_id: str) -> dict[str, Any] | None:
    pseudonym = referral_pseudonym(uuid.UUID(referral_id), DEV_MONITOR_KEY)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                select(monitor_referrals).where(monitor_referrals.c.pseudonym == pseudonym)
            ).one_or_none()
    finally:
        engine.dispose()
    return dict(row._mapping) if row is not None else None


def test_a_referral_and_its_statuses_become_one_row_without_identity(
    stack: DevStack, gp: httpx.Client, social: httpx.Client, database_url: str
) -> None:
    bundle = new_bundle()
    resource(bundle, "PractitionerRole")["code"] = [
        {"coding": [{"system": REFERRER_DISCIPLINE, "code": "poh-ggz"}]}
    ]
    referral_id = referral_id_of(task_of(gp.post("", json=bundle)))

    row = eventually(
        lambda: (r := _row(database_url, referral_id)) and r["organisation_id"] and r,
        "the referral in the dataset",
        timeout=30,
    )
    assert (row["referrer_discipline"], row["channel"]) == ("poh-ggz", "fhir-rest")
    assert (row["municipality_code"], row["organisation_id"]) == ("GM0363", "dynamo-amsterdam")
    assert row["age_band"] == "75-84"

    social.headers["Authorization"] = f"Bearer {WELFARE_AMSTERDAM}"
    for sequence, status in enumerate(("received", "accepted"), start=1):
        posted = social.post(
            f"/social/v1/referrals/{referral_id}/status",
            json={
                "status": status,
                "sequence": sequence,
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        )
        assert posted.status_code == 202, posted.text
    today = datetime.now(UTC).date()
    row = eventually(
        lambda: (r := _row(database_url, referral_id)) and r["accepted_on"] and r,
        "the statuses in the dataset",
        timeout=30,
    )
    assert row["received_on"] == row["accepted_on"] == today
    stored = json.dumps(row, default=str)
    assert not [marker for marker in IDENTIFYING if marker in stored]
    assert referral_id not in stored
