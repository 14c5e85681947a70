"""The admin's open-placeholder report: by age and calls logged, as a page and as CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from connector.models import BuiltinContact
from rules.models import PlaceholderContact, RuleSetting
from rules.selectors import placeholders_open_report
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

OFTEN, RENAMED, REPLACED, QUIET = "+14155550101", "+14155550102", "+14155550103", "+14155550104"


@pytest.fixture
def _static_files_without_manifest(settings) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def history(api: ApiClient) -> None:
    """Four placeholders made by the rules through the API: one called three times, one
    renamed in the CRM, one superseded by a real contact, one old and called once."""
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    RuleSetting.objects.create(key="placeholderNameSource", value="defaultOnly")
    RuleSetting.objects.create(key="defaultPlaceholderName", value="Caller {last4}")
    rules_cache_clear()
    sessions = iter(range(100))

    def calls(phone: str, count: int = 1) -> None:
        for _ in range(count):
            body = call_body(session_id=f"s-{next(sessions)}", phone=phone)
            assert api.post("/callLog", body).json()["successful"] is True

    for phone in (OFTEN, RENAMED, REPLACED, QUIET):
        calls(phone)
    calls(OFTEN, 2)
    BuiltinContact.objects.filter(name="Caller 0102").update(name="Rita Renamed")
    calls(RENAMED)
    BuiltinContactFactory(name="Rob Real", phone_numbers=[REPLACED])
    calls(REPLACED)
    PlaceholderContact.objects.filter(phone_number=QUIET).update(
        created_at=timezone.now() - timedelta(days=40)
    )


def test_the_report_lists_open_placeholders_oldest_first_with_their_calls(history: None) -> None:
    rows = placeholders_open_report()

    assert [(r.placeholder.phone_number, r.age_days, r.calls) for r in rows] == [
        (QUIET, 40, 1),
        (OFTEN, 0, 3),
    ]
    assert all(r.last_call_at is not None for r in rows)


@pytest.mark.usefixtures("_static_files_without_manifest")
def test_the_admin_shows_the_report_and_exports_it(
    history: None, admin_client, django_assert_max_num_queries
) -> None:
    changelist = admin_client.get(reverse("admin:rules_placeholdercontact_changelist"))
    report_url = reverse("admin:rules_placeholder_report")
    assert report_url in changelist.content.decode()

    page = admin_client.get(report_url)
    with django_assert_max_num_queries(3):  # session, user, the report
        export = admin_client.get(report_url, {"format": "csv"})

    assert page.status_code == 200
    text = page.content.decode()
    assert "2 open placeholders" in text and "Caller 0104" in text and "Rita Renamed" not in text
    assert export["Content-Type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(r["phone_number"], r["age_days"], r["calls"], r["contact_name"]) for r in table] == [
        (QUIET, "40", "1", "Caller 0104"),
        (OFTEN, "0", "3", "Caller 0101"),
    ]


def test_the_report_needs_the_view_permission(client, django_user_model) -> None:
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)

    assert client.get(reverse("admin:rules_placeholder_report")).status_code == 403
