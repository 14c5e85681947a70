"""The log-history pages an auditor reads, at a laptop's 1280 px: lists fit, timeline in sentences."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from tests.e2e.test_auditor_journey import log_in
from tests.logs.conftest import History

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LISTS = {
    "call-logs": "/admin/logs/calllog/",
    "message-logs": "/admin/logs/messagelog/",
    "placeholders": "/admin/rules/placeholdercontact/",
}


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, "locale": "en-US"}


def horizontal_overflow(page: Page, selector: str | None = None) -> int:
    """How many pixels the page (or the element at `selector`) is wider than its box: 0 or
    less when nothing scrolls sideways."""
    script = "(s) => { const e = s ? document.querySelector(s) : document.scrollingElement;"
    script += " return e.scrollWidth - e.clientWidth; }"
    return int(page.evaluate(script, selector))


@pytest.mark.parametrize(
    "name",
    list(LISTS),
)
def test_list_fits_1280_px(
    page: Page, live_server, auditor: User, history: History, shoot: Callable[[str], Path], name: str
) -> None:
    log_in(page, live_server.url, auditor)
    page.goto(live_server.url + LISTS[name])
    expect(page.locator("#result_list")).to_be_visible()
    shoot(name)
    assert horizontal_overflow(page) <= 0
    # Django's admin scrolls a wide table inside its own box: that counts as not fitting.
    assert horizontal_overflow(page, "#changelist .results") <= 0


def test_login_timeline_and_dashboard_at_1280_px(
    page: Page, live_server, auditor: User, history: History, shoot: Callable[[str], Path]
) -> None:
    page.goto(live_server.url + "/admin/")
    expect(page.locator("#site-name")).to_have_text("App Connect connector server")
    expect(page).to_have_title(re.compile("App Connect connector server"))
    shoot("login")
    log_in(page, live_server.url, auditor)

    page.goto(live_server.url + f"/admin/logs/calllog/{history.placeholder_call.pk}/change/")
    steps = page.locator("table.timeline tbody tr")
    expect(steps.nth(1)).to_contain_text("Rule created placeholder Jane Caller")
    expect(steps.nth(2)).to_contain_text("Logged in the CRM as crm-777")
    expect(steps.nth(0).locator("td.field-time")).to_have_text(re.compile(r"\d\d:\d\d:\d\d$"))
    raw = steps.nth(1).locator("details pre")
    expect(raw).to_be_hidden()
    steps.nth(1).locator("details summary").click()
    expect(raw).to_contain_text('"contactName": "Jane Caller"')
    shoot("call-timeline")
    assert horizontal_overflow(page) <= 0

    page.goto(live_server.url + "/admin/logs/calllog/dashboard/")
    expect(page.locator(".dash-panel").first.locator(".dash-axis-x span")).not_to_have_count(0)
    expect(page.locator("#dashboard-days tbody tr")).to_have_count(1)  # today only
    shoot("dashboard")
    assert horizontal_overflow(page) <= 0
