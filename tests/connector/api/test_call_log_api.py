"""POST, GET and PATCH /callLog and POST /callLog/cacheNote (appconnect-api.md §2.11-2.14)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from connector.utils import hash_value
from logs.models import CallLog, LogEvent
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

CALL_LOGGED = {"message": "Call logged", "messageType": "success", "ttl": 2000}
CALL_UPDATED = {"message": "Call log updated.", "messageType": "success", "ttl": 2000}
# call_body()'s call, composed with the default settings and the built-in user's "+00:00".
DEFAULT_BODY = (
    "- Note: Asked about pricing\n"
    "- Summary: Inbound call from Jane\n"
    "- Date/Time: 2026-11-26 10:00:00 AM\n"
    "- Duration: 1 minute, 5 seconds\n"
    "- Result: Accepted\n"
)


@pytest.fixture
def contact(db) -> BuiltinContact:
    return BuiltinContactFactory(name="Jane Caller", phone_numbers=["+14155550100"])


@pytest.fixture
def contact_id(contact: BuiltinContact) -> str:
    return str(contact.pk)


def existing_log(session_id: str = "session-1") -> str:
    return f"Existing log for session {session_id}"


def duplicate(session_id: str = "session-1") -> dict[str, Any]:
    return {
        "successful": False,
        "returnMessage": {"message": existing_log(session_id), "messageType": "warning", "ttl": 3000},
    }


def event_kinds(log: CallLog) -> list[str]:
    return list(
        LogEvent.objects.filter(call_log=log).order_by("created_at", "id").values_list("kind", flat=True)
    )


def assert_bad_input(response, field: str) -> None:
    """A 400 JSON whose `errors` name `field` (or a field inside it), with a returnMessage."""
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["successful"] is False
    assert any(key == field or key.startswith(f"{field}.") for key in body["errors"]), body["errors"]
    assert not any("non_field_errors" in key for key in body["errors"]), body["errors"]
    assert body["returnMessage"]["messageType"] == "warning"
    assert field in body["returnMessage"]["message"]


# --- POST /callLog ---------------------------------------------------------------------


def test_log_a_call(api: ApiClient, crm_user: CrmUser, contact_id: str) -> None:
    response = api.post("/callLog", call_body(contact_id=contact_id))

    assert response.status_code == 200
    activity = BuiltinActivity.objects.get()
    assert response.json() == {"successful": True, "logId": str(activity.pk), "returnMessage": CALL_LOGGED}
    assert isinstance(response.json()["logId"], str)
    assert activity.kind == "call"
    assert activity.contact_id == int(contact_id)
    assert activity.owner.name == "alice"
    assert activity.subject == "Inbound call from Jane"
    assert activity.note == "Asked about pricing"
    assert activity.body == DEFAULT_BODY


def test_a_logged_call_leaves_a_logged_row_and_its_trail(
    api: ApiClient, crm_user: CrmUser, contact_id: str
) -> None:
    log_id = api.post("/callLog", call_body(contact_id=contact_id)).json()["logId"]

    log = CallLog.objects.get()
    assert log.user == crm_user
    assert log.platform == "builtin"
    assert log.session_id == "session-1"
    assert log.record_id == "t-session-1"
    assert log.status == "logged"
    assert log.attempts == 1
    assert log.crm_log_id == log_id
    assert log.last_error == ""
    assert (log.contact_id, log.contact_name, log.contact_type) == (contact_id, "Jane Caller", "Contact")
    assert log.contact_is_placeholder is False
    assert log.decided_by == "user"
    assert log.phone_number == "+14155550100"
    assert log.direction == "Inbound"
    assert log.started_at == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert log.duration_seconds == 65
    assert log.result == "Accepted"
    assert event_kinds(log) == ["requested", "matched", "crm_logged"]


def test_an_outbound_call_is_logged_against_the_callee(api: ApiClient, contact_id: str) -> None:
    body = call_body(contact_id=contact_id, direction="Outbound")
    body["logInfo"]["customSubject"] = "Outbound call to Jane"

    response = api.post("/callLog", body)

    assert response.json()["successful"] is True
    log = CallLog.objects.get()
    assert (log.direction, log.phone_number) == ("Outbound", "+14155550100")
    assert BuiltinActivity.objects.get().body.startswith(
        "- Note: Asked about pricing\n- Summary: Outbound call to Jane\n"
    )


def test_the_composed_body_follows_the_user_s_settings(api: ApiClient, contact_id: str) -> None:
    api.post(
        "/user/settings",
        {
            "userSettings": {
                "addCallLogNote": {"value": False},
                "addCallSessionId": {"value": True},
                "addCallLogContactNumber": {"value": True},
                "addCallLogResult": {"value": False},
                "logDateFormat": {"value": "MM/DD/YYYY HH:mm"},
            }
        },
    )

    api.post("/callLog", call_body(contact_id=contact_id))

    assert BuiltinActivity.objects.get().body == (
        "- Session Id: session-1\n"
        "- Summary: Inbound call from Jane\n"
        "- Contact Number: +14155550100\n"
        "- Date/Time: 11/26/2026 10:00\n"
        "- Duration: 1 minute, 5 seconds\n"
    )


def test_the_composed_date_is_shifted_by_the_user_s_timezone(
    api: ApiClient, crm_user: CrmUser, contact_id: str
) -> None:
    CrmUser.objects.filter(pk=crm_user.pk).update(timezone_offset="-5")

    api.post("/callLog", call_body(contact_id=contact_id))

    assert "- Date/Time: 2026-11-26 05:00:00 AM\n" in BuiltinActivity.objects.get().body


def test_the_composed_body_carries_recording_voicemail_ai_note_and_journey(
    api: ApiClient, contact_id: str
) -> None:
    body = call_body(contact_id=contact_id, note="", aiNote="Wants a quote\n\n", voicemailLink="https://vm/1")
    body["logInfo"].update(
        recording={"link": "https://rec/1"},
        legs=[
            {"direction": "Inbound", "to": {"name": "Main", "phoneNumber": "+16505550100"}},
            {"direction": "Inbound", "to": {"name": "Agent Smith", "extensionNumber": "101"}, "duration": 40},
        ],
    )

    assert api.post("/callLog", body).json()["successful"] is True

    assert BuiltinActivity.objects.get().body == (
        "- Summary: Inbound call from Jane\n"
        "- Date/Time: 2026-11-26 10:00:00 AM\n"
        "- Duration: 1 minute, 5 seconds\n"
        "- Result: Accepted\n"
        "- Call recording link: https://rec/1\n"
        "- Voicemail recording link: https://vm/1\n"
        "\n- AI Note:\nWants a quote\n--- END\n"
        "- Call journey:\n"
        "Received call at Main, +16505550100\n"
        "Transferred to Agent Smith, ext 101, duration: 40 seconds\n"
        "--- JOURNEY END\n"
    )


def test_a_second_log_of_the_same_session_is_refused(api: ApiClient, contact_id: str) -> None:
    first = api.post("/callLog", call_body(contact_id=contact_id))

    again = api.post("/callLog", call_body(contact_id=contact_id, note="different note"))

    assert first.json()["successful"] is True
    assert again.status_code == 200
    assert again.json() == duplicate()
    assert BuiltinActivity.objects.count() == 1
    assert BuiltinActivity.objects.get().note == "Asked about pricing"
    log = CallLog.objects.get()
    assert (log.status, log.attempts) == ("logged", 1)
    assert event_kinds(log) == ["requested", "matched", "crm_logged", "duplicate"]


def test_a_duplicate_without_a_contact_is_still_refused_as_a_duplicate(
    api: ApiClient, contact_id: str
) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    assert api.post("/callLog", call_body()).json() == duplicate()
    assert CallLog.objects.get().status == "logged"


def test_dedupe_is_per_user(api: ApiClient, login, contact_id: str) -> None:
    _, bob = login("bob")

    alice_log = api.post("/callLog", call_body(contact_id=contact_id))
    bob_log = bob.post("/callLog", call_body(contact_id=contact_id))

    assert alice_log.json()["successful"] is True
    assert bob_log.json()["successful"] is True
    assert bob_log.json()["logId"] != alice_log.json()["logId"]
    assert BuiltinActivity.objects.count() == 2
    assert sorted(BuiltinActivity.objects.values_list("owner__name", flat=True)) == ["alice", "bob"]
    assert CallLog.objects.filter(status="logged").count() == 2


def test_each_extension_logs_the_same_session_once(api: ApiClient, contact_id: str) -> None:
    first = api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-a"))
    other = api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-b"))
    again = api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-a"))

    assert first.json()["successful"] is True
    assert other.json()["successful"] is True
    assert again.json() == duplicate()
    assert BuiltinActivity.objects.count() == 2
    assert sorted(CallLog.objects.values_list("hashed_extension_id", flat=True)) == ["hash-a", "hash-b"]


def test_the_extension_identity_may_come_from_the_call_record(api: ApiClient, contact_id: str) -> None:
    body = call_body(contact_id=contact_id)
    body["logInfo"]["hashedExtensionId"] = "hash-a"

    api.post("/callLog", body)

    assert (
        api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-a")).json()
        == duplicate()
    )
    assert CallLog.objects.get().hashed_extension_id == "hash-a"


def test_extension_numbers_are_an_identity_too(api: ApiClient, contact_id: str) -> None:
    assert api.post("/callLog", call_body(contact_id=contact_id, extensionNumber="101")).json()["successful"]
    assert api.post("/callLog", call_body(contact_id=contact_id, extensionNumber=102)).json()["successful"]
    assert api.post("/callLog", call_body(contact_id=contact_id, extensionNumber="101")).json() == duplicate()
    assert BuiltinActivity.objects.count() == 2


def test_a_raw_rc_extension_id_is_hashed_with_the_hash_key(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id, rcExtensionId="62001"))

    assert CallLog.objects.get().hashed_extension_id == hash_value("62001")
    same = call_body(contact_id=contact_id, hashedExtensionId=hash_value("62001"))
    assert api.post("/callLog", same).json() == duplicate()


def test_a_legacy_log_by_extension_number_is_a_duplicate_for_that_extension_s_hashed_id(
    api: ApiClient, contact_id: str
) -> None:
    # appconnect-api.md §2.11: with a hashedExtensionId, a row with no hash and the same
    # extensionNumber is the same extension's log; GET /callLog already says it is matched.
    api.post("/callLog", call_body(contact_id=contact_id, extensionNumber="101"))
    state = api.get(
        "/callLog", {"sessionIds": "session-1", "hashedExtensionId": "hash-a", "extensionNumber": "101"}
    )
    assert state.json()["logs"][0]["matched"] is True

    again = api.post(
        "/callLog", call_body(contact_id=contact_id, extensionNumber="101", hashedExtensionId="hash-a")
    )

    assert again.json() == duplicate()
    assert BuiltinActivity.objects.count() == 1


def test_without_a_contact_for_an_unknown_number_nothing_is_logged_and_the_row_says_skipped(
    api: ApiClient, crm_user: CrmUser
) -> None:
    # No contactId and no contact with the number: the default rule (prompt) leaves it to the user.
    BuiltinContactFactory(phone_numbers=["+14155550199"])

    response = api.post("/callLog", call_body())

    assert response.status_code == 200
    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "Contact not found for number +14155550100",
            "messageType": "warning",
            "ttl": 5000,
        },
    }
    assert BuiltinActivity.objects.count() == 0
    assert BuiltinContact.objects.count() == 1  # nothing created either
    log = CallLog.objects.get()
    assert log.status == "skipped"
    assert log.attempts == 1
    assert log.crm_log_id == ""
    assert log.contact_id == ""
    assert log.decided_by == "rule"
    assert log.phone_number == "+14155550100"
    assert event_kinds(log) == ["requested", "prompted"]


def test_without_a_contact_id_the_only_contact_with_the_number_is_used(
    api: ApiClient, contact_id: str
) -> None:
    response = api.post("/callLog", call_body())

    assert response.json() == {
        "successful": True,
        "logId": str(BuiltinActivity.objects.get().pk),
        "returnMessage": CALL_LOGGED,
    }
    assert BuiltinActivity.objects.get().contact_id == int(contact_id)
    log = CallLog.objects.get()
    assert (log.status, log.contact_id, log.decided_by) == ("logged", contact_id, "rule")


def test_contact_not_found_names_the_number_as_the_client_sent_it(api: ApiClient) -> None:
    response = api.post("/callLog", call_body(phone="(415) 555-0100"))

    assert response.json()["returnMessage"]["message"] == "Contact not found for number (415) 555-0100"
    assert CallLog.objects.get().phone_number == "+14155550100"


@pytest.mark.parametrize("contact_id", ["", None, 0])
def test_a_falsy_contact_id_means_no_contact(api: ApiClient, contact_id: Any) -> None:
    body = call_body()
    body["contactId"] = contact_id

    response = api.post("/callLog", body)

    assert response.json()["returnMessage"]["message"] == "Contact not found for number +14155550100"
    assert BuiltinActivity.objects.count() == 0


def test_a_skipped_call_is_logged_when_the_user_then_creates_the_contact(api: ApiClient) -> None:
    assert api.post("/callLog", call_body()).json()["successful"] is False
    created = api.post("/contact", {"phoneNumber": "+14155550100", "newContactName": "Jane Caller"}).json()
    contact_id = created["contact"]["id"]

    response = api.post("/callLog", call_body(contact_id=contact_id))

    assert response.json() == {
        "successful": True,
        "logId": str(BuiltinActivity.objects.get().pk),
        "returnMessage": CALL_LOGGED,
    }
    log = CallLog.objects.get()  # the skipped row was taken over, not duplicated
    assert log.status == "logged"
    assert log.attempts == 2
    assert (log.contact_id, log.decided_by) == (contact_id, "user")
    assert event_kinds(log) == ["requested", "prompted", "retried", "requested", "matched", "crm_logged"]


def test_a_contact_id_unknown_to_the_crm_fails_honestly(api: ApiClient, crm_user: CrmUser) -> None:
    response = api.post("/callLog", call_body(contact_id="999999"))

    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "Error creating call log",
            "messageType": "warning",
            "ttl": 5000,
            "details": [
                {
                    "title": "Details",
                    "items": [
                        {
                            "id": 1,
                            "type": "text",
                            "text": "Please check if your account has permission to CREATE logs.",
                        }
                    ],
                }
            ],
        },
    }
    log = CallLog.objects.get()
    assert (log.status, log.attempts, log.contact_id) == ("failed", 1, "999999")
    assert log.last_error
    assert BuiltinActivity.objects.count() == 0


def mutate(change):
    def build(contact_id: str) -> dict[str, Any]:
        body = call_body(contact_id=contact_id)
        change(body)
        return body

    return build


BAD_BODIES = [
    (mutate(lambda b: b.pop("logInfo")), "logInfo"),
    (mutate(lambda b: b.update(logInfo="session-1")), "logInfo"),
    (mutate(lambda b: b["logInfo"].pop("sessionId")), "logInfo.sessionId"),
    (mutate(lambda b: b["logInfo"].update(sessionId="")), "logInfo.sessionId"),
    (mutate(lambda b: b["logInfo"].update(sessionId={"id": 1})), "logInfo.sessionId"),
    (mutate(lambda b: b["logInfo"]["from"].update(phoneNumber="not a number")), "logInfo.from.phoneNumber"),
    (mutate(lambda b: b["logInfo"].pop("from")), "logInfo.from.phoneNumber"),
    (mutate(lambda b: b["logInfo"].update(direction="Sideways")), "logInfo.direction"),
    (mutate(lambda b: b["logInfo"].update(duration="long")), "logInfo.duration"),
    (mutate(lambda b: b["logInfo"].update(duration=-1)), "logInfo.duration"),
    (mutate(lambda b: b["logInfo"].update(startTime="yesterday")), "logInfo.startTime"),
    (mutate(lambda b: b.update(note=["a"])), "note"),
    (mutate(lambda b: b.update(contactId={"id": 1})), "contactId"),
    (mutate(lambda b: b.update(additionalSubmission="x")), "additionalSubmission"),
]


@pytest.mark.parametrize(("build", "field"), BAD_BODIES, ids=[field for _, field in BAD_BODIES])
def test_a_bad_body_is_a_400_and_nothing_is_written(
    api: ApiClient, contact_id: str, build, field: str
) -> None:
    response = api.post("/callLog", build(contact_id))

    assert_bad_input(response, field)
    assert CallLog.objects.count() == 0
    assert LogEvent.objects.count() == 0
    assert BuiltinActivity.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"logInfo": ', "[]", '"text"', ""])
def test_a_body_that_is_not_a_json_object_is_a_400(api: ApiClient, raw: str) -> None:
    response = api.post("/callLog", raw=raw)

    assert_bad_input(response, "body" if raw else "logInfo")
    assert CallLog.objects.count() == 0
    assert BuiltinActivity.objects.count() == 0


def test_a_pending_duration_from_server_side_logging_is_accepted(api: ApiClient, contact_id: str) -> None:
    body = call_body(contact_id=contact_id)
    body["logInfo"]["duration"] = "pending"

    assert api.post("/callLog", body).json()["successful"] is True
    assert CallLog.objects.get().duration_seconds is None


# --- GET /callLog ----------------------------------------------------------------------


def test_lookup_tells_logged_from_unlogged_sessions_in_request_order(api: ApiClient, contact_id: str) -> None:
    first = api.post("/callLog", call_body(session_id="s1", contact_id=contact_id)).json()["logId"]
    third = api.post("/callLog", call_body(session_id="s3", contact_id=contact_id)).json()["logId"]

    response = api.get("/callLog", {"sessionIds": "s3,s2,s1"})

    assert response.status_code == 200
    body = response.json()
    assert body["successful"] is True
    assert body["logs"] == [
        {"sessionId": "s3", "matched": True, "logId": third},
        {"sessionId": "s2", "matched": False},
        {"sessionId": "s1", "matched": True, "logId": first},
    ]
    assert body.get("returnMessage") is None


def test_lookup_reads_only_the_first_five_session_ids(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(session_id="s6", contact_id=contact_id))

    body = api.get("/callLog", {"sessionIds": "s1,s2,s3,s4,s5,s6"}).json()

    assert [entry["sessionId"] for entry in body["logs"]] == ["s1", "s2", "s3", "s4", "s5"]
    assert not any(entry["matched"] for entry in body["logs"])


def test_lookup_with_details_returns_what_the_crm_holds(api: ApiClient, contact_id: str) -> None:
    log_id = api.post("/callLog", call_body(contact_id=contact_id)).json()["logId"]

    body = api.get("/callLog", {"sessionIds": "session-1,session-2", "requireDetails": "true"}).json()

    assert body["successful"] is True
    logged, unlogged = body["logs"]
    assert unlogged == {"sessionId": "session-2", "matched": False}
    assert (logged["sessionId"], logged["matched"], logged["logId"]) == ("session-1", True, log_id)
    data = logged["logData"]
    assert data["fullBody"] == DEFAULT_BODY
    assert data["note"] == "Asked about pricing"
    assert data["subject"] == "Inbound call from Jane"
    assert data["contactName"] == "Jane Caller"
    assert data["fullLogResponse"]["id"] == log_id


def test_lookup_without_details_carries_no_log_data(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    body = api.get("/callLog", {"sessionIds": "session-1", "requireDetails": "false"}).json()

    assert "logData" not in body["logs"][0]


def test_lookup_does_not_count_a_skipped_call_as_logged(api: ApiClient, crm_user: CrmUser) -> None:
    api.post("/callLog", call_body())

    assert api.get("/callLog", {"sessionIds": "session-1"}).json()["logs"] == [
        {"sessionId": "session-1", "matched": False}
    ]


def test_lookup_sees_only_the_user_s_own_logs(api: ApiClient, login, contact_id: str) -> None:
    _, bob = login("bob")
    api.post("/callLog", call_body(contact_id=contact_id))

    assert bob.get("/callLog", {"sessionIds": "session-1"}).json()["logs"] == [
        {"sessionId": "session-1", "matched": False}
    ]


def test_lookup_matches_the_extension_identity(api: ApiClient, contact_id: str) -> None:
    log_id = api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-a")).json()[
        "logId"
    ]

    mine = api.get("/callLog", {"sessionIds": "session-1", "hashedExtensionId": "hash-a"}).json()
    theirs = api.get("/callLog", {"sessionIds": "session-1", "hashedExtensionId": "hash-b"}).json()

    assert mine["logs"] == [{"sessionId": "session-1", "matched": True, "logId": log_id}]
    assert theirs["logs"] == [{"sessionId": "session-1", "matched": False}]


@pytest.mark.parametrize("query", [{}, {"sessionIds": ""}, {"sessionIds": " , "}])
def test_lookup_without_session_ids_is_a_400(api: ApiClient, query: dict[str, str]) -> None:
    assert_bad_input(api.get("/callLog", query), "sessionIds")


# --- PATCH /callLog --------------------------------------------------------------------


def test_update_replaces_the_note_in_the_crm(api: ApiClient, contact_id: str) -> None:
    log_id = api.post("/callLog", call_body(contact_id=contact_id)).json()["logId"]

    response = api.patch("/callLog", {"sessionId": "session-1", "note": "Call back on Friday"})

    assert response.status_code == 200
    assert response.json() == {
        "successful": True,
        "logId": log_id,
        "updatedNote": "Call back on Friday",
        "returnMessage": CALL_UPDATED,
    }
    activity = BuiltinActivity.objects.get()
    assert activity.note == "Call back on Friday"
    assert activity.body == DEFAULT_BODY.replace("Asked about pricing", "Call back on Friday")
    assert event_kinds(CallLog.objects.get())[-1] == "crm_updated"


def test_update_replaces_summary_duration_and_result_in_place(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    response = api.patch(
        "/callLog", {"sessionId": "session-1", "subject": "Follow-up", "duration": 125, "result": "Missed"}
    )

    assert response.json()["successful"] is True
    activity = BuiltinActivity.objects.get()
    assert activity.subject == "Follow-up"
    assert activity.note == "Asked about pricing"
    assert activity.body == (
        "- Note: Asked about pricing\n"
        "- Summary: Follow-up\n"
        "- Date/Time: 2026-11-26 10:00:00 AM\n"
        "- Duration: 2 minutes, 5 seconds\n"
        "- Result: Missed\n"
    )
    log = CallLog.objects.get()
    assert (log.duration_seconds, log.result, log.status) == (125, "Missed", "logged")


def test_update_appends_a_recording_link(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    api.patch("/callLog", {"sessionId": "session-1", "recordingLink": "https://rec/9"})

    assert BuiltinActivity.objects.get().body == DEFAULT_BODY + "- Call recording link: https://rec/9\n"


def test_update_of_an_unknown_session_is_not_successful(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    response = api.patch("/callLog", {"sessionId": "session-2", "note": "x"})

    assert response.status_code == 200
    assert response.json() == {"successful": False}
    assert BuiltinActivity.objects.get().note == "Asked about pricing"


def test_update_of_a_skipped_session_is_not_successful(api: ApiClient) -> None:
    api.post("/callLog", call_body())

    assert api.patch("/callLog", {"sessionId": "session-1", "note": "x"}).json() == {"successful": False}


def test_update_of_another_user_s_log_is_not_successful(api: ApiClient, login, contact_id: str) -> None:
    _, bob = login("bob")
    api.post("/callLog", call_body(contact_id=contact_id))

    assert bob.patch("/callLog", {"sessionId": "session-1", "note": "hijack"}).json() == {"successful": False}
    assert BuiltinActivity.objects.get().note == "Asked about pricing"


def test_update_finds_the_log_of_the_given_extension(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-a"))
    b_id = api.post("/callLog", call_body(contact_id=contact_id, hashedExtensionId="hash-b")).json()["logId"]

    response = api.patch("/callLog", {"sessionId": "session-1", "hashedExtensionId": "hash-b", "note": "B"})

    assert response.json()["logId"] == b_id
    assert dict(BuiltinActivity.objects.values_list("pk", "note")) == {
        int(b_id): "B",
        int(b_id) - 1: "Asked about pricing",
    }


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"note": "x"}, "sessionId"),
        ({"sessionId": "session-1", "duration": "long"}, "duration"),
        ({"sessionId": "session-1", "note": 5}, "note"),
        ({"sessionId": "session-1", "legs": "none"}, "legs"),
    ],
)
def test_update_with_a_bad_body_is_a_400_and_changes_nothing(
    api: ApiClient, contact_id: str, body: dict[str, Any], field: str
) -> None:
    api.post("/callLog", call_body(contact_id=contact_id))

    assert_bad_input(api.patch("/callLog", body), field)
    assert BuiltinActivity.objects.get().body == DEFAULT_BODY


# --- POST /callLog/cacheNote -----------------------------------------------------------


def test_cache_note_answers_the_peer_s_shape(api: ApiClient) -> None:
    response = api.post("/callLog/cacheNote", {"sessionId": "session-1", "note": "Remember the quote"})

    assert response.status_code == 200
    assert response.json() == {"successful": True, "returnMessage": "Note cache saved"}


def test_a_cached_note_reaches_a_server_side_call_log_without_a_note(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog/cacheNote", {"sessionId": "session-1", "note": "Remember the quote"})

    response = api.post("/callLog", call_body(contact_id=contact_id, note=""), headers={"user-agent": "SSCL"})

    assert response.json()["successful"] is True
    activity = BuiltinActivity.objects.get()
    assert activity.note == "Remember the quote"
    assert activity.body.startswith("- Note: Remember the quote\n- Summary: ")


def test_a_cached_note_does_not_reach_a_client_call_log(api: ApiClient, contact_id: str) -> None:
    api.post("/callLog/cacheNote", {"sessionId": "session-1", "note": "Remember the quote"})

    api.post("/callLog", call_body(contact_id=contact_id, note=""))

    assert BuiltinActivity.objects.get().note == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [({"note": "n"}, "sessionId"), ({"sessionId": "s"}, "note"), ({"sessionId": "s", "note": 1}, "note")],
)
def test_cache_note_with_a_bad_body_is_a_400(api: ApiClient, body: dict[str, Any], field: str) -> None:
    assert_bad_input(api.post("/callLog/cacheNote", body), field)
