"""Every log against a placeholder contact is marked, whoever created it and whenever.

The CRM returns an earlier placeholder as any other contact, so a second call from the
number is a plain match to the CRM: the registry says it is a placeholder.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from connector.models import CrmUser
from logs.choices import DecidedBy
from logs.models import CallLog, MessageLog
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory
from tests.logs.factories import AccountFactory, PlaceholderContactFactory
from tests.logs.test_export import export

UNKNOWN = "+14155550199"


@pytest.fixture
def creates_placeholders(db) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    rules_cache_clear()


def message_body(*, message_id: int, phone: str, contact_id: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {
        "logInfo": {
            "messages": [{"id": message_id, "type": "SMS", "direction": "Inbound", "subject": "hi"}],
            "correspondents": [{"phoneNumber": phone}],
            "conversationLogId": f"conv-{message_id}",
        },
    }
    if contact_id is not None:
        body["contactId"] = contact_id
    return body


def test_a_second_call_to_a_rule_placeholder_is_marked(
    api: ApiClient, creates_placeholders: None, auditor_client: Client
) -> None:
    for session in ("s-1", "s-2"):
        assert api.post("/callLog", call_body(session_id=session, phone=UNKNOWN)).json()["successful"]

    placeholder = PlaceholderContact.objects.get()
    first, second = CallLog.objects.order_by("id")
    for log in (first, second):
        assert (log.contact_is_placeholder, log.placeholder_id) == (True, placeholder.pk)
        assert log.contact_id == placeholder.contact_id
    assert second.decision["placeholderId"] == placeholder.pk
    _, rows = export(auditor_client, "logs_calllog")
    assert {row["session_id"]: row["contact_is_placeholder"] for row in rows} == {"s-1": "1", "s-2": "1"}
    _, rule_made = export(auditor_client, "logs_calllog", {"placeholder": DecidedBy.RULE.value})
    assert len(rule_made) == 2


def test_a_message_to_an_existing_placeholder_is_marked(api: ApiClient, creates_placeholders: None) -> None:
    api.post("/callLog", call_body(phone=UNKNOWN))
    assert api.post("/messageLog", message_body(message_id=1, phone=UNKNOWN)).json()["successful"]

    message = MessageLog.objects.get()
    assert message.contact_is_placeholder
    assert message.placeholder_id == PlaceholderContact.objects.get().pk


def test_a_placeholder_another_user_of_the_account_created_is_marked(
    api: ApiClient,
    crm_user: CrmUser,
    login: Callable[..., tuple[CrmUser, ApiClient]],
    creates_placeholders: None,
) -> None:
    account = AccountFactory()
    bob, bob_api = login("bob")
    CrmUser.objects.filter(pk__in=[crm_user.pk, bob.pk]).update(rc_account_id=account.rc_account_id)
    rules_cache_clear()
    api.post("/callLog", call_body(session_id="s-alice", phone=UNKNOWN))
    placeholder = PlaceholderContact.objects.get()
    # Bob's built-in CRM is Alice's (one database): his lookup finds her placeholder.
    assert bob_api.post("/callLog", call_body(session_id="s-bob", phone=UNKNOWN)).json()["successful"]

    log = CallLog.objects.get(session_id="s-bob")
    assert (log.contact_is_placeholder, log.placeholder_id) == (True, placeholder.pk)


def test_a_manual_log_against_create_new_contact_is_marked(api: ApiClient) -> None:
    created = api.post("/contact", {"phoneNumber": UNKNOWN, "newContactName": "Jane Roe"}).json()
    contact_id = created["contact"]["id"]

    assert api.post("/callLog", call_body(phone=UNKNOWN, contact_id=contact_id)).json()["successful"]
    assert api.post("/messageLog", message_body(message_id=2, phone=UNKNOWN, contact_id=contact_id)).json()[
        "successful"
    ]

    placeholder = PlaceholderContact.objects.get(decided_by=DecidedBy.USER)
    for log in (CallLog.objects.get(), MessageLog.objects.get()):
        assert (log.contact_is_placeholder, log.placeholder_id) == (True, placeholder.pk)


def test_a_matched_contact_that_is_no_placeholder_is_not_marked(
    api: ApiClient, creates_placeholders: None
) -> None:
    BuiltinContactFactory(phone_numbers=[UNKNOWN])

    api.post("/callLog", call_body(phone=UNKNOWN))

    log = CallLog.objects.get()
    assert (log.contact_is_placeholder, log.placeholder_id) == (False, None)


def test_a_placeholder_of_another_scope_does_not_mark(api: ApiClient, creates_placeholders: None) -> None:
    contact = BuiltinContactFactory(phone_numbers=[UNKNOWN])
    # The same contact id registered by a user of another account (another CRM, say).
    PlaceholderContactFactory(phone_number=UNKNOWN, contact_id=str(contact.pk))

    api.post("/callLog", call_body(phone=UNKNOWN))

    assert CallLog.objects.get().contact_is_placeholder is False


def test_a_given_contact_registered_in_another_scope_does_not_mark(api: ApiClient) -> None:
    # The manual flow reads the registry in the same scope as the automatic one: the
    # user's own and the user's account's placeholders, on the user's platform.
    contact = BuiltinContactFactory(phone_numbers=[UNKNOWN])
    PlaceholderContactFactory(phone_number=UNKNOWN, contact_id=str(contact.pk))

    api.post("/callLog", call_body(phone=UNKNOWN, contact_id=str(contact.pk)))

    assert CallLog.objects.get().contact_is_placeholder is False
