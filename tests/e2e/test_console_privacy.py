"""The privacy officer's patient access report in a real browser against the running
stack: for a BSN, who accessed the patient's data, when, why and with what result; only a
privacy officer may ask, with a reason, and the lookup itself is audited."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from adapters.database import make_engine
from adapters.ledger.tables import audit_log
from adapters.pseudonyms import DEV_PSEUDONYM_KEY, bsn_pseudonym
from deploy.devstack.stack import DevStack
from tests.e2e.conftest import new_bundle, referral_id_of, resource, task_of
from tests.e2e.test_console import browser, log_in  # noqa: F401 (the browser fixture)

pytestmark = pytest.mark.integration

BSN = "371365120"  # passes the elfproef; used by this test only


def test_a_privacy_officer_lists_a_patients_accesses_and_the_lookup_is_audited(
    browser: Browser,  # noqa: F811
    stack: DevStack,
    gp: httpx.Client,
) -> None:
    person = f"uzi:{uuid.uuid4().hex[:9]}"
    bundle = new_bundle()
    resource(bundle, "Patient")["identifier"][0]["value"] = BSN
    reply = gp.post("", json=bundle, headers={"X-Brug-Person": person})
    assert reply.status_code == 201, reply.text
    referral_id = referral_id_of(task_of(reply))

    operator = log_in(browser, stack, "olga")
    expect(operator.get_by_role("link", name="Privacy")).to_have_count(0)
    assert operator.request.get(f"{stack.console_url}/privacy/accesses").status == 403
    csrf = operator.locator("form.who input[name=csrf]").get_attribute("value") or ""
    forced = operator.request.post(
        f"{stack.console_url}/privacy/accesses",
        form={"bsn": BSN, "reason": "I am curious who this patient is", "csrf": csrf},
    )
    assert forced.status == 403 and referral_id not in forced.text()

    officer = log_in(browser, stack, "pim")
    officer.get_by_role("link", name="Privacy").click()
    officer.fill("input[name=bsn]", "12345")
    officer.fill("textarea[name=reason]", "Patient asked (AVG art. 15), request 2026-117")
    officer.get_by_role("button", name="Show accesses").click()
    expect(officer.get_by_role("alert")).to_contain_text("nine digits")

    officer.fill("input[name=bsn]", BSN)
    officer.fill("textarea[name=reason]", "Patient asked (AVG art. 15), request 2026-117")
    officer.get_by_role("button", name="Show accesses").click()
    submitted = officer.locator("#accesses tbody tr").filter(has_text="submitted")
    expect(submitted).to_have_count(1)
    expect(submitted).to_contain_text(person)
    expect(submitted).to_contain_text("care-referral")
    expect(submitted).to_contain_text("allowed")
    expect(submitted.get_by_role("link", name=referral_id)).to_have_count(1)
    assert BSN not in officer.content(), "the page never shows the BSN back"

    engine = make_engine(stack.database_url)
    try:
        with engine.connect() as connection:
            lookups = connection.execute(
                select(audit_log.c.actor, audit_log.c.detail, audit_log.c.purpose).where(
                    (audit_log.c.action == "reported-accesses")
                    & (audit_log.c.patient_pseudonym == bsn_pseudonym(BSN, DEV_PSEUDONYM_KEY))
                )
            ).all()
    finally:
        engine.dispose()
    assert [(a.actor, a.purpose) for a in lookups] == [("operator:pim", "privacy-officer")]
    assert lookups[0].detail["reason"].startswith("Patient asked")
    assert lookups[0].detail["accesses"] >= 1
