"""``brug erase --bsn`` against the running stack: markers seeded through the whole loop (a
referral to a Kafka organisation with its feedback and a signal, a second one delivered by
webhook, a dead letter carrying the coach's text and the BSN) are found in none of a full
``pg_dump`` of the ledger, the services' logs or their span files once the patient is
erased; the GP's Task stays and the erasure is in the audit trail."""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from adapters.database import make_engine, sqlalchemy_url
from adapters.ledger.tables import audit_log, dead_letters
from adapters.pseudonyms import DEV_PSEUDONYM_KEY, bsn_pseudonym
from adapters.sealing import DEV_DEAD_LETTER_KEYS, Sealer, is_sealed
from contracts import topics
from deploy.cli import app
from deploy.devstack.postgres import postgres_bin_dir
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import (
    WELFARE_AMSTERDAM,
    WebhookReceiver,
    new_bundle,
    referral_id_of,
    resource,
    task_of,
)
from tests.e2e.test_referral_path import case_entry
from tests.helpers import eventually, produce

pytestmark = pytest.mark.integration

DYNAMO = "dynamo-amsterdam"
BSN = "961145936"  # passes the elfproef; used by this test only
TAG = uuid.uuid4().hex[:8]  # markers unique to this run
FAMILY, GIVEN = f"Erasmarker{TAG}", f"Wilhelmina{TAG}"
PHONE = "06-55501739"
NOTE = f"Zoekt de Kroosvijververeniging {TAG}"
SUMMARY = f"Gekoppeld aan het Knotwilgenkoor {TAG}"
SIGNAL = f"Kortademig bij de Hoepelclub {TAG}"
PARKED = f"Verdwaalde tekst {TAG}"
MARKERS = [FAMILY, GIVEN, PHONE, NOTE, SUMMARY, SIGNAL, PARKED, BSN]


def _bundle(postcode: str | None = None) -> dict[str, Any]:
    bundle = new_bundle()
    patient = resource(bundle, "Patient")
    patient["identifier"][0]["value"] = BSN
    patient["name"] = [{"use": "official", "family": FAMILY, "given": [GIVEN]}]
    patient["telecom"] = [{"system": "phone", "value": PHONE, "use": "mobile"}]
    if postcode is not None:
        patient["address"] = [
            {
                "use": "home",
                "line": ["Dorpsstraat 20"],
                "postalCode": postcode,
                "city": "Zoetermeer",
            }
        ]
    resource(bundle, "ServiceRequest")["note"] = [{"text": NOTE}]
    return bundle


def _pg_dump(database_url: str) -> str:
    url = make_url(sqlalchemy_url(database_url)).set(drivername="postgresql")
    dumped = subprocess.run(
        [str(postgres_bin_dir() / "pg_dump"), "--dbname", url.render_as_string(False)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dumped.stdout


def _written(stack: DevStack) -> dict[str, str]:
    return {
        str(path): path.read_text(errors="replace")
        for folder in (stack.config.state_dir / "logs", stack.trace_dir)
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def test_erasure_leaves_no_marker_in_the_database_logs_or_spans(
    stack: DevStack,
    gp: httpx.Client,
    social: httpx.Client,
    webhook_receiver: WebhookReceiver,
    kafka_topics: str,
    database_url: str,
) -> None:
    # A referral to a Kafka organisation, its details fetched, a signal and the feedback.
    reply = gp.post("", json=_bundle())
    assert reply.status_code == 201, reply.text
    task = task_of(reply)
    rid = referral_id_of(task)
    assert FAMILY in json.dumps(case_entry(stack, DYNAMO, rid)["details"])
    social.headers["Authorization"] = f"Bearer {WELFARE_AMSTERDAM}"
    now = datetime.now(UTC).isoformat()
    signal = {"signal_id": str(uuid.uuid4()), "kind": "health-concern", "text": SIGNAL}
    sent = social.post(f"/social/v1/referrals/{rid}/signals", json=signal | {"occurred_at": now})
    assert sent.status_code == 202, sent.text
    for sequence, status, extra in (
        (1, "accepted", {}),
        (2, "completed", {"outcome": {"summary": SUMMARY}}),
    ):
        body = {"status": status, "sequence": sequence, "occurred_at": now} | extra
        posted = social.post(f"/social/v1/referrals/{rid}/status", json=body)
        assert posted.status_code == 202, posted.text
    # A second referral of the same patient, to an organisation served by webhook.
    by_webhook = referral_id_of(task_of(gp.post("", json=_bundle("2712 AB"))))
    # A status record that breaks the contract, with the coach's text and the BSN in it.
    broken: dict[str, Any] = {"specversion": "1.0", "id": str(uuid.uuid4()), "subject": rid}
    broken["data"] = {"referral_id": rid, "outcome": {"summary": PARKED}, "bsn": BSN}
    produce(kafka_topics, topics.social_status(DYNAMO), json.dumps(broken).encode(), rid.encode())

    engine = make_engine(database_url)
    try:
        eventually(
            lambda: gp.get(f"/Task/{task['id']}").json()["status"] == "completed",
            "the GP's Task completed",
        )
        eventually(
            lambda: SIGNAL in gp.get("/Communication", params={"based-on": rid}).text,
            "the signal reached the GP",
        )
        eventually(lambda: webhook_receiver.attempts_for(by_webhook), "the webhook was sent")

        sealer = Sealer.parse(DEV_DEAD_LETTER_KEYS)  # the stack's (deploy/devstack/stack.py)

        def parked() -> bool:
            with engine.connect() as connection:
                letters = connection.execute(
                    select(dead_letters.c.dead_letter_id, dead_letters.c.original_value)
                ).all()
            return any(  # sealed at rest: it is found by opening it
                is_sealed(value) and PARKED in sealer.open(value, bound_to=letter_id)
                for letter_id, value in letters
            )

        eventually(parked, "the broken record was parked in the ledger, sealed")
        before = _pg_dump(database_url)
        assert all(marker in before for marker in (FAMILY, SUMMARY, SIGNAL))
        # The dead letter's original (the coach's text and the BSN) is sealed at rest.
        assert PARKED not in before and BSN not in before

        erased = CliRunner().invoke(
            app, ["erase", "--bsn", BSN, "--yes", "--database-url", database_url]
        )
        assert erased.exit_code == 0, erased.output
        assert "erased 2 referral(s)" in erased.output

        dump = _pg_dump(database_url)
        for marker in MARKERS:
            assert marker not in dump, f"{marker!r} is still in the database"
        with engine.connect() as connection:
            audited = connection.execute(
                select(audit_log.c.referral_id, audit_log.c.patient_pseudonym).where(
                    audit_log.c.action == "erased"
                )
            ).all()
    finally:
        engine.dispose()
    assert {(str(r), p) for r, p in audited} >= {
        (rid, bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY)),
        (by_webhook, bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY)),
    }
    # The GP's Task stays (ids and codes); the organisation gets 410 for the details.
    assert gp.get(f"/Task/{task['id']}").json()["status"] == "completed"
    assert social.get(f"/social/v1/referrals/{rid}").status_code == 410
    for where, text in _written(stack).items():
        for marker in MARKERS:
            assert marker.lower() not in text.lower(), f"{marker!r} is in {where}"
