"""The event-trail admin: every log's events, newest first, filterable and searchable."""

from __future__ import annotations

from typing import Any

from django.test import Client
from django.urls import reverse

from logs.models import LogEvent
from tests.logs.conftest import History

LIST = reverse("admin:logs_logevent_changelist")


def kinds(client: Client, params: dict[str, Any] | None = None) -> list[str]:
    response = client.get(LIST, params or {})
    assert response.status_code == 200
    return [event.kind for event in response.context["cl"].result_list]


def test_newest_first_with_a_link_to_each_log(auditor_client: Client, history: History) -> None:
    response = auditor_client.get(LIST)
    ids = [event.pk for event in response.context["cl"].result_list]
    assert ids == sorted(ids, reverse=True)
    page = response.content.decode()
    assert reverse("admin:logs_calllog_change", args=[history.placeholder_call.pk]) in page
    assert reverse("admin:logs_messagelog_change", args=[history.logged_message.pk]) in page


def test_filters(auditor_client: Client, history: History) -> None:
    assert kinds(auditor_client, {"kind__exact": "crm_failed"}) == ["crm_failed"]
    assert kinds(auditor_client, {"decided_by__exact": "rule"}) == ["placeholder_created"]
    assert kinds(auditor_client, {"log": "message"}) == ["crm_logged"]
    assert len(kinds(auditor_client, {"log": "call"})) == 4


def test_search_by_session_and_phone(auditor_client: Client, history: History) -> None:
    assert kinds(auditor_client, {"q": "sess-failed"}) == ["crm_failed"]
    by_phone = kinds(auditor_client, {"q": "(415) 555-0123"})
    assert sorted(by_phone) == sorted(["requested", "placeholder_created", "crm_logged", "crm_logged"])


def test_detail(auditor_client: Client, history: History) -> None:
    event = LogEvent.objects.get(kind="placeholder_created")
    page = auditor_client.get(reverse("admin:logs_logevent_change", args=[event.pk])).content.decode()
    assert "Placeholder created" in page and "Jane Caller" in page and "sess-placeholder" in page
    assert 'name="_save"' not in page
