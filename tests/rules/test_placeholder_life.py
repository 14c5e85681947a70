"""The placeholder's life after the call: open, named (by a user or in the CRM), superseded
by a real contact for the number, followed where the automatic flow looks the number up."""

from __future__ import annotations

from typing import Any

import pytest

from connector.models import BuiltinContact, BuiltinContactPhone
from logs.choices import LogStatus
from logs.models import CallLog
from rules.choices import DecidedBy, PlaceholderLife
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

UNKNOWN = "+14155550199"


@pytest.fixture(autouse=True)
def _creating(db) -> None:
    for key, value in {
        "unknownContactAction": "createPlaceholder",
        "placeholderNameSource": "defaultOnly",
    }.items():
        RuleSetting.objects.create(key=key, value=value)
    rules_cache_clear()


def auto_call(api: ApiClient, session_id: str) -> dict[str, Any]:
    response = api.post("/callLog", call_body(session_id=session_id, phone=UNKNOWN))
    assert response.status_code == 200, response.content
    return response.json()


def placeholder() -> PlaceholderContact:
    return PlaceholderContact.objects.get(decided_by=DecidedBy.RULE)


def logged_to(session_id: str) -> str:
    log = CallLog.objects.get(session_id=session_id)
    assert log.status == LogStatus.LOGGED
    return log.contact_id


def test_a_new_placeholder_is_open_and_a_second_call_keeps_it_so(api: ApiClient) -> None:
    auto_call(api, "s-1")
    auto_call(api, "s-2")  # the CRM's search returns the placeholder, named as we named it

    row = placeholder()
    assert (row.life, row.named_as, row.superseded_by) == (PlaceholderLife.OPEN, "", "")
    assert logged_to("s-2") == row.contact_id
    assert CallLog.objects.get(session_id="s-2").decision["placeholderId"] == row.pk


def test_renamed_in_the_crm_it_is_named_and_still_logged_against(api: ApiClient) -> None:
    auto_call(api, "s-1")
    BuiltinContact.objects.filter(pk=placeholder().contact_id).update(name="Jane Doe")

    auto_call(api, "s-2")

    row = placeholder()
    assert (row.life, row.named_as, row.superseded_by) == (PlaceholderLife.NAMED, "Jane Doe", "")
    assert row.named_at is not None
    assert "the CRM shows it as 'Jane Doe'" in row.life_reason
    log = CallLog.objects.get(session_id="s-2")
    assert (log.contact_id, log.contact_is_placeholder, log.placeholder_id) == (row.contact_id, True, row.pk)
    assert log.decision["placeholderNamed"] == "Jane Doe"


def test_a_user_naming_the_number_names_it_then_their_contact_supersedes_it(api: ApiClient) -> None:
    auto_call(api, "s-1")

    created = api.post("/contact", {"phoneNumber": UNKNOWN, "newContactName": "Walk-in Will"}).json()[
        "contact"
    ]

    row = placeholder()
    assert (row.life, row.named_as) == (PlaceholderLife.NAMED, "Walk-in Will")
    by_hand = PlaceholderContact.objects.get(decided_by=DecidedBy.USER)
    assert (by_hand.life, by_hand.named_as) == (PlaceholderLife.NAMED, "Walk-in Will")
    # the lookup now finds both: the user's contact wins, with no prompt
    auto_call(api, "s-2")
    assert logged_to("s-2") == created["id"]
    row.refresh_from_db()
    assert (row.life, row.superseded_by) == (PlaceholderLife.SUPERSEDED, created["id"])


def test_a_real_contact_appearing_supersedes_it_and_takes_new_logs(api: ApiClient) -> None:
    auto_call(api, "s-1")
    first = placeholder()
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])

    body = auto_call(api, "s-2")  # placeholder and real contact both match: no prompt

    assert body["successful"] is True
    assert logged_to("s-2") == str(real.pk)
    row = placeholder()
    assert (row.life, row.superseded_by) == (PlaceholderLife.SUPERSEDED, str(real.pk))
    assert row.superseded_at is not None
    assert row.life_reason == f"a real contact for the number was found: {real.pk}"
    decision = CallLog.objects.get(session_id="s-2").decision
    assert decision["placeholderSuperseded"] == {"placeholderIds": [row.pk], "by": str(real.pk)}
    assert (decision["matches"], decision["placeholderMatches"]) == (2, 1)
    # later calls: the real contact, the link kept as first recorded
    auto_call(api, "s-3")
    assert logged_to("s-3") == str(real.pk)
    assert logged_to("s-1") == first.contact_id  # earlier logs stay: no connector moves activities
    assert placeholder().superseded_at == row.superseded_at


def test_merged_away_in_the_crm_it_is_superseded_by_the_contact_left(api: ApiClient) -> None:
    auto_call(api, "s-1")
    BuiltinContactPhone.objects.filter(contact_id=placeholder().contact_id).delete()  # merged away
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])

    auto_call(api, "s-2")

    row = placeholder()
    assert (row.life, row.superseded_by) == (PlaceholderLife.SUPERSEDED, str(real.pk))
    assert "no longer returns it" in row.life_reason
    assert logged_to("s-2") == str(real.pk)


def test_several_real_contacts_the_policy_cannot_choose_leave_it_as_it_was(api: ApiClient) -> None:
    auto_call(api, "s-1")
    BuiltinContactFactory(name="Zed", phone_numbers=[UNKNOWN])
    BuiltinContactFactory(name="Alice", phone_numbers=[UNKNOWN])

    body = auto_call(api, "s-2")  # the default policy prompts among the two real ones

    assert body["returnMessage"]["message"] == f"Multiple contacts found for number {UNKNOWN}"
    assert CallLog.objects.get(session_id="s-2").decision["placeholderMatches"] == 1
    assert placeholder().life == PlaceholderLife.OPEN


def test_a_lookup_that_finds_nothing_reuses_it_unchanged(api: ApiClient) -> None:
    auto_call(api, "s-1")
    BuiltinContactPhone.objects.all().delete()  # the CRM's search lags, or it was deleted

    auto_call(api, "s-2")

    row = placeholder()
    assert row.life == PlaceholderLife.OPEN
    assert logged_to("s-2") == row.contact_id


# --- superseded, then nothing found ---------------------------------------------------------
#
# The real contact that superseded the placeholder was found by a lookup; a lookup that
# finds nothing at all means it is gone (deleted, or merged away without the number), and
# the placeholder is not found either. The number is unknown again: the rules decide anew,
# and a new placeholder takes over from the old one, which stays as history.


def gone_from_search(contact_id: str) -> None:
    """The CRM no longer returns the contact for the number (deleted or merged away)."""
    BuiltinContactPhone.objects.filter(contact_id=contact_id).delete()


def superseded_then_gone(api: ApiClient) -> tuple[PlaceholderContact, BuiltinContact]:
    auto_call(api, "s-1")
    first = placeholder()
    gone_from_search(first.contact_id)  # merged into the real contact
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])
    auto_call(api, "s-2")
    first.refresh_from_db()
    assert (first.life, first.superseded_by) == (PlaceholderLife.SUPERSEDED, str(real.pk))
    gone_from_search(str(real.pk))  # then deleted, or merged away itself
    return first, real


def test_superseded_then_nothing_found_a_new_placeholder_takes_over(api: ApiClient) -> None:
    first, real = superseded_then_gone(api)

    body = auto_call(api, "s-3")

    assert body["successful"] is True
    rows = PlaceholderContact.objects.filter(decided_by=DecidedBy.RULE).order_by("id")
    assert [row.life for row in rows] == [PlaceholderLife.SUPERSEDED, PlaceholderLife.OPEN]
    old, new = rows
    assert (old.pk, old.superseded_by, old.life_reason) == (
        first.pk,
        str(real.pk),
        first.life_reason,
    )  # the old row is history, unchanged
    assert new.replaces_id == old.pk and old.replaced_by == new
    assert new.contact_id not in (old.contact_id, str(real.pk))
    assert new.life_reason == (
        f"took over from placeholder #{old.pk}: contact {real.pk}, which superseded it, "
        "is no longer found for the number"
    )
    log = CallLog.objects.get(session_id="s-3")
    assert (log.contact_id, log.placeholder_id, log.contact_is_placeholder) == (new.contact_id, new.pk, True)
    assert log.decision["replacesPlaceholder"] == {"placeholderId": old.pk, "supersededBy": str(real.pk)}
    # the earlier logs stay where they were
    assert (logged_to("s-1"), logged_to("s-2")) == (old.contact_id, str(real.pk))


def test_the_new_placeholder_is_reused_and_superseded_like_the_first(api: ApiClient) -> None:
    superseded_then_gone(api)
    auto_call(api, "s-3")
    new = PlaceholderContact.objects.get(decided_by=DecidedBy.RULE, life=PlaceholderLife.OPEN)

    auto_call(api, "s-4")  # the CRM returns the new placeholder, and only it
    gone_from_search(new.contact_id)
    auto_call(api, "s-5")  # nothing found: the search may lag behind a new contact
    assert logged_to("s-4") == logged_to("s-5") == new.contact_id
    assert PlaceholderContact.objects.filter(decided_by=DecidedBy.RULE).count() == 2

    newest = BuiltinContactFactory(name="Jane Again", phone_numbers=[UNKNOWN])
    auto_call(api, "s-6")
    new.refresh_from_db()
    assert (new.life, new.superseded_by) == (PlaceholderLife.SUPERSEDED, str(newest.pk))
    assert logged_to("s-6") == str(newest.pk)


def test_superseded_then_nothing_found_the_rules_decide_anew(api: ApiClient) -> None:
    superseded_then_gone(api)
    RuleSetting.objects.filter(key="unknownContactAction").update(value="prompt")
    rules_cache_clear()

    body = auto_call(api, "s-3")

    assert body["returnMessage"]["message"] == f"Contact not found for number {UNKNOWN}"
    assert CallLog.objects.get(session_id="s-3").status == LogStatus.SKIPPED
    assert PlaceholderContact.objects.filter(decided_by=DecidedBy.RULE).count() == 1


def test_a_users_contact_that_superseded_it_and_is_gone_is_not_reused(api: ApiClient) -> None:
    auto_call(api, "s-1")
    created = api.post("/contact", {"phoneNumber": UNKNOWN, "newContactName": "Walk-in Will"}).json()[
        "contact"
    ]
    auto_call(api, "s-2")  # the user's contact supersedes the placeholder
    first = placeholder()
    assert first.superseded_by == created["id"]
    gone_from_search(created["id"])
    gone_from_search(first.contact_id)

    auto_call(api, "s-3")

    new = PlaceholderContact.objects.get(decided_by=DecidedBy.RULE, life=PlaceholderLife.OPEN)
    assert new.replaces_id == first.pk
    assert logged_to("s-3") == new.contact_id not in (created["id"], first.contact_id)


def test_the_placeholder_that_took_over_is_preferred_when_both_are_found(api: ApiClient) -> None:
    first, _ = superseded_then_gone(api)
    auto_call(api, "s-3")
    BuiltinContactPhone.objects.create(contact_id=int(first.contact_id), phone_number=UNKNOWN)  # unmerged

    auto_call(api, "s-4")

    new = PlaceholderContact.objects.get(decided_by=DecidedBy.RULE, life=PlaceholderLife.OPEN)
    assert logged_to("s-4") == new.contact_id
