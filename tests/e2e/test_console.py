"""The operator console in a real browser (Debian's Chromium, driven by Playwright) against
the running stack with real traffic: logging in, flows moving, one referral's timeline (and
``brug trace`` printing the same), the privacy officer's audited reveal, and a dead-lettered
referral found, fixed, replayed and delivered. ``brug dlq`` acts on dead letters too.

Set BRUG_SCREENSHOT_DIR=docs to refresh the screenshots the README shows.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from contracts import topics
from deploy.devstack.stack import SERVICES, DevStack
from tests.e2e.conftest import new_bundle, referral_id_of, resource, task_of
from tests.helpers import eventually, produce

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("BRUG_CHROMIUM", "/usr/bin/chromium")
PASSWORDS = {"olga": "dev-operator-olga", "pim": "dev-privacy-pim"}
LELYSTAD = "GM0995"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    return Path(os.environ.get("BRUG_SCREENSHOT_DIR", tmp_path))


def log_in(browser: Browser, stack: DevStack, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(f"{stack.console_url}/flows")
    expect(page).to_have_url(re.compile(r"/login\?next=/flows"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORDS[username])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/flows$"))
    return page


def reload_until(page: Page, locator: Locator, timeout: float = 30.0) -> None:
    """For pages that do not refresh themselves: reload until ``locator`` shows up."""
    deadline = time.monotonic() + timeout
    while locator.count() == 0:
        assert time.monotonic() < deadline, f"{locator} did not appear"
        time.sleep(0.3)
        page.reload()


def brug(stack: DevStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "BRUG_DATABASE_URL": stack.database_url,
        "BRUG_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
    }
    return subprocess.run(
        [sys.executable, "-c", "from deploy.cli import main; main()", *arguments],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
        check=False,
    )


def case_entries(stack: DevStack, organisation: str, referral_id: str) -> list[dict[str, Any]]:
    case_file = stack.case_file(organisation)
    if not case_file.exists():
        return []
    entries = (json.loads(line) for line in case_file.read_text().splitlines() if line)
    return [entry for entry in entries if entry.get("referral_id") == referral_id]


def submit(gp: httpx.Client, bundle: dict[str, Any]) -> str:
    reply = gp.post("", json=bundle)
    assert reply.status_code == 201, reply.text
    return referral_id_of(task_of(reply))


def timeline_steps(page: Page) -> list[str]:
    return page.locator("#timeline tbody tr td:nth-child(4)").all_inner_texts()


def test_logging_in_is_required_and_the_flows_move_as_referrals_are_sent(
    browser: Browser, stack: DevStack, gp: httpx.Client, screenshots: Path
) -> None:
    anonymous = browser.new_page()
    anonymous.goto(f"{stack.console_url}/stuck")
    expect(anonymous).to_have_url(re.compile(r"/login\?next=/stuck"))
    anonymous.fill("input[name=username]", "olga")
    anonymous.fill("input[name=password]", "not-her-password")
    anonymous.click("button[type=submit]")
    expect(anonymous.locator(".error")).to_contain_text("wrong password")

    page = log_in(browser, stack, "olga")
    submitted_row = page.locator("table.flows tr").filter(has_text=topics.REFERRALS_SUBMITTED)
    last_hour = submitted_row.locator("td").nth(3)
    before = int(last_hour.inner_text())
    for _ in range(3):
        submit(gp, new_bundle())
    # The page refreshes itself: no reload here.
    expect(last_hour).to_have_text(str(before + 3), timeout=30_000)
    expect(submitted_row.locator("svg.spark rect").first).to_be_visible()
    expect(page.locator("table").filter(has_text="consumer group")).to_contain_text("brug-router")
    page.screenshot(path=screenshots / "console-flows.png", full_page=True)

    page.goto(f"{stack.console_url}/health")
    for service in SERVICES:
        expect(page.locator("tr").filter(has_text=service).first).to_contain_text(" up ")
    expect(page.locator("tr").filter(has_text="PostgreSQL")).to_contain_text("reachable")


def test_a_referral_timeline_shows_every_step_and_brug_trace_prints_the_same(
    browser: Browser, stack: DevStack, gp: httpx.Client, screenshots: Path
) -> None:
    bundle = new_bundle()
    identifier = resource(bundle, "ServiceRequest")["identifier"][0]["value"]
    referral_id = submit(gp, bundle)
    eventually(lambda: case_entries(stack, "dynamo-amsterdam", referral_id), "at the case system")
    task_of_id(gp, referral_id)  # the GP system looks for its Task: that is a step too

    page = log_in(browser, stack, "olga")
    page.fill("header input[name=q]", identifier)
    page.press("header input[name=q]", "Enter")
    expect(page.locator("h1")).to_contain_text(referral_id)
    reload_until(page, page.locator("#timeline td").filter(has_text="details fetched"))
    steps = timeline_steps(page)
    journey = [
        "received from the GP system and translated",
        "assigned to a welfare organisation",
        "delivered ReferralCreated to the organisation's topic",
        "details fetched by the case system",
    ]
    assert [step for step in steps if step in journey] == journey
    # Stamped on Kafka's acknowledgement, which the router may beat: after intake, that is all.
    acknowledged = steps.index("ReferralSubmitted acknowledged by Kafka")
    assert acknowledged > steps.index("received from the GP system and translated")
    assert "Hidden" in page.locator("section").filter(has_text="Personal details").inner_text()
    page.screenshot(path=screenshots / "console-timeline.png", full_page=True)

    rows = page.locator("#timeline tbody tr").all()
    cells = [row.locator("td").all_inner_texts() for row in rows]
    trace = brug(stack, "trace", identifier)
    assert trace.returncode == 0, trace.stderr
    lines = trace.stdout.splitlines()
    assert lines[0].startswith(f"referral {referral_id}")
    # The trace the intake started: on the page, in `brug trace`, and in the router's spans.
    trace_id = page.locator("div").filter(has=page.locator("dt", has_text="trace id")).locator("dd")
    assert re.fullmatch(r"[0-9a-f]{32}", trace_id.inner_text())
    assert lines[0].endswith(f"trace {trace_id.inner_text()}")
    assert trace_id.inner_text() in (stack.trace_dir / "router.jsonl").read_text()
    step_lines = lines[1 : 1 + len(cells)]
    assert lines[1 + len(cells)].startswith(f"{len(cells)} steps, first to last")
    for (when, took, service, step, detail), line in zip(cells, step_lines, strict=True):
        assert line.startswith(when)
        assert took.strip() in line
        assert f" {service} " in line and step in line and detail.strip() in line


def task_of_id(gp: httpx.Client, referral_id: str) -> str:
    """The GP system's Task for a referral, found by its own search (and read, as a GP would)."""
    found = gp.get("Task", params={"_count": 100, "_sort": "-_lastUpdated"}).json()
    for entry in found.get("entry", []):
        if referral_id_of(entry["resource"]) == referral_id:
            return str(entry["resource"]["id"])
    raise AssertionError("the GP system does not find its Task")


def test_only_a_privacy_officer_may_reveal_details_and_the_reveal_is_audited(
    browser: Browser, stack: DevStack, gp: httpx.Client
) -> None:
    bundle = new_bundle()
    family = resource(bundle, "Patient")["name"][0]["family"]
    referral_id = submit(gp, bundle)

    operator = log_in(browser, stack, "olga")
    operator.goto(f"{stack.console_url}/referrals/{referral_id}")
    expect(operator.locator("h1")).to_contain_text(referral_id)
    expect(operator.get_by_role("button", name="Reveal details")).to_have_count(0)
    assert family not in operator.content()
    csrf = operator.locator("form.who input[name=csrf]").get_attribute("value") or ""
    forced = operator.request.post(
        f"{stack.console_url}/referrals/{referral_id}/reveal",
        form={"reason": "I would like to see who this is", "csrf": csrf},
    )
    assert forced.status == 403
    assert family not in forced.text()
    without_token = operator.request.post(
        f"{stack.console_url}/dead-letters/anything/discard", form={"note": "no token"}
    )
    assert without_token.status == 403 and "CSRF" in without_token.text()
    garbled = operator.request.get(f"{stack.console_url}/referrals/not-a-referral-id")
    assert garbled.status == 400 and "referral_id" in garbled.text()

    officer = log_in(browser, stack, "pim")
    officer.goto(f"{stack.console_url}/referrals/{referral_id}")
    officer.fill("textarea[name=reason]", "Complaint by the patient, case 2026-118")
    officer.get_by_role("button", name="Reveal details").click()
    expect(officer.locator("#details")).to_contain_text(family)
    accesses = officer.locator("section").filter(has_text="Accessed by operators")
    officer.goto(f"{stack.console_url}/referrals/{referral_id}")
    expect(accesses).to_contain_text("operator:pim")
    expect(accesses).to_contain_text("revealed-details")
    expect(accesses).to_contain_text("Complaint by the patient")
    expect(officer.locator("#details")).to_have_count(0)  # a reveal lasts one page


def lelystad_bundle() -> dict[str, Any]:
    bundle = copy.deepcopy(new_bundle())
    resource(bundle, "Patient")["address"] = [
        {"use": "home", "line": ["Stationsplein 3"], "postalCode": "8211 AB", "city": "Lelystad"}
    ]
    return bundle


def rewrite_directory(path: Path, content: str) -> None:
    """Atomically, as a deployment would: the router never reads half a file."""
    staged = path.with_suffix(".staged")
    staged.write_text(content)
    os.replace(staged, path)


def test_a_dead_lettered_referral_is_found_fixed_replayed_and_arrives(
    browser: Browser, stack: DevStack, gp: httpx.Client, screenshots: Path
) -> None:
    directory_path = stack.config.directory_path
    original = directory_path.read_text()
    directory = json.loads(original)
    # Lelystad's organisation leaves the directory (a handover to a new one is under way).
    directory["organisations"] = [
        organisation
        for organisation in directory["organisations"]
        if LELYSTAD not in organisation["municipalities"]
    ]
    directory["version"] = f"{directory['version']}-lelystad-handover"
    # A directory change reaches the router while the gateway still has the old one:
    # the gateway accepts a Lelystad referral that the router then cannot route.
    rewrite_directory(directory_path, json.dumps(directory))
    try:
        referral_id = submit(gp, lelystad_bundle())
        page = log_in(browser, stack, "olga")
        page.goto(f"{stack.console_url}/stuck")
        dead_letter = page.locator("tr[data-dead-letter]").filter(
            has=page.locator(f"a[href='/referrals/{referral_id}']")
        )
        reload_until(page, dead_letter)
        expect(dead_letter).to_contain_text("unroutable")
        expect(page.locator("#unroutable")).to_contain_text(referral_id)
        listed = brug(stack, "dlq", "list")
        assert referral_id in listed.stdout and "unroutable" in listed.stdout
    finally:
        rewrite_directory(directory_path, original)  # the fix

    dead_letter.get_by_role("textbox", name="note", exact=True).fill(
        "Lelystad served again after the handover"
    )
    dead_letter.get_by_role("button", name="Replay").click()
    expect(page.locator(".notice")).to_contain_text("replayed to brug.referrals.submitted.v1")
    eventually(lambda: case_entries(stack, "welzijn-lelystad", referral_id), "at the case system")
    assert case_entries(stack, "welzijn-lelystad", referral_id)[0]["details_status"] == 200

    page.goto(f"{stack.console_url}/referrals/{referral_id}")
    reload_until(page, page.locator("#timeline td").filter(has_text="details fetched"))
    steps = timeline_steps(page)
    assert steps.index("dead-lettered: unroutable") < steps.index(
        "dead letter replayed by an operator"
    )
    assert steps.index("dead letter replayed by an operator") < steps.index(
        "delivered ReferralCreated to the organisation's topic"
    )
    # Held while unroutable, released when the replay routed it: the GP's Task moved on.
    released = max(i for i, step in enumerate(steps) if step == "Task status requested")
    assert steps.index("Task status on-hold") < released
    page.screenshot(path=screenshots / "console-replayed-timeline.png", full_page=True)

    again = brug(stack, "dlq", "replay", _dead_letter_id(stack, referral_id))
    assert again.returncode == 1 and "already replayed" in again.stderr


def _dead_letter_id(stack: DevStack, referral_id: str) -> str:
    listed = brug(stack, "dlq", "list", "--state", "all").stdout.splitlines()
    return next(line.split()[0] for line in listed if referral_id in line)


def test_brug_dlq_shows_and_discards_a_dead_letter_with_a_note(
    stack: DevStack, kafka_topics: str
) -> None:
    key = str(uuid.uuid4())
    produce(kafka_topics, topics.REFERRALS_SUBMITTED, b"{not json", key.encode())
    eventually(lambda: key in brug(stack, "dlq", "list").stdout, "listed by brug dlq")
    dead_letter_id = _dead_letter_id(stack, key)

    shown = brug(stack, "dlq", "show", dead_letter_id)
    assert "invalid-payload" in shown.stdout and "(hidden)" in shown.stdout
    assert "{not json" not in shown.stdout

    refused = brug(stack, "dlq", "discard", dead_letter_id, "--note", " ")
    assert refused.returncode == 1 and "a note is required" in refused.stderr
    discarded = brug(stack, "dlq", "discard", dead_letter_id, "--note", "test garbage")
    assert discarded.returncode == 0, discarded.stderr
    assert dead_letter_id not in brug(stack, "dlq", "list").stdout
    assert "discarded" in brug(stack, "dlq", "show", dead_letter_id).stdout
