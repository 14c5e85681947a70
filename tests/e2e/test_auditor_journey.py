"""An auditor's journey through the log history in a real browser (headless Chromium)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from logs.models import CallLog
from tests.e2e.conftest import OUTPUT, PASSWORD
from tests.logs.conftest import API_KEY, PAYLOAD_MARKER, History, days_ago
from tests.logs.factories import CallLogFactory, MessageLogFactory, PlaceholderContactFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page: Page, base_url: str, user: User) -> None:
    page.goto(base_url + "/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login/"))
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_be_visible()


def test_auditor_filters_opens_a_timeline_exports_and_is_refused_changes(
    page: Page, live_server, auditor: User, history: History, shoot: Callable[[str], Path]
) -> None:
    base = live_server.url
    page.goto(base + "/admin/")
    shoot("login")
    log_in(page, base, auditor)
    expect(page.get_by_role("link", name="Log history dashboard")).to_be_visible()
    shoot("admin-index")

    # The call logs, then only the calls logged against a placeholder a rule created.
    page.get_by_role("link", name="Call logs").first.click()
    expect(page.locator("#result_list tbody tr")).to_have_count(5)
    shoot("call-logs")
    page.get_by_role("link", name="Placeholder created by a rule").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("+14155550123")
    expect(rows.first).to_contain_text("Jane Caller (placeholder, created by a rule)")
    shoot("placeholder-calls")

    # Its export: the filtered list as CSV, fixed columns, no credential.
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export").click()
    download = download_info.value
    saved = OUTPUT / "e2e" / download.suggested_filename
    saved.parent.mkdir(parents=True, exist_ok=True)
    download.save_as(saved)
    text = saved.read_text()
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [row["session_id"] for row in exported] == ["sess-placeholder"]
    assert exported[0]["placeholder_created_by"] == "rule"
    assert API_KEY not in text and PAYLOAD_MARKER not in text

    # One call: its fields and its timeline, in order, with who decided.
    rows.first.get_by_role("link").first.click()  # its time
    expect(page.locator(".field-session_id")).to_contain_text("sess-placeholder")
    expect(page.locator("h2", has_text="Timeline")).to_be_visible()
    steps = page.locator("table.timeline tbody tr")
    expect(steps).to_have_count(3)
    expect(steps.nth(0)).to_contain_text("Log requested")
    expect(steps.nth(1)).to_contain_text("Placeholder created")
    expect(steps.nth(1)).to_contain_text("Auto-logging rule")
    expect(steps.nth(2)).to_contain_text("Logged in the CRM")
    expect(page.locator('input[name="_save"]')).to_have_count(0)  # read-only
    shoot("call-timeline")

    # Changing anything is refused: the page has no form to save, and the server says no.
    change_url = page.url
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    refused = page.request.post(change_url, form={"csrfmiddlewaretoken": csrf, "status": "skipped"})
    assert refused.status == 403
    response = page.goto(change_url.replace("/change/", "/delete/"))
    assert response is not None and response.status == 403
    expect(page.locator("body")).to_contain_text("403 Forbidden")
    shoot("delete-refused")
    response = page.goto(base + "/admin/rules/rulesetting/add/")
    assert response is not None and response.status == 403
    shoot("rule-add-refused")

    log = CallLog.objects.get(pk=history.placeholder_call.pk)
    assert (log.status, log.crm_log_id) == ("logged", history.placeholder_call.crm_log_id)
    assert CallLog.objects.count() == 5


def test_auditor_reads_the_dashboard(
    page: Page, live_server, auditor: User, history: History, shoot: Callable[[str], Path]
) -> None:
    for days in range(1, 14):  # a fortnight of activity, so the chart has something to show
        for _ in range(days % 4 + 1):
            days_ago(CallLogFactory(user=history.user), days)
        days_ago(MessageLogFactory(user=history.user, status="failed" if days % 5 == 0 else "logged"), days)
        if days % 3 == 0:
            days_ago(PlaceholderContactFactory(created_by=history.user), days)
    log_in(page, live_server.url, auditor)
    external: list[str] = []
    page.on(
        "request",
        lambda request: external.append(request.url) if not request.url.startswith(live_server.url) else None,
    )

    page.get_by_role("link", name="Log history dashboard").click()

    expect(page.locator("h1")).to_have_text("Log history dashboard")
    expect(page.locator(".dash-panel svg")).to_have_count(4)
    expect(page.locator(".dash-total")).to_have_text(["35", "12", "6", "4"])
    shoot("dashboard")
    page.get_by_role("link", name="7 days").click()
    expect(page.locator("#dashboard-days tbody tr")).to_have_count(7)  # every day had activity
    assert external == []  # nothing fetched from outside the server
