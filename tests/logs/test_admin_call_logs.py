"""The call-log admin: list, filters, phone search in any format, detail page and timeline."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from logs.models import CallLog
from tests.logs.conftest import API_KEY, PAYLOAD_MARKER, REFRESH_TOKEN, History, days_ago

LIST = reverse("admin:logs_calllog_changelist")


def sessions(client: Client, params: dict[str, Any] | None = None) -> set[str]:
    response = client.get(LIST, params or {})
    assert response.status_code == 200
    return {log.session_id for log in response.context["cl"].result_list}


ALL = {"sess-placeholder", "sess-manual", "sess-matched", "sess-failed", "sess-pending"}


def test_the_list_shows_every_call_with_its_outcome(auditor_client: Client, history: History) -> None:
    response = auditor_client.get(LIST)

    assert {log.session_id for log in response.context["cl"].result_list} == ALL
    page = response.content.decode()
    assert "The CRM is unavailable (503)." in page  # the failed call's error
    assert "Acme Support" in page  # the account, through the user's rc_account_id
    assert "Jane Caller (placeholder, created by a rule)" in page


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status__exact": "failed"}, {"sess-failed"}),
        ({"status__exact": "pending"}, {"sess-pending"}),
        ({"direction__exact": "Outbound"}, {"sess-manual"}),
        ({"platform": "builtin"}, ALL),
        ({"placeholder": "yes"}, {"sess-placeholder", "sess-manual"}),
        ({"placeholder": "rule"}, {"sess-placeholder"}),
        ({"placeholder": "user"}, {"sess-manual"}),
        ({"placeholder": "no"}, {"sess-matched", "sess-failed", "sess-pending"}),
        ({"decided_by__exact": "user"}, {"sess-manual"}),
        ({"account": "37439510"}, {"sess-placeholder", "sess-manual", "sess-failed"}),
        ({"status__exact": "logged", "placeholder": "rule"}, {"sess-placeholder"}),
    ],
)
def test_filters(
    auditor_client: Client, history: History, params: dict[str, str], expected: set[str]
) -> None:
    assert sessions(auditor_client, params) == expected


def test_filter_by_user(auditor_client: Client, history: History) -> None:
    assert sessions(auditor_client, {"user": history.other_user.pk}) == {"sess-matched", "sess-pending"}
    page = auditor_client.get(LIST).content.decode()
    assert "Bob Agent (builtin)" in page  # offered as a filter choice


def filter_link(client: Client, title: str, choice: str) -> str:
    """The query string of one choice of one list filter, as the page offers it."""
    response = client.get(LIST)
    cl = response.context["cl"]
    spec = next(spec for spec in cl.filter_specs if str(spec.title) == title)
    return next(c["query_string"] for c in spec.choices(cl) if str(c["display"]) == choice)


def test_filter_by_date_and_date_drill_down(auditor_client: Client, history: History) -> None:
    days_ago(history.matched_call, 400)
    old = CallLog.objects.get(pk=history.matched_call.pk).created_at

    past_week = filter_link(auditor_client, "created at", "Past 7 days")
    response = auditor_client.get(LIST + past_week)
    assert {log.session_id for log in response.context["cl"].result_list} == ALL - {"sess-matched"}
    drilled = sessions(
        auditor_client,
        {"created_at__year": old.year, "created_at__month": old.month, "created_at__day": old.day},
    )
    assert drilled == {"sess-matched"}
    assert str(old.year) in auditor_client.get(LIST).content.decode()  # the drill-down offers the year


@pytest.mark.parametrize(
    "term",
    [
        "+14155550123",
        "(415) 555-0123",
        "415.555.0123",
        "415-555-0123",
        "4155550123",
        "1 415 555 0123",
        "+1 (415) 555-0123",
        "0123",  # the end of the number, as stored
    ],
)
def test_search_by_phone_number_in_any_format(auditor_client: Client, history: History, term: str) -> None:
    assert sessions(auditor_client, {"q": term}) == {"sess-placeholder"}


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (lambda h: h.failed_call.session_id, "sess-failed"),
        (lambda h: h.matched_call.crm_log_id, "sess-matched"),
        (lambda h: h.manual_call.contact_id, "sess-manual"),
        (lambda h: h.placeholder_call.record_id, "sess-placeholder"),
    ],
    ids=["session id", "CRM log id", "CRM contact id", "telephony session id"],
)
def test_search_by_ids(auditor_client: Client, history: History, field: Any, expected: str) -> None:
    assert sessions(auditor_client, {"q": field(history)}) == {expected}


def test_search_finds_nothing_for_an_unknown_number(auditor_client: Client, history: History) -> None:
    assert sessions(auditor_client, {"q": "(212) 555-9999"}) == set()


def test_detail_shows_the_log_and_its_timeline_in_order(auditor_client: Client, history: History) -> None:
    log = history.placeholder_call
    response = auditor_client.get(reverse("admin:logs_calllog_change", args=[log.pk]))

    assert response.status_code == 200
    page = response.content.decode()
    for text in ("sess-placeholder", "+14155550123", "Jane Caller", "Acme Support", "createPlaceholder"):
        assert text in page
    timeline = page[page.index('class="timeline"') :]
    positions = [
        timeline.index(label) for label in ("Log requested", "Placeholder created", "Logged in the CRM")
    ]
    assert positions == sorted(positions)
    assert "Auto-logging rule" in timeline  # who decided the placeholder
    assert "Rule created placeholder Jane Caller" in timeline  # in a sentence
    assert "<details" in timeline and "&quot;contactName&quot;: &quot;Jane Caller&quot;" in timeline  # raw
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", timeline)  # to the second
    assert 'name="_save"' not in page  # read-only for everyone


def test_failed_log_shows_its_error_and_attempts(auditor_client: Client, history: History) -> None:
    page = auditor_client.get(reverse("admin:logs_calllog_change", args=[history.failed_call.pk])).content
    assert b"The CRM is unavailable (503)." in page
    assert b"CRM failed" in page  # the timeline


@pytest.mark.parametrize("who", ["auditor", "admin"])
def test_no_credential_or_stored_request_on_any_page(
    request: pytest.FixtureRequest, history: History, who: str
) -> None:
    client: Client = request.getfixturevalue("auditor_client" if who == "auditor" else "admin_client")
    pages = [
        LIST,
        LIST + "?q=415",
        reverse("admin:logs_calllog_change", args=[history.placeholder_call.pk]),
        reverse("admin:logs_calllog_change", args=[history.failed_call.pk]),
    ]
    for url in pages:
        body = client.get(url).content.decode()
        assert API_KEY not in body and REFRESH_TOKEN not in body and PAYLOAD_MARKER not in body, url
