"""The message-log admin: filters, phone search, detail with its timeline."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from tests.logs.conftest import API_KEY, PAYLOAD_MARKER, History

LIST = reverse("admin:logs_messagelog_changelist")


def message_ids(client: Client, params: dict[str, Any] | None = None) -> set[str]:
    response = client.get(LIST, params or {})
    assert response.status_code == 200
    return {log.message_id for log in response.context["cl"].result_list}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, {"msg-logged", "msg-failed"}),
        ({"status__exact": "failed"}, {"msg-failed"}),
        ({"account": "37439510"}, {"msg-logged"}),
        ({"placeholder": "no"}, {"msg-logged", "msg-failed"}),
        ({"q": "(415) 555-0123"}, {"msg-logged"}),
        ({"q": "+1 415 555 0123"}, {"msg-logged"}),
        ({"q": "msg-failed"}, {"msg-failed"}),
    ],
)
def test_filters_and_search(
    auditor_client: Client, history: History, params: dict[str, str], expected: set[str]
) -> None:
    assert message_ids(auditor_client, params) == expected


def test_filter_by_user(auditor_client: Client, history: History) -> None:
    assert message_ids(auditor_client, {"user": history.other_user.pk}) == {"msg-failed"}


def test_detail_and_failures(auditor_client: Client, history: History) -> None:
    page = auditor_client.get(
        reverse("admin:logs_messagelog_change", args=[history.logged_message.pk])
    ).content
    assert b"msg-logged" in page and b"Logged in the CRM" in page
    assert API_KEY.encode() not in page and PAYLOAD_MARKER.encode() not in page
    listing = auditor_client.get(LIST, {"status__exact": "failed"}).content
    assert b"Rate limited" in listing
