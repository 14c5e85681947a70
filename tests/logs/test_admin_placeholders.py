"""The placeholder registry admin: read-only, filters, phone search in any format, export."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from logs.models import LogEvent
from rules.choices import PlaceholderLife, PlaceholderStatus
from rules.models import PlaceholderContact
from tests.logs.conftest import API_KEY, REFRESH_TOKEN, History
from tests.logs.factories import PlaceholderContactFactory

LIST = reverse("admin:rules_placeholdercontact_changelist")


def numbers(client: Client, params: dict[str, Any] | None = None) -> set[str]:
    response = client.get(LIST, params or {})
    assert response.status_code == 200
    return {row.phone_number for row in response.context["cl"].result_list}


@pytest.fixture
def registry(history: History) -> History:
    PlaceholderContactFactory(
        created_by=history.other_user, phone_number="+14155550999", status=PlaceholderStatus.FAILED
    )
    return history


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"decided_by__exact": "rule"}, {"+14155550123", "+14155550999"}),
        ({"decided_by__exact": "user"}, {"+14155550177"}),
        ({"status__exact": "failed"}, {"+14155550999"}),
        ({"platform": "builtin"}, {"+14155550123", "+14155550177", "+14155550999"}),
        ({"q": "(415) 555-0177"}, {"+14155550177"}),
        ({"q": "415.555.0123"}, {"+14155550123"}),
    ],
)
def test_filters_and_search(
    auditor_client: Client, registry: History, params: dict[str, str], expected: set[str]
) -> None:
    assert numbers(auditor_client, params) == expected


def test_filter_by_account_and_creator(auditor_client: Client, registry: History) -> None:
    assert numbers(auditor_client, {"account__id__exact": registry.account.pk}) == {
        "+14155550123",
        "+14155550177",
    }
    assert numbers(auditor_client, {"created_by": registry.other_user.pk}) == {"+14155550999"}


def test_detail_is_read_only_and_shows_the_rule_values(auditor_client: Client, registry: History) -> None:
    url = reverse("admin:rules_placeholdercontact_change", args=[registry.placeholder_by_rule.pk])
    page = auditor_client.get(url).content.decode()
    assert "createPlaceholder" in page and "Jane Caller" in page
    assert 'name="_save"' not in page
    assert API_KEY not in page and REFRESH_TOKEN not in page


def test_admins_cannot_edit_it_either(admin_client: Client, registry: History) -> None:
    pk = registry.placeholder_by_rule.pk
    assert (
        admin_client.post(reverse("admin:rules_placeholdercontact_change", args=[pk]), {}).status_code == 403
    )
    assert admin_client.get(reverse("admin:rules_placeholdercontact_add")).status_code == 403


def test_auditors_cannot_move_old_logs(
    auditor_client: Client, admin_client: Client, registry: History
) -> None:
    def actions(client: Client) -> set[str]:
        form = client.get(LIST).context["action_form"]
        return {name for name, _ in form.fields["action"].choices if name} if form is not None else set()

    assert actions(admin_client) == {"relink_old_logs"}
    assert actions(auditor_client) == set()
    pk = registry.placeholder_by_rule.pk
    PlaceholderContact.objects.filter(pk=pk).update(life=PlaceholderLife.SUPERSEDED, superseded_by="901")
    events = LogEvent.objects.count()
    response = auditor_client.post(
        LIST, {"action": "relink_old_logs", "confirmed": "yes", "_selected_action": [pk]}, follow=True
    )
    assert response.status_code == 200, "the list again, nothing run"
    assert [str(m) for m in response.context["messages"]] == []
    assert LogEvent.objects.count() == events  # neither moved nor tried
