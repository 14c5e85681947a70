"""Relinking old logs: an admin moves the logs of a superseded placeholder to the real
contact that took its place, where the connector can move activities, never deleting CRM
data. Driven as an admin would: the registry's action, its confirmation page, the outcome.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from connector.crm.base import CrmUnavailable
from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinActivity, BuiltinContact
from logs.choices import EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from logs.selectors import event_sentence
from rules import services
from rules.choices import DecidedBy, PlaceholderLife
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory
from tests.logs.factories import CallLogFactory, PlaceholderContactFactory

UNKNOWN = "+14155550199"
LIST = reverse("admin:rules_placeholdercontact_changelist")


@pytest.fixture(autouse=True)
def _creating(db) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    RuleSetting.objects.create(key="placeholderNameSource", value="defaultOnly")
    rules_cache_clear()


def sms(message_id: int) -> dict[str, Any]:
    """A message of one conversation: a conversation's messages share one CRM activity."""
    return {
        "logInfo": {
            "messages": [
                {"id": message_id, "type": "SMS", "direction": "Inbound", "subject": f"hi {message_id}"}
            ],
            "correspondents": [{"phoneNumber": UNKNOWN}],
            "conversationLogId": "conv-1",
        },
    }


@pytest.fixture
def superseded(api: ApiClient) -> tuple[PlaceholderContact, BuiltinContact]:
    """Two calls and two messages logged against a placeholder, then a real contact for
    the number supersedes it (the next call goes to the real contact)."""
    for session_id in ("s-1", "s-2"):
        assert api.post("/callLog", call_body(session_id=session_id, phone=UNKNOWN)).json()["successful"]
    for message_id in (1, 2):
        assert api.post("/messageLog", sms(message_id)).json()["successful"]
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])
    assert api.post("/callLog", call_body(session_id="s-3", phone=UNKNOWN)).json()["successful"]
    placeholder = PlaceholderContact.objects.get(decided_by=DecidedBy.RULE)
    assert placeholder.life == PlaceholderLife.SUPERSEDED
    return placeholder, real


def choose(client: Client, *placeholders: PlaceholderContact) -> Any:
    """Select the placeholders in the list and run the action: the confirmation page."""
    return client.post(
        LIST, {"action": "relink_old_logs", "index": 0, "_selected_action": [p.pk for p in placeholders]}
    )


def confirm(client: Client, *placeholders: PlaceholderContact) -> list[str]:
    """Post the confirmation page back; the messages the list then shows."""
    response = client.post(
        LIST,
        {"action": "relink_old_logs", "confirmed": "yes", "_selected_action": [p.pk for p in placeholders]},
        follow=True,
    )
    assert [url for url, _ in response.redirect_chain] == [LIST]
    return [str(message) for message in response.context["messages"]]


def activity_contacts() -> set[int]:
    return set(BuiltinActivity.objects.values_list("contact_id", flat=True))


def test_the_confirmation_says_how_many_logs_move_to_which_contact(admin_client: Client, superseded) -> None:
    placeholder, real = superseded

    response = choose(admin_client, placeholder)

    assert response.status_code == 200
    [plan] = response.context["plans"]
    assert (plan.calls, plan.messages, plan.activities) == (2, 2, 3)
    assert (plan.to_contact_id, plan.to_contact_name, plan.unavailable) == (str(real.pk), "Jane Real", "")
    page = response.content.decode()
    assert f"Jane Real ({real.pk})" in page and "4 logs (3 CRM activities) will move" in page
    # nothing moved yet
    assert activity_contacts() == {int(placeholder.contact_id), real.pk}


def test_confirmed_the_logs_move_in_the_crm_and_here_and_say_so(admin_client: Client, superseded) -> None:
    placeholder, real = superseded

    shown = confirm(admin_client, placeholder)

    assert shown == ["Old logs: 4 moved."]
    assert activity_contacts() == {real.pk}
    assert BuiltinContact.objects.filter(pk=placeholder.contact_id).exists()  # never deleted
    moved = [*CallLog.objects.filter(session_id__in=["s-1", "s-2"]), *MessageLog.objects.all()]
    for log in moved:
        assert (log.contact_id, log.contact_name, log.contact_is_placeholder) == (
            str(real.pk),
            "Jane Real",
            False,
        )
        assert log.placeholder_id == placeholder.pk  # the registry link stays, as history
        on_log = {"call_log": log} if isinstance(log, CallLog) else {"message_log": log}
        event = LogEvent.objects.get(kind=EventKind.RELINKED, **on_log)
        assert event_sentence(kind=event.kind, detail=event.detail) == (
            f"Moved by an admin (admin) from placeholder {placeholder.contact_name} "
            f"({placeholder.contact_id}) to contact Jane Real ({real.pk})"
        )
    placeholder.refresh_from_db()
    assert placeholder.life == PlaceholderLife.SUPERSEDED
    # run again: nothing is left to move, and nothing is recorded twice
    assert confirm(admin_client, placeholder) == ["Old logs: 0 moved."]
    assert LogEvent.objects.filter(kind=EventKind.RELINKED).count() == 4


def test_a_crm_failure_leaves_the_logs_where_they_were(admin_client: Client, superseded, monkeypatch) -> None:
    placeholder, real = superseded

    def down(self: BuiltinCrmClient, **kwargs: Any) -> None:
        raise CrmUnavailable("builtin could not be reached")

    monkeypatch.setattr(BuiltinCrmClient, "relink_activity", down)

    shown = confirm(admin_client, placeholder)

    assert shown == ["Old logs: 0 moved; 4 failed: builtin could not be reached (4)."]
    assert CallLog.objects.get(session_id="s-1").contact_id == placeholder.contact_id
    assert activity_contacts() == {int(placeholder.contact_id), real.pk}
    failures = LogEvent.objects.filter(kind=EventKind.CRM_FAILED, detail__relink=True)
    assert failures.count() == 4
    assert event_sentence(kind=EventKind.CRM_FAILED, detail=failures.first().detail) == (
        f"The CRM failed while moving the log to contact {real.pk}; it stays where it was: "
        "builtin could not be reached (HTTP 503)"
    )


def test_a_run_moves_at_most_the_batch_and_the_next_run_the_rest(
    admin_client: Client, superseded, monkeypatch
) -> None:
    placeholder, real = superseded
    monkeypatch.setattr(services, "RELINK_BATCH_LIMIT", 2)

    assert confirm(admin_client, placeholder) == ["Old logs: 2 moved; 2 left for the next run."]
    assert confirm(admin_client, placeholder) == ["Old logs: 2 moved."]
    assert activity_contacts() == {real.pk}


def test_placeholders_it_cannot_move_are_shown_so_and_left_alone(
    admin_client: Client, api: ApiClient
) -> None:
    assert api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN)).json()["successful"]
    open_one = PlaceholderContact.objects.get()
    elsewhere = PlaceholderContactFactory(
        platform="hubspot", life=PlaceholderLife.SUPERSEDED, superseded_by="901"
    )
    CallLogFactory(
        platform="hubspot", placeholder=elsewhere, contact_id=elsewhere.contact_id, status=LogStatus.LOGGED
    )

    response = choose(admin_client, open_one, elsewhere)

    reasons = {plan.placeholder.pk: plan.unavailable for plan in response.context["plans"]}
    assert reasons == {
        open_one.pk: "not superseded: its number has no other contact yet",
        elsewhere.pk: "the hubspot connector cannot move activities",
    }
    page = response.content.decode()
    assert "Unavailable: the hubspot connector cannot move activities" in page
    assert "None of the selected placeholders has logs that can move." in page
    assert confirm(admin_client, open_one, elsewhere) == [
        "Old logs: 0 moved; 1 placeholder left alone: not superseded: its number has no other contact yet; "
        "1 placeholder left alone: the hubspot connector cannot move activities."
    ]


def test_the_detail_page_says_whether_old_logs_can_move(admin_client: Client, superseded) -> None:
    placeholder, real = superseded
    open_one = PlaceholderContactFactory()

    def page(row: PlaceholderContact) -> str:
        url = reverse("admin:rules_placeholdercontact_change", args=[row.pk])
        return admin_client.get(url).content.decode()

    assert f"moves the calls and messages logged against it to contact {real.pk}" in page(placeholder)
    assert "unavailable: not superseded: its number has no other contact yet" in page(open_one)
