"""Retrying failed and pending logs from the admin: call logs through `call_log_retry`,
message logs through `message_log_retry`; idempotent, and never for auditors."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connector.crm.base import CrmUnavailable
from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from logs.choices import DecidedBy, EventKind, LogStatus
from logs.models import CallLog, MessageLog
from logs.services import message_log_retry, message_logs_retry
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory
from tests.logs.factories import CallLogFactory, MessageLogFactory

JANE = {"phoneNumber": "+14155550100", "name": "Jane Caller"}
AGENT = {"phoneNumber": "+16505550100", "name": "Agent Smith", "extensionNumber": "101"}


def sms(message_id: int, text: str, minute: int) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "SMS",
        "direction": "Inbound",
        "subject": text,
        "creationTime": f"2026-11-26T10:{minute:02d}:00.000Z",
        "from": JANE,
        "to": [AGENT],
        "conversationId": 777,
        "attachments": [],
    }


def message_body(messages: list[dict[str, Any]], contact_id: str, **info: Any) -> dict[str, Any]:
    return {
        "logInfo": {
            "messages": copy.deepcopy(messages),
            "correspondents": [JANE],
            "conversationId": "777",
            "conversationLogId": "777-2026-11-26",
            **info,
        },
        "contactId": contact_id,
        "contactName": "Jane Caller",
        "contactType": "Contact",
        "additionalSubmission": {},
    }


class CrmDown:
    """Makes one operation of the built-in CRM fail while the CRM is "down"."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.monkeypatch = monkeypatch

    def __call__(self, operation: str) -> None:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise CrmUnavailable("The CRM is unavailable (503).")

        self.monkeypatch.setattr(BuiltinCrmClient, operation, fail)

    def recover(self) -> None:
        self.monkeypatch.undo()


@pytest.fixture
def crm_down(monkeypatch: pytest.MonkeyPatch) -> CrmDown:
    return CrmDown(monkeypatch)


def retry(client: Client, model: str, *pks: int) -> Any:
    return client.post(
        reverse(f"admin:logs_{model}_changelist"),
        {"action": "retry_selected", "_selected_action": [str(pk) for pk in pks], "index": 0},
        follow=True,
    )


def test_retry_logs_a_failed_call_and_is_idempotent(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_call_log")
    assert api.post("/callLog", call_body(contact_id=str(contact.pk))).json()["successful"] is False
    log = CallLog.objects.get()
    assert (log.status, log.attempts, log.last_error) == (
        LogStatus.FAILED,
        1,
        "The CRM is unavailable (503).",
    )
    crm_down.recover()

    response = retry(admin_client, "calllog", log.pk)

    assert "Retry: 1 logged." in response.content.decode()
    log.refresh_from_db()
    activity = BuiltinActivity.objects.get()
    assert (log.status, log.attempts, log.crm_log_id, log.last_error) == (
        LogStatus.LOGGED,
        2,
        str(activity.pk),
        "",
    )
    assert activity.contact_id == contact.pk
    kinds = list(log.events.values_list("kind", flat=True))
    assert kinds[-3:] == [EventKind.RETRIED, EventKind.MATCHED, EventKind.CRM_LOGGED]

    again = retry(admin_client, "calllog", log.pk)

    assert (
        "0 logged; 1 left alone (already logged, skipped, unconfirmed or still in progress)."
        in again.content.decode()
    )
    assert BuiltinActivity.objects.count() == 1
    assert CallLog.objects.get().attempts == 2
    assert log.events.filter(kind=EventKind.RETRIED).count() == 1


def test_retry_of_a_placeholder_call_reuses_the_placeholder(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    rules_cache_clear()
    crm_down("create_call_log")
    api.post("/callLog", call_body(phone="+14155550199"))
    log = CallLog.objects.get()
    assert log.status == LogStatus.FAILED and log.contact_is_placeholder
    crm_down.recover()

    retry(admin_client, "calllog", log.pk)

    log.refresh_from_db()
    assert log.status == LogStatus.LOGGED
    assert BuiltinContact.objects.count() == 1  # no second placeholder
    assert PlaceholderContact.objects.count() == 1
    assert BuiltinActivity.objects.get().contact_id == int(log.contact_id)


def test_retry_reports_a_call_that_fails_again(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_call_log")
    api.post("/callLog", call_body(contact_id=str(contact.pk)))

    response = retry(admin_client, "calllog", CallLog.objects.get().pk)

    assert "1 not logged" in response.content.decode()
    log = CallLog.objects.get()
    assert (log.status, log.attempts) == (LogStatus.FAILED, 2)


def test_retry_logs_a_failed_message_and_is_idempotent(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_message_log")
    api.post("/messageLog", message_body([sms(1001, "Hello", 0)], str(contact.pk)))
    log = MessageLog.objects.get()
    assert (log.status, log.attempts) == (LogStatus.FAILED, 1)
    crm_down.recover()

    response = retry(admin_client, "messagelog", log.pk)

    assert "Retry: 1 logged." in response.content.decode()
    log.refresh_from_db()
    activity = BuiltinActivity.objects.get()
    assert (log.status, log.attempts, log.crm_log_id) == (LogStatus.LOGGED, 2, str(activity.pk))
    assert "Hello" in activity.body and activity.contact_id == contact.pk
    assert list(log.events.values_list("kind", flat=True))[-3:] == [
        EventKind.RETRIED,
        EventKind.MATCHED,
        EventKind.CRM_LOGGED,
    ]

    assert message_log_retry(log=log).successful is False
    summary = message_logs_retry(log_ids=[log.pk])
    assert (summary.logged, summary.not_logged, summary.left_alone) == (0, 0, 1)
    assert BuiltinActivity.objects.count() == 1
    assert MessageLog.objects.get().attempts == 2


def test_a_retried_message_joins_its_conversation_activity(
    api: ApiClient, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    api.post("/messageLog", message_body([sms(1001, "First", 0)], str(contact.pk)))
    crm_down("update_message_log")
    api.post("/messageLog", message_body([sms(1002, "Second", 5), sms(1001, "First", 0)], str(contact.pk)))
    failed = MessageLog.objects.get(message_id="1002")
    assert failed.status == LogStatus.FAILED
    crm_down.recover()

    outcome = message_log_retry(log=failed)

    assert outcome.successful is True
    activity = BuiltinActivity.objects.get()  # still one activity for the conversation day
    assert "First" in activity.body and "Second" in activity.body
    failed.refresh_from_db()
    assert failed.crm_log_id == str(activity.pk)


def test_a_retried_shared_conversation_is_rebuilt_from_its_messages(
    api: ApiClient, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_message_log")
    body = message_body([sms(1002, "Second", 5), sms(1001, "First", 0)], str(contact.pk))
    body["logInfo"]["owner"] = {"name": "Support queue"}
    api.post("/messageLog", body)
    log = MessageLog.objects.get()
    assert log.status == LogStatus.FAILED
    crm_down.recover()

    assert message_log_retry(log=log).successful is True

    activity = BuiltinActivity.objects.get()
    assert "First" in activity.body and "Second" in activity.body
    assert "Receiving call queue: Support queue" in activity.body
    assert MessageLog.objects.get().status == LogStatus.LOGGED


def test_a_message_of_a_disconnected_user_is_left_as_it_is(
    api: ApiClient, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    _, failed = failed_message(api, crm_down)
    CrmUser.objects.filter(pk=crm_user.pk).update(access_token="")

    outcome = message_log_retry(log=failed)

    assert outcome.successful is False
    log = MessageLog.objects.get()
    assert (log.status, log.attempts) == (LogStatus.FAILED, 1)
    assert not log.events.filter(kind=EventKind.RETRIED).exists()


def failed_call(api: ApiClient, crm_down: CrmDown) -> tuple[BuiltinContact, CallLog]:
    """A call log the CRM failed to take, against a known contact; the CRM is back up."""
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_call_log")
    api.post("/callLog", call_body(contact_id=str(contact.pk)))
    crm_down.recover()
    return contact, CallLog.objects.get()


def failed_message(api: ApiClient, crm_down: CrmDown) -> tuple[BuiltinContact, MessageLog]:
    """A message log the CRM failed to take, against a known contact; the CRM is back up."""
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    crm_down("create_message_log")
    api.post("/messageLog", message_body([sms(1001, "Hello", 0)], str(contact.pk)))
    crm_down.recover()
    return contact, MessageLog.objects.get()


def mark_pending(model: type[CallLog] | type[MessageLog], pk: int, *, lease_left: float) -> None:
    """Leave a row pending, as a request still working on it does (its lease has
    `lease_left` seconds to run) or one that died (a lease that lapsed: `lease_left` < 0)."""
    model.objects.filter(pk=pk).update(
        status=LogStatus.PENDING,
        lease_owner="a-request-that-died",
        lease_until=timezone.now() + timedelta(seconds=lease_left),
    )


def test_a_call_held_by_a_live_request_is_left_alone(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    _, log = failed_call(api, crm_down)
    mark_pending(CallLog, log.pk, lease_left=20)

    response = retry(admin_client, "calllog", log.pk)

    assert (
        "0 logged; 1 left alone (already logged, skipped, unconfirmed or still in progress)."
        in response.content.decode()
    )
    log.refresh_from_db()
    assert (log.status, log.attempts) == (LogStatus.PENDING, 1)
    assert not log.events.filter(kind=EventKind.RETRIED).exists()
    assert BuiltinActivity.objects.count() == 0


def test_a_call_whose_request_died_is_retried_as_soon_as_its_lease_lapses(
    api: ApiClient, admin_client: Client, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    contact, log = failed_call(api, crm_down)
    mark_pending(CallLog, log.pk, lease_left=-1)

    response = retry(admin_client, "calllog", log.pk)

    assert "Retry: 1 logged." in response.content.decode()
    log.refresh_from_db()
    assert (log.status, log.attempts) == (LogStatus.LOGGED, 2)
    assert BuiltinActivity.objects.get().contact_id == contact.pk


def test_a_pending_message_is_retried_only_once_its_lease_lapsed(
    api: ApiClient, crm_user: CrmUser, crm_down: CrmDown
) -> None:
    _, log = failed_message(api, crm_down)

    mark_pending(MessageLog, log.pk, lease_left=20)
    assert message_log_retry(log=log).successful is False
    summary = message_logs_retry(log_ids=[log.pk])
    assert (summary.logged, summary.not_logged, summary.left_alone) == (0, 0, 1)
    assert MessageLog.objects.get().status == LogStatus.PENDING
    assert BuiltinActivity.objects.count() == 0

    mark_pending(MessageLog, log.pk, lease_left=-1)
    summary = message_logs_retry(log_ids=[log.pk])
    assert (summary.logged, summary.not_logged, summary.left_alone) == (1, 0, 0)
    assert MessageLog.objects.get().status == LogStatus.LOGGED
    assert BuiltinActivity.objects.count() == 1


def test_a_retried_message_whose_number_now_matches_no_contact_is_skipped(crm_user: CrmUser) -> None:
    """The rules decide again on a retry; with the default (prompt) and no contact for the
    number, the row ends skipped with the decision in its trail, and the CRM is not asked."""
    log = MessageLogFactory(
        user=crm_user,
        status=LogStatus.FAILED,
        decided_by=DecidedBy.RULE,
        phone_number="+14155550142",
        contact_id="",
        crm_log_id="",
        payload={"message": sms(1003, "Anyone there?", 0), "correspondents": [JANE]},
    )

    outcome = message_log_retry(log=log)

    assert outcome.successful is False
    log.refresh_from_db()
    assert (log.status, log.attempts) == (LogStatus.SKIPPED, 2)
    assert list(log.events.values_list("kind", flat=True))[-2:] == [EventKind.RETRIED, EventKind.PROMPTED]
    assert BuiltinActivity.objects.count() == 0


def test_retry_leaves_logged_and_skipped_rows_alone(admin_client: Client, crm_user: CrmUser) -> None:
    logged = CallLogFactory(user=crm_user)
    skipped = CallLogFactory(user=crm_user, status=LogStatus.SKIPPED, crm_log_id="")

    response = retry(admin_client, "calllog", logged.pk, skipped.pk)

    assert "2 left alone" in response.content.decode()
    assert not CallLog.objects.filter(events__kind=EventKind.RETRIED).exists()
    assert BuiltinActivity.objects.count() == 0


def test_the_retry_action_is_offered_to_admins(admin_client: Client, crm_user: CrmUser) -> None:
    CallLogFactory(user=crm_user, status=LogStatus.FAILED)
    MessageLogFactory(user=crm_user, status=LogStatus.FAILED)
    for model in ("calllog", "messagelog"):
        page = admin_client.get(reverse(f"admin:logs_{model}_changelist")).content.decode()
        assert 'value="retry_selected"' in page


def test_retry_refuses_too_large_a_selection(
    admin_client: Client, crm_user: CrmUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("logs.admin.RETRY_BATCH_LIMIT", 2)
    logs = CallLogFactory.create_batch(3, user=crm_user, status=LogStatus.FAILED)

    response = retry(admin_client, "calllog", *(log.pk for log in logs))

    assert "Select at most 2 logs" in response.content.decode()
    assert not CallLog.objects.filter(events__kind=EventKind.RETRIED).exists()
