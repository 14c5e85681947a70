"""POST /messageLog: SMS conversations logged into the CRM (appconnect-api.md §2.15)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from logs.models import LogEvent, MessageLog
from tests.conftest import ApiClient
from tests.factories import BuiltinContactFactory

MESSAGE_LOGGED = {"message": "Message logged", "messageType": "success", "ttl": 1000}
MESSAGE_UPDATED = {"message": "Message log updated", "messageType": "success", "ttl": 1000}
JANE = {"phoneNumber": "+14155550100", "name": "Jane Caller"}
AGENT = {"phoneNumber": "+16505550100", "name": "Agent Smith", "extensionNumber": "101"}


def sms(message_id: Any, text: str, minute: int, *, inbound: bool = True) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "SMS",
        "direction": "Inbound" if inbound else "Outbound",
        "subject": text,
        "creationTime": f"2026-11-26T10:{minute:02d}:00.000Z",
        "from": JANE if inbound else AGENT,
        "to": [AGENT if inbound else JANE],
        "conversationId": 777,
        "attachments": [],
    }


OLDER = sms(1001, "Can we talk tomorrow?", 0)
NEWER = sms(1002, "Sure, 10am works", 5, inbound=False)


def message_body(
    messages: list[dict[str, Any]],
    *,
    contact_id: str | None,
    correspondents: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A POST /messageLog body as the client sends it (messages newest first)."""
    body: dict[str, Any] = {
        "logInfo": {
            "messages": copy.deepcopy(messages),
            "correspondents": correspondents or [{"phoneNumber": "+14155550100", "name": "Jane Caller"}],
            "conversationId": "777",
            "conversationLogId": "777-2026-11-26",
        },
        "additionalSubmission": {},
    }
    if contact_id is not None:
        body.update(contactId=contact_id, contactName="Jane Caller", contactType="Contact")
    return body


@pytest.fixture
def contact(db) -> BuiltinContact:
    return BuiltinContactFactory(name="Jane Caller", phone_numbers=["+14155550100"])


@pytest.fixture
def contact_id(contact: BuiltinContact) -> str:
    return str(contact.pk)


def assert_bad_input(response, field: str) -> None:
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["successful"] is False
    assert any(key == field or key.startswith(f"{field}.") for key in body["errors"]), body["errors"]
    assert not any("non_field_errors" in key for key in body["errors"]), body["errors"]
    assert body["returnMessage"]["messageType"] == "warning"


def test_messages_sent_newest_first_are_logged_oldest_first_into_one_activity(
    api: ApiClient, crm_user: CrmUser, contact_id: str
) -> None:
    response = api.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id))

    assert response.status_code == 200
    # The last CRM call added the newer message to the activity the older one created.
    assert response.json() == {
        "successful": True,
        "logIds": ["1001", "1002"],
        "returnMessage": MESSAGE_UPDATED,
    }
    activity = BuiltinActivity.objects.get()
    assert activity.kind == "message"
    assert activity.contact_id == int(contact_id)
    assert activity.owner.name == "alice"
    assert activity.subject == "SMS conversation with Jane Caller"
    lines = activity.body.splitlines()
    assert len(lines) == 2
    assert "Can we talk tomorrow?" in lines[0]
    assert "Sure, 10am works" in lines[1]


def test_each_logged_message_leaves_a_row_and_its_trail(
    api: ApiClient, crm_user: CrmUser, contact_id: str
) -> None:
    api.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id))

    activity = BuiltinActivity.objects.get()
    rows = {row.message_id: row for row in MessageLog.objects.all()}
    assert set(rows) == {"1001", "1002"}
    for message_id, direction in (("1001", "Inbound"), ("1002", "Outbound")):
        row = rows[message_id]
        assert row.user == crm_user
        assert row.platform == "builtin"
        assert (row.status, row.attempts, row.last_error) == ("logged", 1, "")
        assert row.crm_log_id == str(activity.pk)
        assert (row.contact_id, row.contact_name, row.decided_by) == (contact_id, "Jane Caller", "user")
        assert row.conversation_id == "777"
        assert row.conversation_log_id == "777-2026-11-26"
        assert (row.message_type, row.direction, row.phone_number) == ("SMS", direction, "+14155550100")
        kinds = list(
            LogEvent.objects.filter(message_log=row)
            .order_by("created_at", "id")
            .values_list("kind", flat=True)
        )
        assert kinds == ["requested", "matched", "crm_logged"]


def test_a_single_new_message_creates_the_activity(api: ApiClient, contact_id: str) -> None:
    response = api.post("/messageLog", message_body([OLDER], contact_id=contact_id))

    assert response.json() == {"successful": True, "logIds": ["1001"], "returnMessage": MESSAGE_LOGGED}


def test_resending_logged_messages_logs_nothing(api: ApiClient, contact_id: str) -> None:
    api.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id))
    body_before = BuiltinActivity.objects.get().body

    response = api.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id))

    assert response.status_code == 200
    assert response.json() == {"successful": True, "logIds": [], "returnMessage": None}
    assert BuiltinActivity.objects.get().body == body_before
    assert MessageLog.objects.count() == 2


def test_a_later_message_of_the_same_day_joins_the_same_activity(api: ApiClient, contact_id: str) -> None:
    api.post("/messageLog", message_body([OLDER], contact_id=contact_id))
    latest = sms("1003", "See you", 9)

    response = api.post("/messageLog", message_body([latest, NEWER, OLDER], contact_id=contact_id))

    assert response.json() == {
        "successful": True,
        "logIds": ["1002", "1003"],
        "returnMessage": MESSAGE_UPDATED,
    }
    activity = BuiltinActivity.objects.get()
    assert [line.rsplit(": ", 1)[1] for line in activity.body.splitlines()] == [
        "Can we talk tomorrow?",
        "Sure, 10am works",
        "See you",
    ]
    assert set(MessageLog.objects.values_list("crm_log_id", flat=True)) == {str(activity.pk)}


def test_another_day_of_the_conversation_gets_its_own_activity(api: ApiClient, contact_id: str) -> None:
    api.post("/messageLog", message_body([OLDER], contact_id=contact_id))
    next_day = message_body([sms("2001", "Running late", 0)], contact_id=contact_id)
    next_day["logInfo"]["conversationLogId"] = "777-2026-11-27"

    response = api.post("/messageLog", next_day)

    assert response.json() == {"successful": True, "logIds": ["2001"], "returnMessage": MESSAGE_LOGGED}
    assert BuiltinActivity.objects.count() == 2


def test_the_same_messages_are_logged_once_per_user(api: ApiClient, login, contact_id: str) -> None:
    _, bob = login("bob")

    alice = api.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id)).json()
    bobs = bob.post("/messageLog", message_body([NEWER, OLDER], contact_id=contact_id)).json()

    assert alice["logIds"] == bobs["logIds"] == ["1001", "1002"]
    assert sorted(BuiltinActivity.objects.values_list("owner__name", flat=True)) == ["alice", "bob"]


def test_no_messages_is_a_warning(api: ApiClient, contact_id: str) -> None:
    response = api.post("/messageLog", message_body([], contact_id=contact_id))

    assert response.status_code == 200
    assert response.json() == {
        "successful": False,
        "returnMessage": {"message": "No message to log.", "messageType": "warning", "ttl": 3000},
    }
    assert MessageLog.objects.count() == 0
    assert BuiltinActivity.objects.count() == 0


def test_without_a_contact_for_an_unknown_number_nothing_is_logged(api: ApiClient, crm_user: CrmUser) -> None:
    response = api.post("/messageLog", message_body([NEWER, OLDER], contact_id=None))

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
    assert BuiltinContact.objects.count() == 0


def test_group_sms_ids_are_suffixed_with_the_contact_id(api: ApiClient, contact_id: str) -> None:
    group = [
        {"phoneNumber": "+14155550100", "name": "Jane Caller"},
        {"phoneNumber": "+14155550111", "name": "John Doe"},
    ]

    response = api.post(
        "/messageLog", message_body([NEWER, OLDER], contact_id=contact_id, correspondents=group)
    )

    assert response.json() == {
        "successful": True,
        "logIds": [f"1001-{contact_id}", f"1002-{contact_id}"],
        "returnMessage": MESSAGE_UPDATED,
    }
    rows = MessageLog.objects.order_by("message_id")
    assert [row.message_id for row in rows] == [f"1001-{contact_id}", f"1002-{contact_id}"]
    assert {row.conversation_log_id for row in rows} == {f"777-2026-11-26-{contact_id}"}
    assert {row.conversation_id for row in rows} == {f"777-{contact_id}"}
    assert BuiltinActivity.objects.count() == 1


def test_group_sms_is_logged_once_per_contact(api: ApiClient, contact_id: str) -> None:
    john = BuiltinContactFactory(name="John Doe", phone_numbers=["+14155550111"])
    group = [
        {"phoneNumber": "+14155550100", "name": "Jane Caller"},
        {"phoneNumber": "+14155550111", "name": "John Doe"},
    ]
    api.post("/messageLog", message_body([OLDER], contact_id=contact_id, correspondents=group))
    for_john = message_body([OLDER], contact_id=str(john.pk), correspondents=list(reversed(group)))

    response = api.post("/messageLog", for_john)

    assert response.json()["logIds"] == [f"1001-{john.pk}"]
    assert BuiltinActivity.objects.count() == 2


def test_an_mms_image_is_passed_on_as_a_media_reader_link(api: ApiClient, contact_id: str) -> None:
    mms = sms(1005, "photo", 1)
    mms["attachments"] = [
        {"id": 1, "type": "MmsAttachment", "uri": "https://media/1?x=y", "contentType": "image/png"}
    ]

    assert api.post("/messageLog", message_body([mms], contact_id=contact_id)).json()["successful"] is True

    assert (
        "https://ringcentral.github.io/ringcentral-media-reader/?media=https%3A%2F%2Fmedia%2F1%3Fx%3Dy"
        in BuiltinActivity.objects.get().body
    )


def mutate(change):
    def build(contact_id: str) -> dict[str, Any]:
        body = message_body([NEWER, OLDER], contact_id=contact_id)
        change(body)
        return body

    return build


BAD_BODIES = [
    (mutate(lambda b: b.pop("logInfo")), "logInfo"),
    (mutate(lambda b: b.update(logInfo=[])), "logInfo"),
    (mutate(lambda b: b["logInfo"].pop("messages")), "logInfo.messages"),
    (mutate(lambda b: b["logInfo"].update(messages="hi")), "logInfo.messages"),
    (mutate(lambda b: b["logInfo"]["messages"][0].pop("id")), "logInfo.messages.0.id"),
    (
        mutate(lambda b: b["logInfo"]["messages"][1].update(direction="Sideways")),
        "logInfo.messages.1.direction",
    ),
    (mutate(lambda b: b["logInfo"].pop("correspondents")), "logInfo.correspondents"),
    (mutate(lambda b: b["logInfo"].update(correspondents=[])), "logInfo.correspondents"),
    (
        mutate(lambda b: b["logInfo"].update(correspondents=[{"phoneNumber": "call me"}])),
        "logInfo.correspondents.0.phoneNumber",
    ),
    (
        mutate(lambda b: b["logInfo"].update(correspondents=[{"name": "Jane"}])),
        "logInfo.correspondents.0.phoneNumber",
    ),
    (mutate(lambda b: b.update(contactId=["1"])), "contactId"),
    (mutate(lambda b: b.update(additionalSubmission=3)), "additionalSubmission"),
]


@pytest.mark.parametrize(("build", "field"), BAD_BODIES, ids=[field for _, field in BAD_BODIES])
def test_a_bad_body_is_a_400_and_nothing_is_written(
    api: ApiClient, contact_id: str, build, field: str
) -> None:
    response = api.post("/messageLog", build(contact_id))

    assert_bad_input(response, field)
    assert MessageLog.objects.count() == 0
    assert LogEvent.objects.count() == 0
    assert BuiltinActivity.objects.count() == 0


@pytest.mark.parametrize("raw", ['{"logInfo": {', "[1]", "null"])
def test_a_body_that_is_not_a_json_object_is_a_400(api: ApiClient, raw: str) -> None:
    assert_bad_input(api.post("/messageLog", raw=raw), "body")
    assert MessageLog.objects.count() == 0


def test_a_fax_download_link_is_built_but_the_rc_token_stays_out_of_the_history(
    api: ApiClient, contact_id: str
) -> None:
    fax = sms(1006, "", 2)
    fax["type"] = "Fax"
    fax["attachments"] = [
        {"id": 9, "type": "RenderedDocument", "uri": "https://rc/fax/9", "link": "https://app/fax/9"}
    ]
    body = message_body([fax], contact_id=contact_id)
    body["logInfo"]["rcAccessToken"] = "rc-secret-token"

    assert api.post("/messageLog", body).json()["successful"] is True

    # The CRM gets the links App Connect builds (the download link carries the token)...
    activity_body = BuiltinActivity.objects.get().body
    assert "https://app/fax/9" in activity_body
    assert "https://rc/fax/9?access_token=rc-secret-token" in activity_body
    # ...but the log history keeps no credential.
    row = MessageLog.objects.get()
    assert row.message_type == "Fax"
    assert "rc-secret-token" not in str(row.payload)
    assert "rc-secret-token" not in str(list(LogEvent.objects.values_list("detail", flat=True)))


# --- shared SMS (a conversation owned by a call queue or a user) -----------------------


def shared_body(messages: list[dict[str, Any]], contact_id: str) -> dict[str, Any]:
    body = message_body(messages, contact_id=contact_id)
    body["logInfo"]["owner"] = {"name": "Support Queue"}
    return body


def test_a_shared_conversation_is_one_activity_keyed_by_its_conversation_log_id(
    api: ApiClient, contact_id: str
) -> None:
    response = api.post("/messageLog", shared_body([NEWER, OLDER], contact_id))

    assert response.json() == {
        "successful": True,
        "logIds": ["777-2026-11-26"],
        "returnMessage": MESSAGE_LOGGED,
    }
    activity = BuiltinActivity.objects.get()
    assert activity.subject == "SMS conversation with Jane Caller"
    assert activity.body.startswith("Conversation summary\n")
    assert "Receiving call queue: Support Queue\n" in activity.body
    assert "Conversation (2 messages)\n" in activity.body
    assert activity.body.endswith("------------\nEND")
    row = MessageLog.objects.get()
    assert (row.message_id, row.status, row.crm_log_id) == ("777-2026-11-26", "logged", str(activity.pk))


def test_a_shared_conversation_is_rewritten_whole_when_it_grows(api: ApiClient, contact_id: str) -> None:
    api.post("/messageLog", shared_body([OLDER], contact_id))

    response = api.post("/messageLog", shared_body([NEWER, OLDER], contact_id))

    assert response.json() == {"successful": True, "logIds": [], "returnMessage": MESSAGE_UPDATED}
    activity = BuiltinActivity.objects.get()
    assert "Conversation (2 messages)\n" in activity.body
    assert "Sure, 10am works" in activity.body
    assert MessageLog.objects.count() == 1


@pytest.mark.parametrize("contact_id", ["", None, 0])
def test_a_falsy_contact_id_means_no_contact(api: ApiClient, crm_user: CrmUser, contact_id: Any) -> None:
    body = message_body([OLDER], contact_id="x")
    body["contactId"] = contact_id

    response = api.post("/messageLog", body)

    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "Contact not found for number +14155550100",
            "messageType": "warning",
            "ttl": 5000,
        },
    }
    assert BuiltinActivity.objects.count() == 0
