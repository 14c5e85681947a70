"""CRM failures become App Connect's messages (appconnect-api.md §1.4) and leave honest rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connector.crm.base import CrmAuthError, CrmRateLimited, CrmRejected, CrmUnavailable, LogResult
from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from logs.models import CallLog, LogEvent, MessageLog
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory
from tests.fakes import FAULTY_PLATFORM, FaultyCrmClient

P = FAULTY_PLATFORM


def warning(message: str, text: str, *, numeric_id: bool) -> dict[str, Any]:
    return {
        "message": message,
        "messageType": "warning",
        "ttl": 5000,
        "details": [
            {"title": "Details", "items": [{"id": 1 if numeric_id else "1", "type": "text", "text": text}]}
        ],
    }


RATE_LIMITED = warning(
    "Rate limit exceeded",
    f"You have exceeded the maximum number of requests allowed by {P}. "
    "Please try again in the next minute. If the problem persists please contact support.",
    numeric_id=False,
)
AUTHORIZATION = warning(
    "Authorization error",
    f"It seems like there's something wrong with your authorization of {P}. "
    f"Please Logout and then Connect your {P} account within this extension.",
    numeric_id=False,
)
CREATE_LOG_FAILED = warning(
    "Error creating call log", "Please check if your account has permission to CREATE logs.", numeric_id=True
)


@pytest.fixture
def faulty(settings, login) -> Iterator[tuple[CrmUser, ApiClient]]:
    """A user connected to the `faulty` platform (the built-in CRM with injected failures)."""
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], P: "tests.fakes.FaultyCrmClient"},
    }
    FaultyCrmClient.reset()
    yield login("carol", platform=P)
    FaultyCrmClient.reset()


@pytest.fixture
def api(faulty: tuple[CrmUser, ApiClient]) -> ApiClient:
    return faulty[1]


@pytest.fixture
def contact(db) -> BuiltinContact:
    return BuiltinContactFactory(name="Jane Caller", phone_numbers=["+14155550100"])


def event_kinds(log: CallLog | MessageLog) -> list[str]:
    field = "call_log" if isinstance(log, CallLog) else "message_log"
    return list(
        LogEvent.objects.filter(**{field: log}).order_by("created_at", "id").values_list("kind", flat=True)
    )


# --- call logs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CrmRateLimited("faulty rate limit", retry_after=30), RATE_LIMITED),
        (CrmAuthError("faulty refused the credentials"), AUTHORIZATION),
        (CrmAuthError("forbidden", status_code=403), AUTHORIZATION),
        (CrmRejected("bad request", status_code=400), AUTHORIZATION),
        (CrmUnavailable("faulty failed with HTTP 503"), CREATE_LOG_FAILED),
        (CrmUnavailable("faulty did not answer in time", status_code=None), CREATE_LOG_FAILED),
        (CrmRejected("unprocessable"), CREATE_LOG_FAILED),
    ],
    ids=["429", "401", "403", "400", "503", "timeout", "422"],
)
def test_a_failed_call_log_answers_the_peer_message_and_the_row_says_failed(
    api: ApiClient, contact: BuiltinContact, error: Exception, expected: dict[str, Any]
) -> None:
    FaultyCrmClient.plan("create_call_log", error)

    response = api.post("/callLog", call_body(contact_id=str(contact.pk)))

    assert response.status_code == 200
    assert response.json() == {"successful": False, "returnMessage": expected}
    assert BuiltinActivity.objects.count() == 0
    log = CallLog.objects.get()
    assert log.status == "failed"
    assert log.attempts == 1
    assert log.last_error == str(error)
    assert log.crm_log_id == ""
    assert log.contact_id == str(contact.pk)  # the contact is kept for the retry
    assert event_kinds(log) == ["requested", "matched", "crm_failed"]


def test_a_rate_limited_call_log_keeps_the_crms_wait_and_limits_on_its_trail(
    api: ApiClient, contact: BuiltinContact
) -> None:
    limits = {"retry-after": "30", "x-ratelimit-remaining": "0"}
    FaultyCrmClient.plan(
        "create_call_log", CrmRateLimited("faulty rate limit", retry_after=30, limits=limits)
    )

    api.post("/callLog", call_body(contact_id=str(contact.pk)))

    failed = LogEvent.objects.get(kind="crm_failed")
    assert failed.detail == {
        "error": "faulty rate limit",
        "status": 429,
        "retryAfter": 30,
        "rateLimit": limits,
    }


def test_a_retry_of_a_failed_call_log_logs_against_the_same_contact(
    api: ApiClient, contact: BuiltinContact
) -> None:
    FaultyCrmClient.plan("create_call_log", CrmRateLimited("faulty rate limit"))
    body = call_body(contact_id=str(contact.pk))
    assert api.post("/callLog", body).json()["returnMessage"] == RATE_LIMITED

    response = api.post("/callLog", body)

    activity = BuiltinActivity.objects.get()
    assert response.json() == {
        "successful": True,
        "logId": str(activity.pk),
        "returnMessage": {"message": "Call logged", "messageType": "success", "ttl": 2000},
    }
    assert activity.contact_id == contact.pk
    log = CallLog.objects.get()
    assert log.status == "logged"
    assert log.attempts == 2
    assert log.last_error == ""
    assert log.crm_log_id == str(activity.pk)
    assert log.contact_id == str(contact.pk)
    assert event_kinds(log) == [
        "requested",
        "matched",
        "crm_failed",
        "retried",
        "requested",
        "matched",
        "crm_logged",
    ]
    assert FaultyCrmClient.calls["create_call_log"] == 2


def test_a_retry_of_an_automatically_matched_call_uses_the_same_contact(
    api: ApiClient, contact: BuiltinContact
) -> None:
    FaultyCrmClient.plan("create_call_log", CrmUnavailable("down"))
    assert api.post("/callLog", call_body()).json()["returnMessage"] == CREATE_LOG_FAILED
    assert CallLog.objects.get().contact_id == str(contact.pk)

    assert api.post("/callLog", call_body()).json()["successful"] is True

    assert BuiltinActivity.objects.get().contact_id == contact.pk
    log = CallLog.objects.get()
    assert (log.status, log.attempts, log.contact_id) == ("logged", 2, str(contact.pk))


def test_a_log_the_crm_did_not_create_fails_with_the_connector_message(
    api: ApiClient, contact: BuiltinContact
) -> None:
    refusal = {"message": "Activity type disabled", "messageType": "warning", "ttl": 5000}
    FaultyCrmClient.plan("create_call_log", LogResult(log_id=None, return_message=refusal))

    response = api.post("/callLog", call_body(contact_id=str(contact.pk)))

    assert response.json() == {"successful": False, "returnMessage": refusal}
    log = CallLog.objects.get()
    assert (log.status, log.attempts, log.last_error) == ("failed", 1, "Activity type disabled")


def test_a_failed_lookup_during_auto_logging_fails_the_log(api: ApiClient, contact: BuiltinContact) -> None:
    FaultyCrmClient.plan("find_contact", CrmRateLimited("faulty rate limit"))

    response = api.post("/callLog", call_body())

    assert response.json() == {"successful": False, "returnMessage": RATE_LIMITED}
    assert FaultyCrmClient.calls["create_call_log"] == 0
    log = CallLog.objects.get()
    assert (log.status, log.attempts, log.contact_id) == ("failed", 1, "")
    assert log.last_error


def test_a_duplicate_never_reaches_the_crm(api: ApiClient, contact: BuiltinContact) -> None:
    api.post("/callLog", call_body(contact_id=str(contact.pk)))

    api.post("/callLog", call_body(contact_id=str(contact.pk)))

    assert FaultyCrmClient.calls["create_call_log"] == 1


def test_a_failed_update_answers_the_peer_message_and_changes_nothing(
    api: ApiClient, contact: BuiltinContact
) -> None:
    api.post("/callLog", call_body(contact_id=str(contact.pk)))
    body_before = BuiltinActivity.objects.get().body
    FaultyCrmClient.plan("update_call_log", CrmUnavailable("down"))

    response = api.patch("/callLog", {"sessionId": "session-1", "note": "new note"})

    assert response.status_code == 200
    assert response.json() == {
        "successful": False,
        "returnMessage": warning(
            "Error updating call log",
            f"Please check if the log entity still exists on {P} "
            "and your account has permission to EDIT logs.",
            numeric_id=True,
        ),
    }
    activity = BuiltinActivity.objects.get()
    assert (activity.note, activity.body) == ("Asked about pricing", body_before)
    log = CallLog.objects.get()
    assert log.status == "logged"
    assert event_kinds(log)[-1] == "crm_failed"


def test_a_rate_limited_update_says_so(api: ApiClient, contact: BuiltinContact) -> None:
    api.post("/callLog", call_body(contact_id=str(contact.pk)))
    FaultyCrmClient.plan("update_call_log", CrmRateLimited("slow down"))

    assert api.patch("/callLog", {"sessionId": "session-1", "note": "n"}).json() == {
        "successful": False,
        "returnMessage": RATE_LIMITED,
    }


def test_an_update_still_works_when_the_crm_cannot_read_the_log_back(
    api: ApiClient, contact: BuiltinContact
) -> None:
    api.post("/callLog", call_body(contact_id=str(contact.pk)))
    FaultyCrmClient.plan("get_call_log", CrmUnavailable("down"))

    response = api.patch("/callLog", {"sessionId": "session-1", "note": "new note"})

    assert response.json()["successful"] is True
    assert BuiltinActivity.objects.get().note == "new note"


def test_a_failed_detail_read_is_reported_by_the_lookup(api: ApiClient, contact: BuiltinContact) -> None:
    log_id = api.post("/callLog", call_body(contact_id=str(contact.pk))).json()["logId"]
    FaultyCrmClient.plan("get_call_log", CrmUnavailable("down"))

    body = api.get("/callLog", {"sessionIds": "session-1", "requireDetails": "true"}).json()

    assert body["returnMessage"] == warning(
        "Error getting call log", "Please check if your account has permission to READ logs.", numeric_id=True
    )
    assert body["logs"][0]["sessionId"] == "session-1"
    assert body["logs"][0]["logId"] == log_id
    assert "logData" not in body["logs"][0]


# --- contacts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CrmRateLimited("slow down"), RATE_LIMITED),
        (CrmAuthError("refused"), AUTHORIZATION),
        (
            CrmUnavailable("down"),
            warning(
                "Error finding contact",
                "Please check if your account has permission to GET contacts.",
                numeric_id=True,
            ),
        ),
    ],
    ids=["429", "401", "503"],
)
def test_a_failed_lookup_answers_the_peer_message_without_contacts(
    api: ApiClient, contact: BuiltinContact, error: Exception, expected: dict[str, Any]
) -> None:
    FaultyCrmClient.plan("find_contact", error)

    response = api.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 200
    assert response.json() == {"successful": False, "returnMessage": expected}


def test_a_failed_name_search_answers_the_peer_message(api: ApiClient) -> None:
    FaultyCrmClient.plan("find_contact_with_name", CrmUnavailable("down"))

    response = api.get("/custom/contact/search", {"name": "Jane"})

    assert response.json() == {
        "successful": False,
        "returnMessage": warning(
            "Error searching contacts",
            "Please check if your account has permission to GET contacts.",
            numeric_id=True,
        ),
    }


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (CrmRateLimited("slow down"), RATE_LIMITED),
        (CrmAuthError("refused"), AUTHORIZATION),
        (
            CrmUnavailable("down"),
            warning(
                "Error creating contact",
                "Please check if your account has permission to CREATE contacts.",
                numeric_id=True,
            ),
        ),
    ],
    ids=["429", "401", "503"],
)
def test_a_failed_contact_creation_answers_the_peer_message_and_creates_nothing(
    api: ApiClient, error: Exception, expected: dict[str, Any]
) -> None:
    FaultyCrmClient.plan("create_contact", error)

    response = api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane"})

    assert response.status_code == 200
    assert response.json() == {"successful": False, "returnMessage": expected}
    assert BuiltinContact.objects.count() == 0


def test_a_contact_creation_works_again_after_a_failure(api: ApiClient) -> None:
    FaultyCrmClient.plan("create_contact", CrmUnavailable("down"))
    api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane"})

    response = api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane"})

    assert response.json()["successful"] is True
    assert response.json()["contact"]["id"] == str(BuiltinContact.objects.get().pk)


def test_auth_validation_reports_a_crm_failure(api: ApiClient) -> None:
    FaultyCrmClient.plan("auth_validation", CrmAuthError("refused"))

    response = api.get("/authValidation")

    assert response.status_code == 200
    assert response.json() == {"successful": False, "returnMessage": AUTHORIZATION}


# --- message logs ----------------------------------------------------------------------


def message_body(contact: BuiltinContact, *ids: str) -> dict[str, Any]:
    return {
        "logInfo": {
            "messages": [
                {"id": message_id, "type": "SMS", "direction": "Inbound", "subject": f"text {message_id}"}
                for message_id in ids
            ],
            "correspondents": [{"phoneNumber": "+14155550100"}],
            "conversationLogId": "c-2026-11-26",
        },
        "contactId": str(contact.pk),
        "contactName": "Jane Caller",
    }


def test_a_failed_message_log_answers_the_peer_message_and_the_row_says_failed(
    api: ApiClient, contact: BuiltinContact
) -> None:
    FaultyCrmClient.plan("create_message_log", CrmUnavailable("down"))

    response = api.post("/messageLog", message_body(contact, "m1"))

    assert response.status_code == 200
    body = response.json()
    assert body["successful"] is False
    assert body["returnMessage"] == warning(
        "Error creating message log",
        "Please check if your account has permission to CREATE logs.",
        numeric_id=True,
    )
    assert body.get("logIds", []) == []
    row = MessageLog.objects.get()
    assert (row.status, row.attempts, row.last_error, row.contact_id) == (
        "failed",
        1,
        "down",
        str(contact.pk),
    )
    assert BuiltinActivity.objects.count() == 0


def test_a_message_log_the_crm_did_not_create_is_not_successful(
    api: ApiClient, contact: BuiltinContact
) -> None:
    refusal = {"message": "SMS logging disabled", "messageType": "warning", "ttl": 5000}
    FaultyCrmClient.plan("create_message_log", LogResult(log_id=None, return_message=refusal))

    response = api.post("/messageLog", message_body(contact, "m1"))

    # The peer says successful:true here (appconnect-api.md §7); we say what happened.
    body = response.json()
    assert (body["successful"], body["returnMessage"], body.get("logIds", [])) == (False, refusal, [])
    row = MessageLog.objects.get()
    assert (row.status, row.attempts, row.last_error) == ("failed", 1, "SMS logging disabled")


def test_a_retry_of_a_failed_message_log_logs_it(api: ApiClient, contact: BuiltinContact) -> None:
    FaultyCrmClient.plan("create_message_log", CrmRateLimited("slow down"))
    assert api.post("/messageLog", message_body(contact, "m1")).json()["returnMessage"] == RATE_LIMITED

    response = api.post("/messageLog", message_body(contact, "m1"))

    assert response.json() == {
        "successful": True,
        "logIds": ["m1"],
        "returnMessage": {"message": "Message logged", "messageType": "success", "ttl": 1000},
    }
    row = MessageLog.objects.get()
    assert (row.status, row.attempts, row.last_error) == ("logged", 2, "")
    assert row.crm_log_id == str(BuiltinActivity.objects.get().pk)


def test_a_message_log_failing_halfway_keeps_what_was_logged(api: ApiClient, contact: BuiltinContact) -> None:
    FaultyCrmClient.plan("update_message_log", CrmUnavailable("down"))

    # Newest first: m1 is logged first (creating the activity), then m2 fails.
    response = api.post("/messageLog", message_body(contact, "m2", "m1"))

    assert response.json()["successful"] is False
    rows = {row.message_id: row for row in MessageLog.objects.all()}
    assert (rows["m1"].status, rows["m2"].status) == ("logged", "failed")
    retry = api.post("/messageLog", message_body(contact, "m2", "m1"))
    assert retry.json()["logIds"] == ["m2"]
    assert MessageLog.objects.get(message_id="m2").status == "logged"
    assert BuiltinActivity.objects.count() == 1
