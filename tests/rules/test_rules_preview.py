"""Preview a rule: what unsaved rules would have done with the latest recorded calls, from
each call's recorded decision, without asking the CRM or writing anything."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinContact, CrmUser
from logs.models import CallLog
from rules.models import Account, BlockedNumber, PlaceholderContact, RuleSetting
from rules.selectors import RecordedCall, RuleValues, recorded_calls_get, rule_values_candidate
from rules.services import RulesPreview, account_ensure, blocked_number_save, call_replay, rules_preview
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory
from tests.rules.conftest import ACCOUNT_ID
from tests.rules.test_automatic_flow import set_rules
from tests.rules.test_rules_page import SITE_PAGE, account_page, page_data

pytestmark = pytest.mark.django_db

KNOWN = "+14155550100"
SHARED = "+14155550111"


def call(api: ApiClient, session: str, phone: str, **log_info: Any) -> None:
    body = call_body(session_id=session, phone=phone)
    body["logInfo"].update(log_info)
    if log_info.get("direction") == "Outbound":
        body["logInfo"]["from"], body["logInfo"]["to"] = body["logInfo"]["to"], body["logInfo"]["from"]
    api.post("/callLog", body)


@pytest.fixture
def history(api: ApiClient, crm_user: CrmUser) -> dict[str, int]:
    """Seven calls recorded under the default rules (leave unknown callers to the user):
    session -> call-log id."""
    BuiltinContactFactory(name="Known", phone_numbers=[KNOWN])
    BuiltinContactFactory(name="Zed", phone_numbers=[SHARED])
    BuiltinContactFactory(name="Alice", phone_numbers=[SHARED])
    call(api, "answered", "+14155550199", result="Call connected", duration=65)
    call(api, "missed", "+14155550123", result="Missed", duration=0)
    call(api, "known", KNOWN)
    call(api, "shared", SHARED)
    call(api, "withheld", "anonymous")
    api.post("/callLog", call_body(session_id="manual", phone="+14155550155", contact_id="900"))
    call(api, "outbound", "+14155550177", direction="Outbound", result="Call connected", duration=65)
    return dict(CallLog.objects.values_list("session_id", "id"))


def preview(account: Account | None = None, limit: int = 100, **values: Any) -> RulesPreview:
    entries = {key: {"value": value, "customizable": False} for key, value in values.items()}
    return rules_preview(
        page_account=account, entries=entries, calls=recorded_calls_get(account=account, limit=limit)
    )


def by_session(result: RulesPreview, history: dict[str, int]) -> dict[str, tuple[str, str]]:
    sessions = {log_id: session for session, log_id in history.items()}
    return {sessions[line.call.log_id]: (line.outcome.value, line.condition) for line in result.lines}


def test_the_default_rules_replay_as_recorded(history: dict[str, int]) -> None:
    result = preview()

    assert by_session(result, history) == {
        "answered": ("prompt", "unknownContactAction"),
        "missed": ("prompt", "unknownContactAction"),
        "known": ("match", "oneMatch"),
        "shared": ("prompt", "multipleMatchPolicy"),
        "withheld": ("prompt", "unknownContactAction"),
        "manual": ("given", "contactGiven"),
        "outbound": ("prompt", "unknownContactAction"),
    }
    assert result.counts == {"placeholder": 0, "skip": 0, "prompt": 5, "match": 1, "given": 1, "unknown": 0}


def test_placeholders_for_answered_calls_only(history: dict[str, int]) -> None:
    result = preview(
        unknownContactAction="createPlaceholder",
        placeholderCallResults=["answered"],
        placeholderMinDurationSeconds=30,
        multipleMatchPolicy="alphabetical",
    )

    assert by_session(result, history) == {
        "answered": ("placeholder", "unknownContactAction"),
        "missed": ("skip", "callResult"),
        "known": ("match", "oneMatch"),
        "shared": ("match", "multipleMatchPolicy"),
        "withheld": ("skip", "withheld"),
        "manual": ("given", "contactGiven"),
        "outbound": ("placeholder", "unknownContactAction"),
    }
    assert result.counts == {"placeholder": 2, "skip": 2, "prompt": 0, "match": 2, "given": 1, "unknown": 0}
    assert result.conditions["unknownContactAction"] == 2
    missed = next(line for line in result.lines if line.call.log_id == history["missed"])
    assert missed.reason == "calls with result 'Missed' (missed) create no placeholder"
    assert missed.recorded == "prompted"


@pytest.mark.parametrize(
    ("values", "session", "expected"),
    [
        ({"placeholderDirections": ["inbound"]}, "outbound", ("skip", "direction")),
        ({"placeholderMinDurationSeconds": 90}, "answered", ("skip", "minDuration")),
        (
            {"placeholderCallResults": ["answered", "missed"]},
            "missed",
            ("placeholder", "unknownContactAction"),
        ),
    ],
)
def test_each_call_kind_condition_names_itself(
    history: dict[str, int], values: dict[str, Any], session: str, expected: tuple[str, str]
) -> None:
    result = preview(unknownContactAction="createPlaceholder", **values)

    assert by_session(result, history)[session] == expected


def test_a_block_list_entry_skips_the_number(history: dict[str, int]) -> None:
    blocked_number_save(entry=BlockedNumber(number="+14155550199"))

    result = preview(unknownContactAction="createPlaceholder")

    assert by_session(result, history)["answered"] == ("skip", "blockList")


def test_a_preview_writes_nothing_and_asks_no_crm(
    history: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_crm(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the preview asked the CRM")

    for name in ("find_contact", "create_contact", "create_call_log"):
        monkeypatch.setattr(BuiltinCrmClient, name, no_crm, raising=False)
    counts = (BuiltinContact.objects.count(), PlaceholderContact.objects.count(), RuleSetting.objects.count())

    result = preview(unknownContactAction="createPlaceholder")

    assert result.counts["placeholder"] == 3
    after = (BuiltinContact.objects.count(), PlaceholderContact.objects.count(), RuleSetting.objects.count())
    assert after == counts


def test_the_limit_takes_the_latest_calls(history: dict[str, int]) -> None:
    result = preview(limit=2)

    assert [line.call.log_id for line in result.lines] == [history["outbound"], history["manual"]]


def test_placeholders_the_recorded_rules_made_count_as_no_contact(api: ApiClient) -> None:
    """A later call found the placeholder an earlier rule made: without that rule there is
    no contact for the number, so the preview says so."""
    set_rules(unknownContactAction="createPlaceholder")
    call(api, "first", "+14155550199")
    call(api, "again", "+14155550199")
    assert CallLog.objects.get(session_id="again").decision["outcome"] in ("matched", "placeholder_reused")

    prompting = preview(unknownContactAction="prompt")
    creating = preview()

    assert prompting.counts["prompt"] == 2
    assert creating.counts["placeholder"] == 2  # the site row stands: createPlaceholder


def test_an_accounts_preview_replays_its_users_calls_under_its_rules(
    api: ApiClient, crm_user: CrmUser, login: Any
) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.save()
    _, other_api = login("bob")
    call(api, "ours", "+14155550199")
    call(other_api, "theirs", "+14155550123")

    ours = preview(account, unknownContactAction="createPlaceholder")
    site = preview(unknownContactAction="createPlaceholder")

    assert [line.call.phone_number for line in ours.lines] == ["+14155550199"]
    assert ours.counts["placeholder"] == 1
    assert site.counts["placeholder"] == 2
    # The account's own row outranks a site-wide candidate.
    set_rules(account, unknownContactAction="prompt")
    site = preview(unknownContactAction="createPlaceholder")
    assert {line.call.phone_number: line.outcome.value for line in site.lines} == {
        "+14155550199": "prompt",
        "+14155550123": "placeholder",
    }


def test_the_page_previews_its_unsaved_values(admin_client: Client, history: dict[str, int]) -> None:
    data = page_data(
        admin_client,
        SITE_PAGE,
        set_unknownContactAction="on",
        unknownContactAction="createPlaceholder",
        preview_calls="6",
        _preview="Preview",
    )

    response = admin_client.post(SITE_PAGE, data)

    assert response.status_code == 200
    shown = response.context["preview"]
    assert len(shown.lines) == 6
    assert shown.counts["placeholder"] == 2  # outbound and missed: the latest six leave "answered" out
    page = response.content.decode()
    assert 'id="preview-lines"' in page
    assert "What these rules would have done with the last 6 recorded calls" in page
    assert RuleSetting.objects.count() == 0


def test_an_accounts_page_previews_only_its_calls(admin_client: Client, history: dict[str, int]) -> None:
    account = account_ensure(rc_account_id="11112222")  # no user of it has called

    response = admin_client.post(
        account_page(account), page_data(admin_client, account_page(account), _preview="1")
    )

    assert response.context["preview"].lines == []
    assert "No call recorded yet." in response.content.decode()


# --- the replay of one recorded decision ----------------------------------------------------


def recorded(
    decision: dict[str, Any], *, decided_by: str = "rule", phone: str = "+14155550199"
) -> RecordedCall:
    return RecordedCall(
        log_id=1,
        created_at=timezone.now(),
        phone_number=phone,
        raw_number=phone,
        caller_id_name="",
        direction="Inbound",
        result="Call connected",
        duration_seconds=65,
        party={"phoneNumber": phone},
        own_number="+16505550100",
        decided_by=decided_by,
        decision=decision,
        user_settings={},
        account=None,
    )


def rules_with(**values: Any) -> RuleValues:
    return rule_values_candidate(
        user_settings={},
        call_account=None,
        page_account=None,
        entries={key: {"value": value, "customizable": False} for key, value in values.items()},
    )


@pytest.mark.parametrize(
    ("decision", "values", "expected"),
    [
        ({"outcome": "failed", "error": "CRM down"}, {}, ("unknown", "lookupFailed")),
        ({}, {}, ("unknown", "lookupFailed")),
        ({"outcome": "placeholder_created"}, {}, ("prompt", "unknownContactAction")),
        (
            {"outcome": "placeholder_created"},
            {"unknownContactAction": "createPlaceholder"},
            ("placeholder", "unknownContactAction"),
        ),
        ({"outcome": "matched"}, {}, ("match", "oneMatch")),
        (
            {"outcome": "multiple_resolved", "matches": 2, "policy": "alphabetical"},
            {"multipleMatchPolicy": "alphabetical"},
            ("match", "multipleMatchPolicy"),
        ),
        (
            {"outcome": "multiple_resolved", "matches": 2, "policy": "alphabetical"},
            {},
            ("prompt", "multipleMatchPolicy"),
        ),
        (
            {
                "outcome": "prompted",
                "matches": 3,
                "rules": {"multipleMatchPolicy": "lastUpdated"},
                "reason": "two contacts share the same mostRecentActivityDate",
            },
            {"multipleMatchPolicy": "lastUpdated"},
            ("prompt", "multipleMatchPolicy"),
        ),
        (
            {"outcome": "prompted", "matches": 3, "rules": {"multipleMatchPolicy": "prompt"}},
            {"multipleMatchPolicy": "earliestCreated"},
            ("match", "multipleMatchPolicy"),
        ),
        (
            {"outcome": "matched", "matches": 2, "placeholderMatches": 1, "placeholderId": 4},
            {},
            ("match", "oneMatch"),
        ),
    ],
)
@pytest.mark.django_db
def test_a_recorded_decision_replays(
    decision: dict[str, Any], values: dict[str, Any], expected: tuple[str, str]
) -> None:
    line = call_replay(rules=rules_with(**values), call=recorded(decision))

    assert (line.outcome.value, line.condition) == expected


@pytest.mark.django_db
def test_a_policy_that_could_not_decide_says_why_again() -> None:
    decision = {
        "outcome": "prompted",
        "matches": 2,
        "rules": {"multipleMatchPolicy": "lastUpdated"},
        "reason": "two contacts share the same mostRecentActivityDate",
    }

    line = call_replay(rules=rules_with(multipleMatchPolicy="lastUpdated"), call=recorded(decision))

    assert line.reason == "2 contacts match; two contacts share the same mostRecentActivityDate"


@pytest.mark.django_db
def test_a_contact_the_user_gave_is_never_replayed() -> None:
    line = call_replay(
        rules=rules_with(unknownContactAction="createPlaceholder"),
        call=recorded({"outcome": "given"}, decided_by="user"),
    )

    assert (line.outcome.value, line.condition) == ("given", "contactGiven")


def test_the_recorded_calls_are_read_in_two_statements(
    history: dict[str, int], crm_user: CrmUser, django_assert_num_queries: Any
) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.save()

    with django_assert_num_queries(2):
        calls = recorded_calls_get(account=None, limit=100)

    assert len(calls) == len(history)
    assert {call.account for call in calls} == {account}
    assert {call.phone_number for call in calls} >= {KNOWN, SHARED, ""}  # "" for the withheld caller
