"""The automatic flow of POST /callLog and POST /messageLog when no contactId is given."""

from __future__ import annotations

from typing import Any

import pytest

from connector.models import BuiltinActivity, BuiltinContact
from logs.choices import EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from rules.choices import DecidedBy, PlaceholderStatus
from rules.models import Account, PlaceholderContact, PlaceholderNameTemplate, RuleSetting
from rules.services import account_ensure, caller_id_name_usable, rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

UNKNOWN = "+14155550199"


def set_rules(account: Account | None = None, **values: Any) -> None:
    """Admin rows for the given rule keys (mandated: users cannot change them)."""
    for key, value in values.items():
        RuleSetting.objects.update_or_create(
            account=account, key=key, defaults={"value": value, "customizable": False}
        )
    rules_cache_clear()


def auto_body(session_id: str, *, phone: str = UNKNOWN, caller_name: str = "Jane Caller") -> dict[str, Any]:
    body = call_body(session_id=session_id, phone=phone)
    body["logInfo"]["from"]["name"] = caller_name
    return body


def test_default_rule_leaves_unknown_callers_to_the_user(api: ApiClient) -> None:
    response = api.post("/callLog", auto_body("s-1"))

    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": f"Contact not found for number {UNKNOWN}",
            "messageType": "warning",
            "ttl": 5000,
        },
    }
    log = CallLog.objects.get()
    assert log.status == LogStatus.SKIPPED
    assert log.decided_by == DecidedBy.RULE
    assert log.decision["rules"]["unknownContactAction"] == "prompt"
    assert BuiltinContact.objects.count() == 0
    assert list(LogEvent.objects.values_list("kind", flat=True)) == [EventKind.REQUESTED, EventKind.PROMPTED]


def test_placeholder_named_from_caller_id(api: ApiClient) -> None:
    set_rules(unknownContactAction="createPlaceholder")

    response = api.post("/callLog", auto_body("s-1", caller_name="Jane Doe"))

    assert response.status_code == 200
    assert response.json()["successful"] is True
    contact = BuiltinContact.objects.get()
    assert contact.name == "Jane Doe"
    assert contact.contact_type == "Contact"
    log = CallLog.objects.get()
    assert (log.status, log.contact_id) == (LogStatus.LOGGED, str(contact.pk))
    assert log.contact_is_placeholder is True
    assert log.placeholder.decided_by == DecidedBy.RULE
    assert BuiltinActivity.objects.get().contact_id == contact.pk
    kinds = list(LogEvent.objects.order_by("id").values_list("kind", flat=True))
    assert kinds == [EventKind.REQUESTED, EventKind.PLACEHOLDER_CREATED, EventKind.CRM_LOGGED]


@pytest.mark.parametrize(
    "caller_name", ["WIRELESS CALLER", "UNKNOWN", "Anonymous", "SAN FRANCISCO CA", "+1 415 555 0199", ""]
)
def test_generic_caller_id_falls_back_to_the_admin_template(api: ApiClient, caller_name: str) -> None:
    set_rules(unknownContactAction="createPlaceholder", defaultPlaceholderName="Caller {last4}")

    api.post("/callLog", auto_body("s-1", caller_name=caller_name))

    assert BuiltinContact.objects.get().name == "Caller 0199"
    assert CallLog.objects.get().decision["callerIdRejected"]


def test_default_only_ignores_caller_id(api: ApiClient) -> None:
    set_rules(
        unknownContactAction="createPlaceholder",
        placeholderNameSource="defaultOnly",
        defaultPlaceholderName="Unknown {phoneNumber}",
    )

    api.post("/callLog", auto_body("s-1", caller_name="Jane Doe"))

    assert BuiltinContact.objects.get().name == f"Unknown {UNKNOWN}"


def test_per_contact_type_name_and_type(api: ApiClient) -> None:
    set_rules(
        unknownContactAction="createPlaceholder",
        placeholderContactType="Lead",
        placeholderNameSource="defaultOnly",
    )
    PlaceholderNameTemplate.objects.create(contact_type="Lead", template="New lead {last4}")
    rules_cache_clear()

    api.post("/callLog", auto_body("s-1"))

    contact = BuiltinContact.objects.get()
    assert (contact.name, contact.contact_type) == ("New lead 0199", "Lead")


def test_account_rules_override_site_and_user_cannot_turn_mandate_off(api: ApiClient, crm_user) -> None:
    account = account_ensure(rc_account_id="37439510")
    crm_user.rc_account_id = account.rc_account_id
    crm_user.save()
    set_rules(unknownContactAction="prompt")  # site-wide
    set_rules(account, unknownContactAction="createPlaceholder", defaultPlaceholderName="Acct {last4}")
    # The user tries to turn the automatic placeholder off.
    saved = api.post("/user/settings", {"userSettings": {"unknownContactAction": {"value": "prompt"}}})
    assert saved.status_code == 200

    api.post("/callLog", auto_body("s-1", caller_name=""))

    assert BuiltinContact.objects.get().name == "Acct 0199"
    settings = api.get("/user/settings").json()
    assert settings["unknownContactAction"]["value"] == "createPlaceholder"
    assert settings["unknownContactAction"]["customizable"] is False


def test_user_value_counts_where_the_admin_left_it_customizable(api: ApiClient) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="prompt", customizable=True)
    rules_cache_clear()
    api.post("/user/settings", {"userSettings": {"unknownContactAction": {"value": "createPlaceholder"}}})

    response = api.post("/callLog", auto_body("s-1"))

    assert response.json()["successful"] is True
    assert CallLog.objects.get().decision["rules"]["sources"]["unknownContactAction"] == "user"


def test_known_contact_is_matched_without_a_placeholder(api: ApiClient) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    known = BuiltinContactFactory(name="Known", phone_numbers=[UNKNOWN])

    response = api.post("/callLog", auto_body("s-1"))

    assert response.json()["successful"] is True
    log = CallLog.objects.get()
    assert (log.contact_id, log.contact_is_placeholder) == (str(known.pk), False)
    assert PlaceholderContact.objects.count() == 0


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("alphabetical", "Alice"), ("earliestCreated", "Zed")],
)
def test_multiple_match_policy_chooses(api: ApiClient, policy: str, expected: str) -> None:
    set_rules(multipleMatchPolicy=policy)
    BuiltinContactFactory(name="Zed", phone_numbers=[UNKNOWN])
    BuiltinContactFactory(name="Alice", phone_numbers=[UNKNOWN])

    api.post("/callLog", auto_body("s-1"))

    assert CallLog.objects.get().contact_name == expected


def test_multiple_match_policy_that_cannot_decide_prompts_and_says_why(api: ApiClient) -> None:
    set_rules(multipleMatchPolicy="lastUpdated")  # neither contact has any activity
    BuiltinContactFactory(name="Zed", phone_numbers=[UNKNOWN])
    BuiltinContactFactory(name="Alice", phone_numbers=[UNKNOWN])

    body = api.post("/callLog", auto_body("s-1")).json()

    assert body["successful"] is False
    assert body["returnMessage"]["message"] == f"Multiple contacts found for number {UNKNOWN}"
    assert "mostRecentActivityDate" in body["returnMessage"]["details"][0]["items"][0]["text"]
    assert CallLog.objects.get().status == LogStatus.SKIPPED


def test_repeated_calls_reuse_the_placeholder(api: ApiClient) -> None:
    set_rules(unknownContactAction="createPlaceholder")

    for session in ("s-1", "s-2", "s-3"):
        assert api.post("/callLog", auto_body(session)).json()["successful"] is True

    assert BuiltinContact.objects.count() == 1
    assert PlaceholderContact.objects.get().status == PlaceholderStatus.READY
    assert set(CallLog.objects.values_list("contact_id", flat=True)) == {str(BuiltinContact.objects.get().pk)}


def test_message_log_uses_the_same_rules(api: ApiClient) -> None:
    set_rules(unknownContactAction="createPlaceholder", placeholderNameSource="defaultOnly")
    body = {
        "logInfo": {
            "messages": [
                {
                    "id": 7,
                    "type": "SMS",
                    "direction": "Inbound",
                    "subject": "hi",
                    "from": {"phoneNumber": UNKNOWN},
                },
            ],
            "correspondents": [{"phoneNumber": UNKNOWN}],
            "conversationLogId": "conv-1",
        }
    }

    response = api.post("/messageLog", body)

    assert response.json()["successful"] is True
    row = MessageLog.objects.get()
    assert row.contact_is_placeholder is True
    assert BuiltinContact.objects.get().name == "Unknown caller"


def test_manual_flow_is_recorded_as_a_placeholder_by_hand(api: ApiClient) -> None:
    created = api.post("/contact", {"phoneNumber": UNKNOWN, "newContactName": "Walk-in"}).json()["contact"]

    api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN, contact_id=created["id"]))

    placeholder = PlaceholderContact.objects.get()
    assert placeholder.decided_by == DecidedBy.USER
    log = CallLog.objects.get()
    assert (log.decided_by, log.contact_is_placeholder, log.placeholder_id) == (
        DecidedBy.USER,
        True,
        placeholder.pk,
    )


@pytest.mark.parametrize(
    ("name", "usable"),
    [
        ("Jane Doe", True),
        ("WIRELESS CALLER", False),
        ("wireless caller", False),
        ("SAN JOSE CA", False),
        ("San Jose", True),
        ("(415) 555-0199", False),
        ("  ", False),
        ("O'Brien Plumbing", True),
    ],
)
def test_caller_id_name_usable(name: str, usable: bool) -> None:
    assert caller_id_name_usable(name, phone_number=UNKNOWN)[0] is usable
