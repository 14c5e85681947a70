"""The rules page in Chromium at 1280 px: change a rule, preview it over recorded calls,
see a default name's live preview, save, and see the value in force change."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from rules.models import PlaceholderNameTemplate, RuleSetting
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_admin_pages_fit import horizontal_overflow
from tests.e2e.test_auditor_journey import log_in
from tests.logs.conftest import History

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, "locale": "en-US"}


@pytest.fixture
def rules_admin(transactional_db: None) -> User:
    return User.objects.create_superuser("rita", password=PASSWORD)


def test_admin_changes_previews_and_saves_a_rule(
    page: Page, live_server, rules_admin: User, history: History, shoot: Callable[[str], Path]
) -> None:
    log_in(page, live_server.url, rules_admin)
    page.click("#rules-page-link caption a")
    expect(page).to_have_url(re.compile(r"/admin/rules/rulesetting/page/$"))
    rule = page.locator("#rule-unknownContactAction")
    expect(rule.locator(".in-force-value")).to_have_text("Leave it to the user (log nothing)")
    expect(rule.locator(".source")).to_contain_text("from: default")
    shoot("defaults")
    assert horizontal_overflow(page) <= 0

    # Changing a value ticks "Set here"; a default name previews as it is typed.
    rule.locator("select").select_option("createPlaceholder")
    expect(rule.locator(".rule-set input[type=checkbox]")).to_be_checked()
    lead = page.locator('tr.name-row[data-contact-type="Lead"]')
    lead.locator("input").fill("New lead {last4}")
    expect(lead.locator(".name-preview")).to_have_text("Preview: New lead 0199")
    page.fill("#id_sample_number", "+44 20 7183 8750")
    expect(lead.locator(".name-preview")).to_have_text("Preview: New lead 8750")
    lead.locator("input").fill("New lead {oops}")
    expect(lead.locator(".name-preview")).to_contain_text("unknown field {oops}")
    lead.locator("input").fill("New lead {last4}")
    expect(lead.locator(".name-preview")).to_have_text("Preview: New lead 8750")

    page.click("#preview-button")
    expect(page.locator("#preview")).to_contain_text("What these rules would have done")
    expect(page.locator("#preview-lines tbody tr")).not_to_have_count(0)
    expect(page.locator("#preview-counts")).to_contain_text("Placeholder")
    assert RuleSetting.objects.count() == 0  # a preview saves nothing
    shoot("preview")
    assert horizontal_overflow(page) <= 0

    page.click("#save-button")
    expect(page.locator(".messagelist")).to_contain_text("Saved 2 changes to the rules of site-wide")
    rule = page.locator("#rule-unknownContactAction")
    expect(rule.locator(".in-force-value")).to_have_text("Create a placeholder contact and log against it")
    expect(rule.locator(".source")).to_contain_text("from: site-wide")
    expect(page.locator('tr.name-row[data-contact-type="Lead"] .in-force-value')).to_have_text(
        "New lead {last4}"
    )
    shoot("saved")
    assert horizontal_overflow(page) <= 0
    assert RuleSetting.objects.get().value == "createPlaceholder"
    assert PlaceholderNameTemplate.objects.get().template == "New lead {last4}"
