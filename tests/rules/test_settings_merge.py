"""The settings merge (appconnect-api.md §2.16) and the rule engine's effective values.

Precedence: the code default < a site-wide row < the account's row < the user's own value,
which counts only where the admin left the key customizable. Every write through
`rules.services` is seen at once (the rules cache is dropped).
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.models import CrmUser
from rules.models import Account, PlaceholderNameTemplate, RuleSetting
from rules.parameters import RULE_KEYS
from rules.selectors import (
    admin_settings_map,
    placeholder_template_for,
    rule_values_get,
    settings_merge,
)
from rules.services import (
    account_ensure,
    account_settings_replace,
    placeholder_name_save,
    rule_row_delete,
    rule_setting_save,
)
from tests.rules.conftest import ACCOUNT_ID, OTHER_ACCOUNT_ID

# --- settings_merge: App Connect's algorithm -----------------------------------------------


def test_a_removed_key_is_omitted_whatever_the_user_has() -> None:
    admin = {"a": {"value": 1, "customizable": True, "isRemoved": True}, "b": {"value": 2, "isRemoved": True}}

    assert settings_merge(admin=admin, user={"a": {"value": 9}}) == {}


def test_an_admin_entry_that_is_not_customizable_is_returned_verbatim() -> None:
    admin = {
        "a": {"value": 1, "customizable": False, "options": [1, 2], "extra": "kept"},
        "b": {"value": 2},  # no `customizable`: mandated
    }

    merged = settings_merge(admin=admin, user={"a": {"value": 9}, "b": {"value": 8}})

    assert merged == admin


def test_a_customizable_key_takes_the_users_entry_without_its_other_fields() -> None:
    admin = {"a": {"value": 1, "customizable": True, "options": ["admin"]}}
    user = {"a": {"value": 9, "customizable": False, "defaultValue": 0, "options": [9], "isRemoved": True}}

    assert settings_merge(admin=admin, user=user) == {
        "a": {"customizable": True, "value": 9, "defaultValue": 0, "options": [9]}
    }


def test_a_customizable_key_the_user_lacks_is_the_admin_entry() -> None:
    admin = {"a": {"value": 1, "customizable": True, "defaultValue": 0}}

    assert settings_merge(admin=admin, user={}) == admin


def test_keys_only_the_user_has_are_kept_as_customizable() -> None:
    user = {"mine": {"value": "x", "customizable": False, "foo": "bar"}, "other": {"value": None}}

    assert settings_merge(admin={}, user=user) == {
        "mine": {"customizable": True, "value": "x"},
        "other": {"customizable": True, "value": None},
    }


def test_a_missing_user_map_merges_to_nothing() -> None:
    assert settings_merge(admin={"a": {"value": 1}}, user=None) == {}


def test_the_admin_map_is_not_modified_by_the_merge() -> None:
    admin = {"a": {"value": 1, "customizable": True}, "b": {"value": 2, "customizable": False}}
    snapshot = {key: dict(entry) for key, entry in admin.items()}

    settings_merge(admin=admin, user={"a": {"value": 9}, "b": {"value": 8}})

    assert admin == snapshot


def plugin(config: dict[str, Any], **entry: Any) -> dict[str, Any]:
    return {"value": {"config": config}, **entry}


def test_plugin_settings_merge_field_by_field() -> None:
    admin = {
        "plugin_abc": plugin(
            {
                "apiUrl": {"value": "https://admin.example.com", "customizable": False},
                "label": {"value": "Admin label", "customizable": True},
                "region": {"value": "eu", "customizable": True},
            },
            customizable=True,
        )
    }
    user = {
        "plugin_abc": plugin(
            {
                "apiUrl": {"value": "https://user.example.com"},
                "label": {"value": "My label"},
                "region": {"value": ""},
            }
        )
    }

    merged = settings_merge(admin=admin, user=user)

    assert merged == {
        "plugin_abc": {
            "customizable": True,
            "value": {
                "config": {
                    # not customizable: the admin's field
                    "apiUrl": {"value": "https://admin.example.com", "customizable": False},
                    # customizable: the user's field, flagged with the admin's `customizable`
                    "label": {"value": "My label", "customizable": True},
                    # the user's value is empty and the admin has one: the admin's field
                    "region": {"value": "eu", "customizable": True},
                }
            },
        }
    }


def test_an_empty_plugin_config_takes_the_admins_and_with_none_the_key_drops() -> None:
    admin = {
        "plugin_a": plugin({"x": {"value": 1, "customizable": True}}, customizable=True),
        "plugin_b": {"value": {}, "customizable": True},
    }
    user = {"plugin_a": plugin({}), "plugin_b": plugin({})}

    merged = settings_merge(admin=admin, user=user)

    assert merged == {
        "plugin_a": {"customizable": True, "value": {"config": {"x": {"value": 1, "customizable": True}}}}
    }


# --- admin_settings_map --------------------------------------------------------------------


def test_the_admin_side_declares_every_rule_key_with_its_default(db) -> None:
    admin = admin_settings_map(account=None)

    assert set(admin) == set(RULE_KEYS)
    assert all(entry["customizable"] is True for entry in admin.values())
    assert admin["unknownContactAction"]["value"] == "prompt"
    assert admin["defaultPlaceholderName"]["value"] == "Unknown caller"
    assert admin["multipleMatchPolicy"]["options"] == [
        "prompt",
        "lastUpdated",
        "alphabetical",
        "earliestCreated",
    ]


def test_the_admin_side_stacks_site_then_account_rows(db) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    other = account_ensure(rc_account_id=OTHER_ACCOUNT_ID)
    RuleSetting.objects.create(key="autoLogCall", value=False, customizable=True)
    RuleSetting.objects.create(key="autoLogSMS", value=True)
    RuleSetting.objects.create(account=account, key="autoLogCall", value=True, is_removed=True)
    RuleSetting.objects.create(account=other, key="autoLogSMS", value=False)

    admin = admin_settings_map(account=account)

    assert admin["autoLogCall"] == {"value": True, "customizable": False, "isRemoved": True}
    assert admin["autoLogSMS"] == {"value": True, "customizable": False}
    assert admin_settings_map(account=None)["autoLogCall"] == {"value": False, "customizable": True}


# --- rule_values_get: precedence -----------------------------------------------------------


def linked(user: CrmUser, rc_account_id: str = ACCOUNT_ID) -> Account:
    account = account_ensure(rc_account_id=rc_account_id)
    user.rc_account_id = rc_account_id
    user.save()
    return account


def own(user: CrmUser, **values: Any) -> None:
    user.user_settings = {key: {"value": value} for key, value in values.items()}
    user.save()


def save_row(account: Account | None, key: str, value: Any, *, customizable: bool = False) -> RuleSetting:
    row = RuleSetting.objects.filter(account=account, key=key).first() or RuleSetting(
        account=account, key=key
    )
    row.value, row.customizable = value, customizable
    return rule_setting_save(setting=row)


def test_code_defaults_apply_when_nobody_set_anything(crm_user: CrmUser) -> None:
    rules = rule_values_get(user=crm_user)

    assert rules.snapshot() == {
        "unknownContactAction": "prompt",
        "placeholderNameSource": "callerIdThenDefault",
        "defaultPlaceholderName": "Unknown caller",
        "placeholderContactType": "",
        "multipleMatchPolicy": "prompt",
        "placeholderDirections": ["inbound", "outbound"],
        "placeholderCallResults": [
            "answered",
            "missed",
            "voicemail",
            "rejected",
            "busy",
            "noAnswer",
            "failed",
            "other",
        ],
        "placeholderMinDurationSeconds": 0,
        "placeholderMessageTypes": ["SMS", "VoiceMail"],
        "sources": dict.fromkeys(RULE_KEYS, "default"),
    }
    assert rules.user_placeholder_name is False


def test_a_user_value_counts_where_nobody_mandated_the_key(crm_user: CrmUser) -> None:
    own(crm_user, multipleMatchPolicy="alphabetical", defaultPlaceholderName="Mine {last4}")

    rules = rule_values_get(user=crm_user)

    assert rules.multiple_match_policy == "alphabetical"
    assert rules.default_placeholder_name == "Mine {last4}"
    assert rules.sources["multipleMatchPolicy"] == "user"
    assert rules.user_placeholder_name is True
    assert placeholder_template_for(rules=rules, contact_type="Contact") == ("Mine {last4}", "user")


def test_site_row_beats_the_default_and_the_user_when_mandated(crm_user: CrmUser) -> None:
    own(crm_user, multipleMatchPolicy="alphabetical")
    save_row(None, "multipleMatchPolicy", "lastUpdated")

    rules = rule_values_get(user=crm_user)

    assert (rules.multiple_match_policy, rules.sources["multipleMatchPolicy"]) == ("lastUpdated", "site")


def test_account_row_beats_the_site_row(crm_user: CrmUser) -> None:
    account = linked(crm_user)
    save_row(None, "multipleMatchPolicy", "lastUpdated")
    save_row(account, "multipleMatchPolicy", "earliestCreated")

    rules = rule_values_get(user=crm_user)

    assert (rules.multiple_match_policy, rules.sources["multipleMatchPolicy"]) == (
        "earliestCreated",
        "account",
    )


def test_another_accounts_row_does_not_apply(crm_user: CrmUser) -> None:
    linked(crm_user, ACCOUNT_ID)
    other = account_ensure(rc_account_id=OTHER_ACCOUNT_ID)
    save_row(None, "multipleMatchPolicy", "lastUpdated")
    save_row(other, "multipleMatchPolicy", "earliestCreated")

    rules = rule_values_get(user=crm_user)

    assert (rules.multiple_match_policy, rules.sources["multipleMatchPolicy"]) == ("lastUpdated", "site")


def test_an_unlinked_user_gets_site_rows_only(crm_user: CrmUser) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    save_row(account, "unknownContactAction", "createPlaceholder")

    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"


@pytest.mark.parametrize(
    ("site_customizable", "account_customizable", "expected", "source"),
    [
        (False, True, "alphabetical", "user"),
        (True, False, "earliestCreated", "account"),
        (True, True, "alphabetical", "user"),
        (False, False, "earliestCreated", "account"),
    ],
)
def test_the_user_value_counts_only_where_the_winning_row_is_customizable(
    crm_user: CrmUser, site_customizable: bool, account_customizable: bool, expected: str, source: str
) -> None:
    account = linked(crm_user)
    own(crm_user, multipleMatchPolicy="alphabetical")
    save_row(None, "multipleMatchPolicy", "lastUpdated", customizable=site_customizable)
    save_row(account, "multipleMatchPolicy", "earliestCreated", customizable=account_customizable)

    rules = rule_values_get(user=crm_user)

    assert (rules.multiple_match_policy, rules.sources["multipleMatchPolicy"]) == (expected, source)


def test_a_customizable_site_row_applies_when_the_user_has_no_value(crm_user: CrmUser) -> None:
    save_row(None, "unknownContactAction", "createPlaceholder", customizable=True)

    rules = rule_values_get(user=crm_user)

    assert (rules.unknown_contact_action, rules.sources["unknownContactAction"]) == (
        "createPlaceholder",
        "site",
    )


def test_an_invalid_user_value_falls_back_to_the_default(crm_user: CrmUser) -> None:
    own(crm_user, unknownContactAction="maybe", defaultPlaceholderName="{bogus}")

    rules = rule_values_get(user=crm_user)

    assert rules.unknown_contact_action == "prompt"
    assert rules.default_placeholder_name == "Unknown caller"


def test_an_invalid_row_written_around_the_services_falls_back_to_the_default(crm_user: CrmUser) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="sometimes")

    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"


def test_placeholder_name_templates_most_specific_scope_first(crm_user: CrmUser) -> None:
    account = linked(crm_user)
    save_row(None, "defaultPlaceholderName", "Site {last4}")
    placeholder_name_save(name=PlaceholderNameTemplate(contact_type="Lead", template="Site lead {last4}"))
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Contact") == (
        "Site {last4}",
        "site",
    )
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Site lead {last4}",
        "site, contact type",
    )

    save_row(account, "defaultPlaceholderName", "Acct {last4}")
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Acct {last4}",
        "account",
    )

    placeholder_name_save(
        name=PlaceholderNameTemplate(account=account, contact_type="Lead", template="Acct lead {last4}")
    )
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Acct lead {last4}",
        "account, contact type",
    )


# --- the cache -----------------------------------------------------------------------------


def test_a_rule_setting_saved_through_the_services_is_used_at_once(crm_user: CrmUser) -> None:
    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"  # now cached

    row = save_row(None, "unknownContactAction", "createPlaceholder")
    assert rule_values_get(user=crm_user).unknown_contact_action == "createPlaceholder"

    row.value = "prompt"
    rule_setting_save(setting=row)
    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"

    save_row(None, "multipleMatchPolicy", "lastUpdated")
    rule_row_delete(row=RuleSetting.objects.get(key="multipleMatchPolicy"))
    assert rule_values_get(user=crm_user).multiple_match_policy == "prompt"


def test_an_account_map_replaced_through_the_services_is_used_at_once(crm_user: CrmUser) -> None:
    account = linked(crm_user)
    assert rule_values_get(user=crm_user).multiple_match_policy == "prompt"

    account_settings_replace(account=account, settings={"multipleMatchPolicy": {"value": "alphabetical"}})
    assert rule_values_get(user=crm_user).multiple_match_policy == "alphabetical"

    account_settings_replace(account=account, settings={})
    assert rule_values_get(user=crm_user).multiple_match_policy == "prompt"


def test_a_placeholder_name_saved_through_the_services_is_used_at_once(crm_user: CrmUser) -> None:
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Unknown caller",
        "built-in",
    )

    name = placeholder_name_save(name=PlaceholderNameTemplate(contact_type="Lead", template="Lead {last4}"))
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Lead {last4}",
        "site, contact type",
    )

    rule_row_delete(row=name)
    assert placeholder_template_for(rules=rule_values_get(user=crm_user), contact_type="Lead") == (
        "Unknown caller",
        "built-in",
    )


def test_refused_writes_change_nothing(crm_user: CrmUser) -> None:
    with pytest.raises(ValueError):
        rule_setting_save(setting=RuleSetting(key="unknownContactAction", value="maybe"))
    with pytest.raises(ValueError):
        rule_setting_save(setting=RuleSetting(key="bogusKey", value=1))
    with pytest.raises(ValueError):
        placeholder_name_save(name=PlaceholderNameTemplate(contact_type="Lead", template="{x}"))
    with pytest.raises(ValueError):
        placeholder_name_save(name=PlaceholderNameTemplate(contact_type="Spaceship", template="Caller"))

    assert RuleSetting.objects.count() == 0
    assert PlaceholderNameTemplate.objects.count() == 0
    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"
