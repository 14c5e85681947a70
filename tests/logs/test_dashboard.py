"""The dashboard: per-day activity from one selector (few queries), drawn server-side."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from logs.choices import LogStatus
from logs.selectors import log_activity_per_day
from rules.choices import DecidedBy, PlaceholderStatus
from tests.factories import CrmUserFactory
from tests.logs.conftest import days_ago
from tests.logs.factories import CallLogFactory, MessageLogFactory, PlaceholderContactFactory

URL = reverse("admin:logs_dashboard")


@pytest.fixture
def activity(db) -> None:
    """Today: 2 calls logged, 1 failed, 1 message logged, 1 rule placeholder. Two days ago:
    1 call logged, 1 message failed, 1 placeholder by hand (and one whose creation failed).
    Forty days ago: 1 call logged (outside the default 30 days)."""
    user = CrmUserFactory()
    CallLogFactory.create_batch(2, user=user)
    CallLogFactory(user=user, status=LogStatus.FAILED)
    CallLogFactory(user=user, status=LogStatus.SKIPPED)
    MessageLogFactory(user=user)
    PlaceholderContactFactory(created_by=user)
    days_ago(CallLogFactory(user=user), 2)
    days_ago(MessageLogFactory(user=user, status=LogStatus.FAILED), 2)
    days_ago(PlaceholderContactFactory(created_by=user, decided_by=DecidedBy.USER), 2)
    days_ago(PlaceholderContactFactory(created_by=user, status=PlaceholderStatus.FAILED), 2)
    days_ago(CallLogFactory(user=user), 40)


def test_activity_per_day_in_three_queries(activity: None, django_assert_num_queries) -> None:
    with django_assert_num_queries(3):
        days = log_activity_per_day(days=30)

    today = timezone.localdate()
    assert len(days) == 30
    assert days[-1].day == today and days[0].day == today - timedelta(days=29)
    last, two_days_ago = days[-1], days[-3]
    assert (last.calls_logged, last.calls_failed, last.messages_logged, last.placeholders_by_rule) == (
        2,
        1,
        1,
        1,
    )
    assert last.failures == 1 and last.placeholders_by_hand == 0
    assert (two_days_ago.calls_logged, two_days_ago.messages_failed, two_days_ago.placeholders_by_hand) == (
        1,
        1,
        1,
    )
    assert two_days_ago.placeholders_by_rule == 0  # the failed creation does not count
    assert sum(day.calls_logged for day in days) == 3  # the call of 40 days ago is outside
    assert sum(day.calls_logged for day in log_activity_per_day(days=90)) == 4


def test_the_query_count_does_not_grow_with_rows(db, django_assert_num_queries) -> None:
    user = CrmUserFactory()
    CallLogFactory.create_batch(50, user=user)
    with django_assert_num_queries(3):
        log_activity_per_day(days=90)


@pytest.mark.parametrize("who", ["auditor_client", "admin_client"])
def test_the_dashboard_page(request: pytest.FixtureRequest, activity: None, who: str) -> None:
    client: Client = request.getfixturevalue(who)

    response = client.get(URL)

    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<svg viewBox=") == 4
    totals = re.findall(r'data-total="(\d+)"', page)
    assert totals == ["3", "1", "2", "2"]  # calls, messages, placeholders (rule + hand), failures
    today = timezone.localdate().isoformat()
    assert f"<title>{today}: 2 calls logged</title>" in page
    assert f"<title>{today}: 1 by a rule, 0 by hand</title>" in page
    assert f'data-day="{today}"' in page


def test_the_dashboard_fetches_nothing_from_outside(auditor_client: Client, activity: None) -> None:
    page = auditor_client.get(URL).content.decode()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "cdn" not in page.lower()
    assert "<svg viewBox=" in page  # the chart is in the page itself


def test_the_span_can_change(auditor_client: Client, activity: None) -> None:
    assert auditor_client.get(URL, {"days": "7"}).content.decode().count("<g><title>") == 4 * 7
    assert auditor_client.get(URL, {"days": "90"}).content.decode().count("<g><title>") == 4 * 90
    assert auditor_client.get(URL, {"days": "100000"}).content.decode().count("<g><title>") == 4 * 30


def test_the_dashboard_needs_a_login(client: Client, db) -> None:
    response = client.get(URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_dashboard_view_is_a_few_queries(
    auditor_client: Client, activity: None, django_assert_max_num_queries
) -> None:
    with django_assert_max_num_queries(7):  # session, user, permissions (2), the three aggregates
        auditor_client.get(URL)


def test_an_empty_history_says_so(auditor_client: Client) -> None:
    page = auditor_client.get(URL).content.decode()

    assert "<svg viewBox=" not in page  # no grey boxes
    assert "No calls yet" in page and "No messages yet" in page
    assert page.count('class="dash-no-activity"') == 1  # the day table: no 30 rows of zeros


def test_the_table_lists_days_with_activity_only(auditor_client: Client, activity: None) -> None:
    page = auditor_client.get(URL).content.decode()
    days = re.findall(r'<tr data-day="([0-9-]+)"', page)
    assert days and len(days) < 30
    assert timezone.localdate().isoformat() in days


@pytest.mark.parametrize("span", [7, 30, 90])
def test_the_axes_have_readable_ticks(auditor_client: Client, activity: None, span: int) -> None:
    page = auditor_client.get(URL, {"days": span}).content.decode()
    chart = page[page.index('id="panel-1"') : page.index('id="panel-2"')]
    x_ticks = re.findall(r'<span style="left: [0-9.]+%">([^<]+)</span>', chart)
    assert (len(x_ticks) == 7) if span == 7 else (3 <= len(x_ticks) <= 16)
    y_ticks = re.findall(r'<span style="bottom: [0-9.]+%">(\d+)</span>', chart)
    assert y_ticks[0] == "0" and y_ticks[-1] == "2"  # 0 to the peak (2 calls today)
