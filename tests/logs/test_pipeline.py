"""The logging pipeline across crashes: a call or message reaches the CRM exactly once.

A request can die anywhere (a worker killed, a connection dropped). Here it dies at the
worst moments, in process: `Died` is raised from inside the CRM client, right after the
CRM wrote the activity (before our row records it) or before anything was written. Then
the client's retry, an admin's retry or the recovery task comes, and each test counts
what the CRM holds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from connector.crm.base import CallLogInput, CrmUnavailable, LogContact, LogResult, MessageLogInput
from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from logs import services
from logs.choices import EventKind, LogStatus
from logs.models import CallLog, MessageLog
from logs.services import IN_FLIGHT_TEXT, UNCONFIRMED_TEXT, call_log_retry, logs_recover
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

LEASE = 0.3  # seconds a claim belongs to its request, here


class Died(BaseException):
    """The request's process died here (a BaseException: nothing in the server catches it)."""


class CrashingCrm(BuiltinCrmClient):
    """The built-in CRM; `die_before` and `die_after` name a write before or after which the
    request dies, and `lose_answer` one whose answer is lost (the CRM wrote it; the caller
    sees a timeout)."""

    die_before: ClassVar[set[str]] = set()
    die_after: ClassVar[set[str]] = set()
    lose_answer: ClassVar[set[str]] = set()

    def _before(self, operation: str) -> None:
        if operation in self.die_before:
            self.die_before.discard(operation)
            raise Died(f"before {operation}")

    def _after(self, operation: str, result: Any) -> Any:
        if operation in self.die_after:
            self.die_after.discard(operation)
            raise Died(operation)
        if operation in self.lose_answer:
            self.lose_answer.discard(operation)
            raise CrmUnavailable("crashing did not answer in time", uncertain=True)
        return result

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        self._before("create_call_log")
        return self._after("create_call_log", super().create_call_log(user=user, contact=contact, data=data))

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        result = super().create_message_log(user=user, contact=contact, data=data)
        return self._after("create_message_log", result)


class BlindCrm(CrashingCrm):
    """A CRM that cannot be searched for a log it holds."""

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        raise NotImplementedError


@pytest.fixture
def crm(settings, login) -> Iterator[tuple[CrmUser, ApiClient]]:
    """`dana` on the `crashing` platform (the built-in CRM, dying on demand); leases of
    LEASE seconds."""
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {
            **settings.CONNECTOR["PLATFORMS"],
            "crashing": "tests.logs.test_pipeline.CrashingCrm",
            "blind": "tests.logs.test_pipeline.BlindCrm",
        },
        "LOG_LEASE_SECONDS": LEASE,
    }
    for planned in (CrashingCrm.die_before, CrashingCrm.die_after, CrashingCrm.lose_answer):
        planned.clear()
    yield login("dana", platform="crashing")
    for planned in (CrashingCrm.die_before, CrashingCrm.die_after, CrashingCrm.lose_answer):
        planned.clear()


@pytest.fixture
def blind(crm, login) -> tuple[CrmUser, ApiClient]:
    return login("ezra", platform="blind")


def a_call(contact: BuiltinContact, session: str = "s-1") -> dict[str, Any]:
    return call_body(session_id=session, contact_id=str(contact.pk))


def lease_lapses() -> None:
    time.sleep(LEASE + 0.05)


def kinds(log: CallLog | MessageLog) -> list[str]:
    return list(log.events.order_by("id").values_list("kind", flat=True))


# --- a request dies ----------------------------------------------------------------------


def test_a_request_that_died_after_the_crm_write_is_found_there_by_the_clients_retry(crm) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact))
    log = CallLog.objects.get()
    assert log.status == LogStatus.PENDING and log.crm_write_started_at is not None
    lease_lapses()

    answer = api.post("/callLog", a_call(contact)).json()

    activity = BuiltinActivity.objects.get()
    assert answer["successful"] is True and answer["logId"] == str(activity.pk)
    log.refresh_from_db()
    assert (log.status, log.crm_log_id, log.crm_write_started_at) == (
        LogStatus.LOGGED,
        str(activity.pk),
        None,
    )
    assert kinds(log) == [EventKind.RETRIED, EventKind.REQUESTED, EventKind.CRM_CHECKED]
    assert log.events.get(kind=EventKind.CRM_CHECKED).detail == {"found": True, "crmLogId": str(activity.pk)}


def test_a_request_that_died_before_the_crm_write_is_sent_by_the_clients_retry(crm) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_before.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact))
    log = CallLog.objects.get()
    assert log.status == LogStatus.PENDING and log.crm_write_started_at is not None
    lease_lapses()

    answer = api.post("/callLog", a_call(contact)).json()

    assert answer["successful"] is True
    assert BuiltinActivity.objects.count() == 1
    log.refresh_from_db()
    assert log.status == LogStatus.LOGGED
    assert log.events.get(kind=EventKind.CRM_CHECKED).detail == {"found": False, "crmLogId": ""}


def test_a_request_that_died_deciding_an_unknown_caller_is_finished_by_the_clients_retry(
    crm, monkeypatch
) -> None:
    """The automatic flow claims first and decides after (the lookup is a CRM call)."""
    _, api = crm
    BuiltinContactFactory(phone_numbers=["+14155550100"])

    def die(*args: Any, **kwargs: Any) -> Any:
        raise Died("claimed, then died")

    with monkeypatch.context() as patch:
        patch.setattr(services, "contact_decide", die)
        with pytest.raises(Died):
            api.post("/callLog", call_body(session_id="s-1"))
    log = CallLog.objects.get()
    assert log.status == LogStatus.PENDING and log.crm_write_started_at is None
    lease_lapses()

    answer = api.post("/callLog", call_body(session_id="s-1")).json()

    assert answer["successful"] is True
    assert BuiltinActivity.objects.count() == 1
    assert EventKind.CRM_CHECKED not in kinds(CallLog.objects.get())


def test_a_retry_while_the_first_request_still_holds_the_call_is_told_to_try_again(crm, monkeypatch) -> None:
    """Not "Existing log" (the client would stop): the first request may yet die."""
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact))
    monkeypatch.setattr(services, "DUPLICATE_WAIT_SECONDS", 0.05)
    monkeypatch.setitem(services.connector_settings._cache, "LOG_LEASE_SECONDS", 30.0)
    CallLog.objects.update(lease_until=timezone.now() + timedelta(seconds=30))

    answer = api.post("/callLog", a_call(contact)).json()

    assert answer == {
        "successful": False,
        "returnMessage": {"message": IN_FLIGHT_TEXT, "messageType": "warning", "ttl": 3000},
    }
    assert BuiltinActivity.objects.count() == 1


def test_the_recovery_task_finishes_what_dead_requests_left(crm, monkeypatch) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact, "written"))
    CrashingCrm.die_before.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact, "claimed"))
    lease_lapses()

    summary = logs_recover()

    assert (summary.logged, summary.not_logged, summary.left_alone) == (2, 0, 0)
    assert set(CallLog.objects.values_list("status", flat=True)) == {LogStatus.LOGGED}
    sessions = sorted(BuiltinActivity.objects.values_list("details__sessionId", flat=True))
    assert sessions == ["claimed", "written"]
    retried = CallLog.objects.get(session_id="written").events.get(kind=EventKind.RETRIED)
    assert retried.detail["by"] == "task"


def test_the_recovery_task_leaves_a_live_request_alone(crm, monkeypatch) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact))

    summary = logs_recover()  # the lease has not lapsed: the request may be alive

    assert (summary.logged, summary.left_alone) == (0, 0)
    assert CallLog.objects.get().status == LogStatus.PENDING


# --- the CRM's answer is lost ---------------------------------------------------------------


def test_a_write_whose_answer_was_lost_is_looked_for_before_it_is_sent_again(crm) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.lose_answer.add("create_call_log")

    first = api.post("/callLog", a_call(contact)).json()

    assert first["successful"] is False
    log = CallLog.objects.get()
    assert log.status == LogStatus.FAILED and log.crm_write_started_at is not None

    second = api.post("/callLog", a_call(contact)).json()

    assert second["successful"] is True
    assert BuiltinActivity.objects.count() == 1
    log.refresh_from_db()
    assert (log.status, log.crm_log_id) == (LogStatus.LOGGED, str(BuiltinActivity.objects.get().pk))


def test_a_definite_failure_is_sent_again_without_asking(crm, monkeypatch) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    with monkeypatch.context() as patch:
        patch.setattr(
            BuiltinCrmClient,
            "create_call_log",
            lambda *a, **k: (_ for _ in ()).throw(CrmUnavailable("503")),
        )
        api.post("/callLog", a_call(contact))
    assert CallLog.objects.get().crm_write_started_at is None

    assert api.post("/callLog", a_call(contact)).json()["successful"] is True

    log = CallLog.objects.get()
    assert EventKind.CRM_CHECKED not in kinds(log)
    assert BuiltinActivity.objects.count() == 1


# --- a CRM that cannot be asked -------------------------------------------------------------


def test_a_crm_that_cannot_be_asked_leaves_the_call_for_an_admin(blind, admin_client: Client) -> None:
    _, api = blind
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_call_log")
    with pytest.raises(Died):
        api.post("/callLog", a_call(contact))
    lease_lapses()

    answer = api.post("/callLog", a_call(contact)).json()
    again = call_log_retry(log=CallLog.objects.get())

    assert answer["returnMessage"]["message"] == UNCONFIRMED_TEXT
    assert again.successful is False
    log = CallLog.objects.get()
    assert (log.status, log.crm_write_started_at is not None) == (LogStatus.UNCONFIRMED, True)
    assert BuiltinActivity.objects.count() == 1  # never sent blind

    # The admin looks in the CRM, finds nothing (say the CRM lost it), and sends it again.
    BuiltinActivity.objects.all().delete()
    response = admin_client.post(
        reverse("admin:logs_calllog_changelist"),
        {"action": "resend_unconfirmed", "_selected_action": [str(log.pk)], "index": 0},
        follow=True,
    )

    assert "Retry: 1 logged." in response.content.decode()
    log.refresh_from_db()
    assert log.status == LogStatus.LOGGED and BuiltinActivity.objects.count() == 1
    assert log.events.filter(kind=EventKind.RETRIED, detail__resend=True).exists()


# --- a request loses its lease --------------------------------------------------------------


def test_a_request_whose_claim_was_taken_over_writes_nothing(crm, monkeypatch) -> None:
    """Deciding an unknown caller takes CRM calls, after the claim: the lease may lapse."""
    _, api = crm
    BuiltinContactFactory(phone_numbers=["+14155550100"])
    decide = services.contact_decide

    def slow_decide(**kwargs: Any) -> Any:
        # Meanwhile the lease lapsed and another request took the call over.
        CallLog.objects.update(lease_owner="another-request")
        return decide(**kwargs)

    monkeypatch.setattr(services, "contact_decide", slow_decide)

    answer = api.post("/callLog", call_body(session_id="s-1")).json()

    assert answer["returnMessage"]["message"] == IN_FLIGHT_TEXT
    assert BuiltinActivity.objects.count() == 0


# --- messages -------------------------------------------------------------------------------

JANE = {"phoneNumber": "+14155550100", "name": "Jane Caller"}


def message_body(contact_id: str | None, *ids: int) -> dict[str, Any]:
    messages = [
        {
            "id": message_id,
            "type": "SMS",
            "direction": "Inbound",
            "subject": f"message {message_id}",
            "creationTime": f"2026-11-26T10:0{index}:00.000Z",
            "from": JANE,
            "conversationId": 777,
        }
        for index, message_id in enumerate(ids)
    ]
    body: dict[str, Any] = {
        "logInfo": {
            "messages": messages[::-1],  # newest first, as the client sends them
            "correspondents": [JANE],
            "conversationId": "777",
            "conversationLogId": "777-2026-11-26",
        },
        "additionalSubmission": {},
    }
    if contact_id is not None:
        body.update(contactId=contact_id, contactName="Jane Caller", contactType="Contact")
    return body


def test_a_message_written_before_its_request_died_is_found_not_written_twice(crm) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_message_log")
    with pytest.raises(Died):
        api.post("/messageLog", message_body(str(contact.pk), 1))
    lease_lapses()

    answer = api.post("/messageLog", message_body(str(contact.pk), 1, 2)).json()

    assert answer["successful"] is True
    activity = BuiltinActivity.objects.get()
    assert activity.body.count("message 1") == 1 and "message 2" in activity.body
    assert set(MessageLog.objects.values_list("status", "crm_log_id")) == {
        (LogStatus.LOGGED, str(activity.pk))
    }


def test_an_sms_from_an_unknown_number_left_to_the_user_leaves_a_skipped_row(api: ApiClient) -> None:
    rules_cache_clear()

    answer = api.post("/messageLog", message_body(None, 5)).json()

    assert answer["successful"] is False
    log = MessageLog.objects.get()
    assert log.status == LogStatus.SKIPPED
    assert kinds(log) == [EventKind.REQUESTED, EventKind.PROMPTED]
    assert BuiltinActivity.objects.count() == 0


def test_the_recovery_runs_from_the_command_line_and_as_a_celery_task(crm) -> None:
    from io import StringIO

    from django.core.management import call_command

    from logs.tasks import logs_recover_task

    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    for session in ("s-1", "s-2"):
        CrashingCrm.die_after.add("create_call_log")
        with pytest.raises(Died):
            api.post("/callLog", a_call(contact, session))
    lease_lapses()
    CallLog.objects.filter(session_id="s-2").update(lease_until=timezone.now() + timedelta(seconds=60))

    out = StringIO()
    call_command("logs_recover", stdout=out)
    CallLog.objects.filter(session_id="s-2").update(lease_until=timezone.now())
    figures = logs_recover_task.delay().get()

    assert out.getvalue().strip() == "1 logged, 0 not logged, 0 left alone"
    assert figures == {"logged": 1, "not_logged": 0, "left_alone": 0, "errors": {}}
    assert BuiltinActivity.objects.count() == 2
    assert set(CallLog.objects.values_list("status", flat=True)) == {LogStatus.LOGGED}


def test_a_message_another_live_request_holds_makes_the_client_come_back(crm, monkeypatch) -> None:
    _, api = crm
    contact = BuiltinContactFactory(phone_numbers=["+14155550100"])
    CrashingCrm.die_after.add("create_message_log")
    with pytest.raises(Died):
        api.post("/messageLog", message_body(str(contact.pk), 1))
    monkeypatch.setattr(services, "DUPLICATE_WAIT_SECONDS", 0.05)
    MessageLog.objects.update(lease_until=timezone.now() + timedelta(seconds=30))

    answer = api.post("/messageLog", message_body(str(contact.pk), 1, 2)).json()

    assert answer["successful"] is False
    assert answer["returnMessage"]["message"] == IN_FLIGHT_TEXT
    # message 2 waits for message 1, so the conversation stays one CRM activity
    assert BuiltinActivity.objects.get().body.count("message 1") == 1
    assert MessageLog.objects.count() == 1
