"""An admin moves a superseded placeholder's old logs to the real contact, in a real browser
(headless Chromium) at a laptop's 1280 px: select, confirm, see the outcome and the timeline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from connector.models import BuiltinActivity
from logs.models import CallLog
from rules.choices import PlaceholderLife
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_admin_pages_fit import horizontal_overflow
from tests.e2e.test_auditor_journey import log_in
from tests.factories import BuiltinContactFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

UNKNOWN = "+14155550199"


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, "locale": "en-US"}


def test_an_admin_moves_old_logs_to_the_real_contact(
    page: Page, live_server, api: ApiClient, shoot: Callable[[str], Path]
) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    rules_cache_clear()
    assert api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN)).json()["successful"]
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])
    assert api.post("/callLog", call_body(session_id="s-2", phone=UNKNOWN)).json()["successful"]
    placeholder = PlaceholderContact.objects.get(life=PlaceholderLife.SUPERSEDED)
    admin = User.objects.create_superuser("ada", password=PASSWORD)
    base = live_server.url

    log_in(page, base, admin)
    page.goto(base + "/admin/rules/placeholdercontact/?life__exact=superseded")
    shoot("list")
    assert horizontal_overflow(page, "#changelist .results") <= 0
    page.locator(f"input[name=_selected_action][value='{placeholder.pk}']").check()
    page.select_option("select[name=action]", "relink_old_logs")
    page.click("button[name=index]")
    expect(page.locator("#content")).to_contain_text("1 log (1 CRM activity) will move.")
    expect(page.locator("#relink-plan")).to_contain_text(f"Jane Real ({real.pk})")
    shoot("confirmation")
    assert horizontal_overflow(page) <= 0

    page.click("input[value='Yes, move them']")
    expect(page.locator(".messagelist")).to_contain_text("Old logs: 1 moved.")
    shoot("moved")
    log = CallLog.objects.get(session_id="s-1")
    assert log.contact_id == str(real.pk)
    assert BuiltinActivity.objects.get(pk=log.crm_log_id).contact_id == real.pk

    page.goto(base + f"/admin/logs/calllog/{log.pk}/change/")
    expect(page.locator("#content")).to_contain_text(
        f"Moved by an admin (ada) from placeholder {placeholder.contact_name} ({placeholder.contact_id}) "
        f"to contact Jane Real ({real.pk})"
    )
    shoot("timeline")
