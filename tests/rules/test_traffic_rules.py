"""Rules that fit real phone traffic: which calls and messages may create a placeholder,
the numbers that never get one (block list included), every contact type, name templates."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connector.models import BuiltinContact, CrmUser
from logs.choices import EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from rules.choices import BlockedNumberKind
from rules.models import Account, BlockedNumber, PlaceholderContact, RuleSetting
from rules.parameters import template_render, template_validate
from rules.selectors import placeholder_name_preview, rule_values_get
from rules.services import (
    LogTraffic,
    account_ensure,
    blocked_number_clean,
    blocked_number_save,
    call_result_kind,
    placeholder_refusal,
    rules_cache_clear,
)
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

UNKNOWN = "+14155550199"
AGENT = "+16505550100"  # the agent's number in tests.conftest.call_body


def set_rules(account: Account | None = None, **values: Any) -> None:
    """Admin rows for the given rule keys (mandated: users cannot change them)."""
    for key, value in values.items():
        RuleSetting.objects.update_or_create(
            account=account, key=key, defaults={"value": value, "customizable": False}
        )
    rules_cache_clear()


def block(number: str, kind: str = BlockedNumberKind.NUMBER, account: Account | None = None) -> BlockedNumber:
    return blocked_number_save(entry=BlockedNumber(number=number, kind=kind, account=account))


def call(
    api: ApiClient,
    session_id: str = "s-1",
    *,
    phone: str = UNKNOWN,
    caller_name: str = "Jane Caller",
    party: dict[str, Any] | None = None,
    **info: Any,
) -> dict[str, Any]:
    """POST /callLog for an automatic call (no contact named); `info` overrides logInfo keys."""
    body = call_body(session_id=session_id, phone=phone, direction=info.pop("direction", "Inbound"))
    log_info = body["logInfo"]
    other = "from" if log_info["direction"] == "Inbound" else "to"
    log_info[other]["name"] = caller_name
    if party is not None:
        log_info[other] = party
    log_info.update(info)
    response = api.post("/callLog", body)
    assert response.status_code == 200, response.content
    return response.json()


def decision() -> dict[str, Any]:
    return CallLog.objects.get().decision


def refused(condition: str, value: Any) -> None:
    """The one call was skipped, no placeholder made, and its history says why."""
    log = CallLog.objects.get()
    assert log.status == LogStatus.SKIPPED
    assert (log.decision["placeholderRefused"], log.decision["placeholderRefusedValue"]) == (condition, value)
    assert log.decision["reason"]
    event = LogEvent.objects.get(kind=EventKind.PROMPTED)
    assert event.detail["placeholderRefused"] == condition
    assert PlaceholderContact.objects.count() == 0
    assert BuiltinContact.objects.count() == 0


@pytest.fixture(autouse=True)
def _creating(db) -> None:
    set_rules(unknownContactAction="createPlaceholder", placeholderNameSource="defaultOnly")


# --- scope by call kind ------------------------------------------------------------------------


def test_default_scope_creates_for_any_call(api: ApiClient) -> None:
    assert call(api, result="Missed", duration=0, direction="Outbound")["successful"] is True
    assert "placeholderRefused" not in decision()
    assert decision()["rules"]["placeholderCallResults"][0] == "answered"


def test_direction_left_out(api: ApiClient) -> None:
    set_rules(placeholderDirections=["inbound"])

    body = call(api, direction="Outbound")

    assert body["successful"] is False
    assert body["returnMessage"]["message"] == f"Contact not found for number {UNKNOWN}"
    refused("direction", "Outbound")
    assert call(api, "s-2", direction="Inbound")["successful"] is True


@pytest.mark.parametrize(
    ("result", "kind"),
    [
        ("Accepted", "answered"),
        ("Call connected", "answered"),
        ("Missed", "missed"),
        ("Hang Up", "missed"),
        ("hang up", "missed"),
        ("Abandoned", "missed"),
        ("Voicemail", "voicemail"),
        ("Rejected", "rejected"),
        ("Declined", "rejected"),
        ("Busy", "busy"),
        ("No Answer", "noAnswer"),
        ("Wrong Number", "failed"),
        ("Call Failed", "failed"),
        ("Unknown", "other"),
        ("", "other"),
        ("Something new", "other"),
    ],
)
def test_ringcentral_results_are_read_as_kinds(result: str, kind: str) -> None:
    assert call_result_kind(result) == kind


def test_result_left_out(api: ApiClient) -> None:
    set_rules(placeholderCallResults=["answered", "voicemail"])

    call(api, result="Missed")

    refused("callResult", "Missed")
    assert call(api, "s-2", result="Call connected")["successful"] is True
    assert call(api, "s-3", result="Voicemail")["successful"] is True


@pytest.mark.parametrize(("duration", "value"), [(3, 3), ("pending", None)])
def test_shorter_than_the_minimum_or_not_known_yet(api: ApiClient, duration: Any, value: Any) -> None:
    set_rules(placeholderMinDurationSeconds=10)

    call(api, duration=duration)

    refused("minDuration", value)


def test_at_least_the_minimum_creates(api: ApiClient) -> None:
    set_rules(placeholderMinDurationSeconds=10)

    assert call(api, duration=10)["successful"] is True


def message_body(
    *types: str, phone: str = UNKNOWN, direction: str = "Inbound", to: str = AGENT
) -> dict[str, Any]:
    messages = [
        {
            "id": index,
            "type": kind,
            "direction": direction,
            "subject": "hi",
            "creationTime": "2026-11-26T10:00:00.000Z",
            "from": {"phoneNumber": phone if direction == "Inbound" else to},
            "to": [{"phoneNumber": to if direction == "Inbound" else phone}],
        }
        for index, kind in enumerate(types, start=1)
    ]
    return {
        "logInfo": {
            "messages": messages,
            "correspondents": [{"phoneNumber": phone}],
            "conversationLogId": "conv-1",
        }
    }


@pytest.mark.parametrize(
    ("kind", "creates"), [("SMS", True), ("VoiceMail", True), ("Fax", False), ("Pager", False)]
)
def test_message_types_by_default(api: ApiClient, kind: str, creates: bool) -> None:
    body = api.post("/messageLog", message_body(kind)).json()

    assert body["successful"] is creates
    row = MessageLog.objects.get()
    if creates:
        assert row.contact_is_placeholder is True
    else:
        assert (row.status, row.decision["placeholderRefused"]) == (LogStatus.SKIPPED, "messageType")
        assert row.decision["placeholderRefusedValue"] == kind


def test_faxes_may_be_let_in_and_messages_obey_the_direction(api: ApiClient) -> None:
    set_rules(placeholderMessageTypes=["Fax"], placeholderDirections=["outbound"])

    assert api.post("/messageLog", message_body("Fax", direction="Inbound")).json()["successful"] is False
    assert MessageLog.objects.get().decision["placeholderRefused"] == "direction"
    outbound = message_body("Fax", direction="Outbound")
    outbound["logInfo"]["messages"][0]["id"] = 2
    assert api.post("/messageLog", outbound).json()["successful"] is True


def test_a_correspondent_written_another_way_is_not_taken_for_the_agent(api: ApiClient) -> None:
    body = message_body("SMS")
    body["logInfo"]["messages"][0]["from"] = {"phoneNumber": "(415) 555-0199"}

    assert api.post("/messageLog", body).json()["successful"] is True

    assert MessageLog.objects.get().contact_is_placeholder is True


def test_the_user_sets_the_scope_where_the_admin_lets_them(api: ApiClient) -> None:
    RuleSetting.objects.filter(key="placeholderDirections").delete()
    RuleSetting.objects.create(key="placeholderDirections", value=["inbound", "outbound"], customizable=True)
    rules_cache_clear()
    saved = api.post("/user/settings", {"userSettings": {"placeholderDirections": {"value": ["outbound"]}}})
    assert saved.status_code == 200

    call(api, direction="Inbound")

    refused("direction", "Inbound")
    assert decision()["rules"]["sources"]["placeholderDirections"] == "user"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("placeholderDirections", ["inbound", "sideways"]),
        ("placeholderDirections", "inbound"),
        ("placeholderCallResults", ["answered", "answered"]),
        ("placeholderMinDurationSeconds", -1),
        ("placeholderMinDurationSeconds", "10"),
        ("placeholderMinDurationSeconds", True),
        ("placeholderMessageTypes", ["MMS"]),
    ],
)
def test_a_bad_scope_value_is_refused(api: ApiClient, key: str, value: Any) -> None:
    response = api.post("/user/settings", {"userSettings": {key: {"value": value}}})

    assert response.status_code == 400
    assert f"{key}.value" in str(response.json())


# --- never a placeholder for -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("party", "condition", "value"),
    [
        # a colleague: the other party carries extension markers
        (
            {"phoneNumber": "+14155550123", "extensionNumber": "205", "name": "Bob"},
            "extension",
            "+14155550123",
        ),
        ({"extensionNumber": "205", "name": "Bob"}, "extension", "205"),
        # withheld: all zeros, or a carrier marker with no valid number
        ({"phoneNumber": "+10000000000", "name": "Anonymous"}, "withheld", "+10000000000"),
        ({"phoneNumber": "+1 (123) 456-7890", "name": "Restricted"}, "withheld", "Restricted"),
        # a short code that reads as a possible E.164 number (Germany's 116117)
        ({"phoneNumber": "+49 116117"}, "shortCode", "+49 116117"),
        ({"phoneNumber": "+4912345"}, "shortCode", "+4912345"),
        # the agent's own number on the other side
        ({"phoneNumber": "+1 650-555-0100"}, "ownNumber", AGENT),
    ],
)
def test_numbers_that_never_become_placeholders(
    api: ApiClient, party: dict[str, Any], condition: str, value: str
) -> None:
    call(api, party=party)

    refused(condition, value)


@pytest.mark.parametrize(
    ("party", "condition", "value", "stored"),
    [
        ({"name": "Anonymous"}, "withheld", "", ""),
        ({"phoneNumber": "anonymous", "name": "Anonymous"}, "withheld", "anonymous", "anonymous"),
        ({"phoneNumber": "Restricted"}, "withheld", "Restricted", "Restricted"),
        ({"phoneNumber": None, "name": "Private"}, "withheld", "", ""),
        ({"phoneNumber": "911"}, "emergency", "911", "911"),
        ({"phoneNumber": "24273"}, "shortCode", "24273", "24273"),
    ],
    ids=["no-number", "anonymous", "restricted", "null", "emergency", "short-code"],
)
def test_a_call_without_an_e164_number_reaches_the_rules_and_is_skipped(
    api: ApiClient, party: dict[str, Any], condition: str, value: str, stored: str
) -> None:
    body = call(api, party=party)

    assert body["successful"] is False
    refused(condition, value)
    log = CallLog.objects.get()
    assert (log.phone_number, log.decision["phoneNumber"]) == (stored, "")
    assert log.payload["phoneNumber"] == ""


def test_a_withheld_call_is_skipped_and_says_so_under_the_default_rule(api: ApiClient) -> None:
    set_rules(unknownContactAction="prompt")

    call(api, party={"name": "Anonymous"})

    log = CallLog.objects.get()
    assert (log.status, log.decision["reason"]) == (LogStatus.SKIPPED, "no phone number to look up")


def test_a_withheld_call_with_a_contact_is_logged_against_it(api: ApiClient) -> None:
    known = BuiltinContactFactory(name="Known", phone_numbers=[UNKNOWN])
    body = call_body(session_id="s-1", contact_id=str(known.pk))
    body["logInfo"]["from"] = {"name": "Anonymous"}

    assert api.post("/callLog", body).json()["successful"] is True
    log = CallLog.objects.get()
    assert (log.status, log.contact_id, log.phone_number) == (LogStatus.LOGGED, str(known.pk), "")
    # once per session and extension, numbered or not
    assert api.post("/callLog", body).json()["successful"] is False
    assert CallLog.objects.count() == 1


@pytest.mark.parametrize(
    ("party", "field"),
    [
        ({"phoneNumber": "call me"}, "logInfo.from.phoneNumber"),
        ({"phoneNumber": "12 monkeys"}, "logInfo.from.phoneNumber"),
        ({"phoneNumber": "1" * 65}, "logInfo.from.phoneNumber"),
        ({"phoneNumber": "anonymous\u0000"}, "body"),  # refused by the parser
        (None, "logInfo.from.phoneNumber"),
    ],
    ids=["words", "digits-and-words", "overlong", "nul", "no-party"],
)
def test_what_is_no_number_at_all_is_still_refused(api: ApiClient, party: Any, field: str) -> None:
    body = call_body(session_id="s-1")
    body["logInfo"]["from"] = party

    response = api.post("/callLog", body)

    assert response.status_code == 400
    assert any(key.startswith(field) for key in response.json()["errors"]), response.json()
    assert CallLog.objects.count() == 0


@pytest.mark.parametrize(
    ("sender", "condition"),
    [("24273", "shortCode"), ("anonymous", "withheld")],
    ids=["short-code", "withheld"],
)
def test_a_message_from_a_short_code_reaches_the_rules(api: ApiClient, sender: str, condition: str) -> None:
    body = api.post("/messageLog", message_body("SMS", phone=sender)).json()

    assert body["successful"] is False
    row = MessageLog.objects.get()
    assert (row.status, row.phone_number) == (LogStatus.SKIPPED, sender)
    assert (row.decision["placeholderRefused"], row.decision["placeholderRefusedValue"]) == (
        condition,
        sender,
    )
    assert PlaceholderContact.objects.count() == 0


def test_a_message_from_a_short_code_with_a_contact_is_logged(api: ApiClient) -> None:
    known = BuiltinContactFactory(name="Bank alerts", phone_numbers=[UNKNOWN])
    body = message_body("SMS", phone="24273")
    body["contactId"] = str(known.pk)

    assert api.post("/messageLog", body).json()["successful"] is True
    row = MessageLog.objects.get()
    assert (row.status, row.contact_id, row.phone_number) == (LogStatus.LOGGED, str(known.pk), "24273")


@pytest.mark.parametrize(
    "phone",
    ["(415) 555-0199", "415.555.0199", "+1 415 555 0199 ext. 12", "+14155550199"],
    ids=["national", "dotted", "with-extension", "e164"],
)
def test_e164_forms_of_one_number_make_one_placeholder_named_from_its_last4(
    api: ApiClient, phone: str
) -> None:
    set_rules(defaultPlaceholderName="Caller {last4}")

    assert call(api, phone=phone)["successful"] is True

    placeholder = PlaceholderContact.objects.get()
    assert (placeholder.phone_number, placeholder.contact_name) == (UNKNOWN, "Caller 0199")


@pytest.mark.parametrize(
    ("raw", "e164", "name", "party", "own", "condition"),
    [
        ("", "", "", {}, (), "withheld"),
        ("anonymous", "", "", {}, (), "withheld"),
        ("Restricted", "", "", {}, (), "withheld"),
        ("", "", "Anonymous", {}, (), "withheld"),
        ("0000", "", "", {}, (), "withheld"),
        ("911", "", "", {}, (), "emergency"),
        ("112", "", "", {}, (), "emergency"),
        ("+44999", "+44999", "", {}, (), "emergency"),
        ("101", "", "", {}, (), "extension"),
        ("4321", "", "", {}, (), "extension"),
        ("", "", "", {"extensionNumber": "205"}, (), "extension"),
        ("12345", "", "", {}, (), "shortCode"),
        ("24273", "", "", {}, (), "shortCode"),
        (UNKNOWN, UNKNOWN, "", {}, ("(415) 555-0199",), "ownNumber"),
        (UNKNOWN, UNKNOWN, "UNKNOWN", {}, (), None),  # a carrier label beside a valid number
        ("+44 20 7946 0018", "+442079460018", "", {}, (), None),
        ("+683 4002", "+6834002", "", {}, (), None),  # Niue: a valid four-digit number
    ],
)
def test_number_exclusions(
    crm_user: CrmUser,
    raw: str,
    e164: str,
    name: str,
    party: dict[str, Any],
    own: tuple[str, ...],
    condition: Any,
) -> None:
    refusal = placeholder_refusal(
        rules=rule_values_get(user=crm_user),
        phone_number=e164,
        raw_number=raw,
        caller_id_name=name,
        traffic=LogTraffic(kind="call", direction="Inbound", party=party, own_numbers=own),
    )

    assert (refusal.condition if refusal else None) == condition


# --- the block list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "kind", "phone"),
    [
        (UNKNOWN, BlockedNumberKind.NUMBER, "(415) 555-0199"),
        ("(415) 555-0199", BlockedNumberKind.NUMBER, UNKNOWN),
        ("+1 415", BlockedNumberKind.PREFIX, "415-555-0199"),
        ("+44", BlockedNumberKind.PREFIX, "+44 20 7946 0018"),
    ],
)
def test_a_blocked_number_or_prefix_gets_no_placeholder(
    api: ApiClient, entry: str, kind: str, phone: str
) -> None:
    saved = block(entry, kind)

    call(api, phone=phone)

    refused("blockList", saved.number)
    assert saved.number == blocked_number_clean(kind=kind, number=entry)


def test_a_blocked_number_with_a_contact_is_still_logged(api: ApiClient) -> None:
    known = BuiltinContactFactory(name="Known", phone_numbers=[UNKNOWN])
    block("+1415", BlockedNumberKind.PREFIX)

    assert call(api)["successful"] is True

    log = CallLog.objects.get()
    assert (log.status, log.contact_id) == (LogStatus.LOGGED, str(known.pk))


def test_an_accounts_block_list_is_its_own(api: ApiClient, crm_user: CrmUser) -> None:
    mine, other = account_ensure(rc_account_id="37439510"), account_ensure(rc_account_id="99887766")
    crm_user.rc_account_id = mine.rc_account_id
    crm_user.save()
    block(UNKNOWN, account=other)

    assert call(api)["successful"] is True

    block("+1415555", BlockedNumberKind.PREFIX, account=mine)
    call(api, "s-2", phone="+14155550142")
    log = CallLog.objects.get(session_id="s-2")
    assert log.decision["placeholderRefusedValue"] == "+1415555"
    assert "the account's block list" in log.decision["reason"]


@pytest.mark.parametrize(
    ("kind", "number", "stored"),
    [
        (BlockedNumberKind.NUMBER, "(415) 555-0199", UNKNOWN),
        (BlockedNumberKind.NUMBER, "+44 20 7946 0018", "+442079460018"),
        (BlockedNumberKind.PREFIX, "+1 (900)", "+1900"),
        (BlockedNumberKind.PREFIX, "+44", "+44"),
    ],
)
def test_block_list_entries_are_stored_in_e164(kind: str, number: str, stored: str) -> None:
    assert blocked_number_clean(kind=kind, number=number) == stored


@pytest.mark.parametrize(
    ("kind", "number", "message"),
    [
        (BlockedNumberKind.NUMBER, "12", "not a possible phone number"),
        (BlockedNumberKind.NUMBER, "call me", "not a phone number"),
        (BlockedNumberKind.PREFIX, "1900", "+ and 1 to 14 digits"),
        (BlockedNumberKind.PREFIX, "+0800", "no country code"),
        (BlockedNumberKind.PREFIX, "+", "+ and 1 to 14 digits"),
        ("range", "+1900", "must be one of"),
    ],
)
def test_a_bad_block_list_entry_is_refused(kind: str, number: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        blocked_number_clean(kind=kind, number=number)


def test_the_block_list_is_read_through_the_rules_cache(api: ApiClient) -> None:
    block("+1900", BlockedNumberKind.PREFIX)
    call(api)  # reads the rule rows, the block list with them, into the cache
    table = BlockedNumber._meta.db_table

    with CaptureQueriesContext(connection) as queries:
        call(api, "s-2", phone="+14155550142")

    assert not [q for q in queries.captured_queries if table in q["sql"]]
    block("+1415555", BlockedNumberKind.PREFIX)  # a save drops the cache: the next call sees it
    call(api, "s-3", phone="+14155550143")
    assert CallLog.objects.get(session_id="s-3").decision["placeholderRefused"] == "blockList"


@pytest.fixture
def _static_files_without_manifest(settings) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.mark.usefixtures("_static_files_without_manifest")
def test_the_admin_adds_a_validated_entry_with_history(admin_client) -> None:
    add = reverse("admin:rules_blockednumber_add")

    bad = admin_client.post(add, {"account": "", "kind": "prefix", "number": "1900", "note": ""})
    assert "number" in bad.context["adminform"].form.errors
    good = admin_client.post(add, {"account": "", "kind": "prefix", "number": "+1 900", "note": "premium"})
    assert good.status_code == 302
    duplicate = admin_client.post(add, {"account": "", "kind": "prefix", "number": "+1900", "note": ""})

    entry = BlockedNumber.objects.get()
    assert (entry.number, entry.kind, entry.history.count()) == ("+1900", "prefix", 1)
    assert duplicate.status_code == 200  # the same number twice in one scope is refused
    listing = admin_client.get(reverse("admin:rules_blockednumber_changelist"), {"q": "+1900"})
    assert listing.status_code == 200
    assert "premium" in listing.content.decode()


# --- every contact type ------------------------------------------------------------------------


def test_a_lead_is_matched_as_a_contact_is(api: ApiClient) -> None:
    lead = BuiltinContactFactory(name="Lead Larry", contact_type="Lead", phone_numbers=[UNKNOWN])

    assert call(api)["successful"] is True

    log = CallLog.objects.get()
    assert (log.contact_id, log.contact_type, log.contact_is_placeholder) == (str(lead.pk), "Lead", False)
    assert PlaceholderContact.objects.count() == 0


@pytest.mark.parametrize(("policy", "expected"), [("alphabetical", "Alice"), ("earliestCreated", "Zed")])
def test_the_multiple_match_policy_sees_contacts_and_leads(
    api: ApiClient, policy: str, expected: str
) -> None:
    set_rules(multipleMatchPolicy=policy)
    BuiltinContactFactory(name="Zed", contact_type="Contact", phone_numbers=[UNKNOWN])
    BuiltinContactFactory(name="Alice", contact_type="Lead", phone_numbers=[UNKNOWN])

    assert call(api)["successful"] is True

    assert CallLog.objects.get().contact_name == expected
    assert decision()["matches"] == 2
    assert PlaceholderContact.objects.count() == 0


def test_a_contact_and_a_lead_prompt_under_the_default_policy(api: ApiClient) -> None:
    BuiltinContactFactory(name="Zed", contact_type="Contact", phone_numbers=[UNKNOWN])
    BuiltinContactFactory(name="Alice", contact_type="Lead", phone_numbers=[UNKNOWN])

    body = call(api)

    assert body["returnMessage"]["message"] == f"Multiple contacts found for number {UNKNOWN}"
    assert (decision()["matches"], PlaceholderContact.objects.count()) == (2, 0)


# --- name templates ----------------------------------------------------------------------------


def test_every_template_field_renders() -> None:
    template = "{callerId} | {phoneNumber} | {nationalNumber} | {last4} | {date} | {direction}"

    name = template_render(
        template, phone_number=UNKNOWN, caller_id="Jane Doe", direction="Outbound", day=date(2026, 11, 26)
    )

    assert name == "Jane Doe | +14155550199 | (415) 555-0199 | 0199 | 2026-11-26 | Outbound"
    assert template_render("{nationalNumber}", phone_number="+442079460018") == "020 7946 0018"


def test_the_flow_fills_the_template_from_the_call(api: ApiClient) -> None:
    set_rules(defaultPlaceholderName="{callerId} {nationalNumber} ({direction} {date})")

    call(api, caller_name="Jane Doe")
    call(api, "s-2", phone="+14155550142", caller_name="WIRELESS CALLER", direction="Outbound")

    names = set(BuiltinContact.objects.values_list("name", flat=True))
    assert names == {"Jane Doe (415) 555-0199 (Inbound 2026-11-26)", "(415) 555-0142 (Outbound 2026-11-26)"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Caller {bogus}", "unknown field {bogus}"),
        ("Caller {phone_number}", "unknown field {phone_number}"),
        ("{phoneNumber.real}", "unknown field {phoneNumber.real}"),
        ("{}", "unknown field {}"),
        ("{last4:>9}", "takes no format"),
        ("{callerId!r}", "takes no format"),
        ("{callerId}", "no Caller ID name"),
        ("Caller {last4", "write {{ and }} for braces"),
    ],
)
def test_a_bad_template_is_refused_naming_why(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        template_validate(template)


def test_a_bad_template_is_refused_through_the_api(api: ApiClient) -> None:
    response = api.post(
        "/user/settings", {"userSettings": {"defaultPlaceholderName": {"value": "Hi {name}"}}}
    )

    assert response.status_code == 400
    assert "unknown field {name}" in str(response.json())


def test_the_preview_renders_a_sample_call() -> None:
    assert placeholder_name_preview(template="{callerId} {last4} {date}") == "Jane Doe 0199 2026-01-31"
    assert (
        placeholder_name_preview(template="New {direction} {last4}", direction="Outbound")
        == "New Outbound 0199"
    )
    with pytest.raises(ValueError, match="unknown field"):
        placeholder_name_preview(template="{nope}")


@pytest.mark.usefixtures("_static_files_without_manifest")
def test_the_rules_page_shows_the_preview_beside_the_template(admin_client) -> None:
    from rules.models import PlaceholderNameTemplate

    PlaceholderNameTemplate.objects.create(contact_type="Lead", template="Lead <b>{last4}</b>")

    page = admin_client.get(reverse("admin:rules_page")).content.decode()

    assert "{nationalNumber}" in page
    assert "Preview: <strong>Lead &lt;b&gt;0199&lt;/b&gt;</strong>" in page
