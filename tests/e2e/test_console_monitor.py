"""The console's monitor page in a browser, over the running stack: referrals sent through
the FHIR edge show up, after disclosure control, in Amsterdam's referrals per month and
funnel. Set BRUG_SCREENSHOT_DIR=docs/screenshots to refresh console-monitor.png there."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from deploy.devstack.stack import DevStack
from tests.e2e.conftest import new_bundle, referral_id_of, task_of
from tests.e2e.test_console import browser, lelystad_bundle, log_in, screenshots
from tests.helpers import eventually

pytestmark = pytest.mark.integration

__all__ = ["browser", "screenshots"]  # the fixtures, shared with test_console


def test_the_monitor_page_shows_amsterdams_figures_after_disclosure_control(
    browser: Browser, stack: DevStack, gp: httpx.Client, screenshots: Path
) -> None:
    sent = [referral_id_of(task_of(gp.post("", json=new_bundle()))) for _ in range(5)]
    # Amsterdam and Lelystad add up to the national figure: were Lelystad's month 1 to 4
    # (the suite's earlier tests send a few), disclosure control would rightly hide
    # Amsterdam's month as its partner. Five more make Lelystad's month shown as well.
    sent += [referral_id_of(task_of(gp.post("", json=lelystad_bundle()))) for _ in range(5)]
    month = datetime.now(UTC).strftime("%Y-%m")
    page = log_in(browser, stack, "olga")
    page.click("nav >> text=Monitor")
    page.select_option("select[name=scope]", "municipality:GM0363")
    page.click("form.filters button[type=submit]")

    bars: list[str] = []

    def counted() -> int:
        page.reload()
        bar = page.locator("svg[aria-label='referrals per month of referral'] title")
        bars[:] = bar.all_text_contents()
        found = re.search(rf"{month}: (\d+)", " ".join(bars))
        return int(found.group(1)) if found else 0

    # The monitor may still be working through the suite's earlier events on a loaded box.
    amsterdam = len(sent) // 2
    try:
        eventually(lambda: counted() >= amsterdam, "Amsterdam's referrals this month", 60, 1.0)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; the bars said {bars}") from None
    expect(page.locator("h2").filter(has_text="Referrals per month")).to_contain_text("GM0363")
    expect(page.locator("svg[aria-label^='the funnel']")).to_be_visible()
    assert not [referral for referral in sent if referral in page.content()]
    page.screenshot(path=screenshots / "console-monitor.png", full_page=True)
