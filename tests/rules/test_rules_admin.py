"""The Django admin of the rules: validated edits with history, a read-only placeholder
registry, and connected users' pages that never show a credential."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from connector.models import CrmUser
from rules.choices import DecidedBy, PlaceholderStatus
from rules.models import Account, PlaceholderContact, RuleSetting
from rules.selectors import admin_settings_map
from rules.services import account_ensure
from tests.rules.conftest import ACCOUNT_ID

pytestmark = pytest.mark.django_db

RULE_ADD = reverse("admin:rules_rulesetting_add")


@pytest.fixture(autouse=True)
def _static_files_without_manifest(settings) -> None:
    """Admin pages render without `collectstatic` (tests.settings keeps the manifest storage)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def rule_form(**overrides: Any) -> dict[str, Any]:
    data = {"account": "", "key": "autoLogCall", "value": "true"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code
    return response.context["adminform"].form.errors


def site_value(key: str) -> Any:
    return admin_settings_map(account=None).get(key, {}).get("value")


# --- App Connect's own settings (the auto-logging rules are on the rules page) ------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("autoLogCall", '"yes"'),
        ("quickAccessButtonSize", '"huge"'),
        ("logDateFormat", "1"),
        ("clickToDialUrls", '"example.com"'),
        ("autoLogCall", "not json"),
    ],
)
def test_an_invalid_value_is_a_form_error_and_nothing_is_stored(admin_client, key: str, value: str) -> None:
    response = admin_client.post(RULE_ADD, rule_form(key=key, value=value))

    assert "value" in form_errors(response)
    assert RuleSetting.objects.count() == 0
    assert RuleSetting.history.count() == 0


@pytest.mark.parametrize("key", ["bogusKey", "unknownContactAction", "defaultPlaceholderName"])
def test_an_unknown_setting_or_a_rule_cannot_be_chosen(admin_client, key: str) -> None:
    response = admin_client.post(RULE_ADD, rule_form(key=key, value='"prompt"'))

    assert "key" in form_errors(response)
    assert RuleSetting.objects.count() == 0


def test_the_add_form_offers_app_connect_settings_with_their_labels(admin_client) -> None:
    response = admin_client.get(RULE_ADD)

    assert response.status_code == 200
    page = response.content.decode()
    assert "Auto-log calls (client) (autoLogCall)" in page
    assert "(unknownContactAction)" not in page


def test_a_valid_setting_is_saved_with_history_and_used_at_once(admin_client) -> None:
    assert site_value("autoLogCall") is None  # now cached

    response = admin_client.post(RULE_ADD, rule_form(customizable="on"))

    assert response.status_code == 302
    row = RuleSetting.objects.get()
    assert (row.account, row.key, row.value, row.customizable, row.is_removed) == (
        None,
        "autoLogCall",
        True,
        True,
        False,
    )
    assert RuleSetting.history.count() == 1
    assert site_value("autoLogCall") is True


def test_a_change_adds_a_history_row(admin_client) -> None:
    admin_client.post(RULE_ADD, rule_form())
    row = RuleSetting.objects.get()

    response = admin_client.post(
        reverse("admin:rules_rulesetting_change", args=[row.pk]), rule_form(value="false", is_removed="on")
    )

    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.value, row.is_removed) == (False, True)
    assert list(RuleSetting.history.order_by("history_id").values_list("history_type", "value")) == [
        ("+", True),
        ("~", False),
    ]
    history = admin_client.get(reverse("admin:rules_rulesetting_history", args=[row.pk]))
    assert history.status_code == 200


def test_an_account_setting_is_saved_for_that_account(admin_client) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)

    response = admin_client.post(RULE_ADD, rule_form(account=str(account.pk)))

    assert response.status_code == 302
    row = RuleSetting.objects.get()
    assert (row.account, row.key, row.value, row.customizable) == (account, "autoLogCall", True, False)


def test_a_second_site_wide_row_for_a_key_is_a_form_error(admin_client) -> None:
    admin_client.post(RULE_ADD, rule_form())

    response = admin_client.post(RULE_ADD, rule_form(value="false"))

    assert response.status_code == 200
    assert form_errors(response)
    assert list(RuleSetting.objects.values_list("value", flat=True)) == [True]


def test_a_second_account_row_for_a_key_is_a_form_error(admin_client) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    admin_client.post(RULE_ADD, rule_form(account=str(account.pk)))

    response = admin_client.post(RULE_ADD, rule_form(account=str(account.pk), value="false"))

    assert response.status_code == 200
    assert form_errors(response)
    assert RuleSetting.objects.count() == 1


def test_deleting_a_setting_drops_it_at_once(admin_client) -> None:
    admin_client.post(RULE_ADD, rule_form())
    row = RuleSetting.objects.get()
    assert site_value("autoLogCall") is True

    response = admin_client.post(reverse("admin:rules_rulesetting_delete", args=[row.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert RuleSetting.objects.count() == 0
    assert RuleSetting.history.count() == 2
    assert site_value("autoLogCall") is None


def test_the_settings_list_shows_scope_and_value(admin_client) -> None:
    account = account_ensure(rc_account_id=ACCOUNT_ID)
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder")
    RuleSetting.objects.create(account=account, key="multipleMatchPolicy", value="alphabetical")

    response = admin_client.get(reverse("admin:rules_rulesetting_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Site-wide default" in page
    assert f"Account {ACCOUNT_ID}" in page
    assert "&quot;alphabetical&quot;" in page


# Default placeholder names are set on the rules page: see test_rules_page.py.


# --- the placeholder registry --------------------------------------------------------------


@pytest.fixture
def placeholder(crm_user: CrmUser) -> PlaceholderContact:
    return PlaceholderContact.objects.create(
        scope_key=f"user:{crm_user.pk}",
        platform="builtin",
        phone_number="+14155550199",
        created_by=crm_user,
        decided_by=DecidedBy.RULE,
        contact_id="42",
        contact_name="Caller 0199",
        contact_type="Contact",
        status=PlaceholderStatus.READY,
    )


def test_the_placeholder_registry_is_viewable(admin_client, placeholder: PlaceholderContact) -> None:
    response = admin_client.get(reverse("admin:rules_placeholdercontact_changelist"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "+14155550199" in page
    assert "Caller 0199" in page
    assert reverse("admin:rules_placeholdercontact_add") not in page
    detail = admin_client.get(reverse("admin:rules_placeholdercontact_change", args=[placeholder.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_the_placeholder_registry_cannot_be_edited(admin_client, placeholder: PlaceholderContact) -> None:
    add = admin_client.post(reverse("admin:rules_placeholdercontact_add"), {"phone_number": "+14155550100"})
    change = admin_client.post(
        reverse("admin:rules_placeholdercontact_change", args=[placeholder.pk]), {"contact_name": "Renamed"}
    )
    delete = admin_client.post(
        reverse("admin:rules_placeholdercontact_delete", args=[placeholder.pk]), {"post": "yes"}
    )
    bulk = admin_client.post(
        reverse("admin:rules_placeholdercontact_changelist"),
        {"action": "delete_selected", "_selected_action": [placeholder.pk], "post": "yes"},
    )

    assert add.status_code == 403
    assert change.status_code == 403
    assert delete.status_code == 403
    assert bulk.status_code in (200, 302, 403)
    placeholder.refresh_from_db()
    assert placeholder.contact_name == "Caller 0199"
    assert PlaceholderContact.objects.count() == 1


# --- connected users and accounts ----------------------------------------------------------


def test_a_connected_users_page_never_shows_the_api_key(
    admin_client, crm_user: CrmUser, builtin_api_key: str
) -> None:
    crm_user.user_settings = {"autoLogCall": {"value": True}}
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.save()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT access_token FROM {CrmUser._meta.db_table} WHERE id = %s", [crm_user.pk])
        (ciphertext,) = cursor.fetchone()
    assert ciphertext and builtin_api_key not in ciphertext

    pages = [
        admin_client.get(reverse("admin:connector_crmuser_change", args=[crm_user.pk])),
        admin_client.get(reverse("admin:connector_crmuser_changelist")),
        admin_client.get(reverse("admin:connector_crmuser_history", args=[crm_user.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        text = page.content.decode()
        assert builtin_api_key not in text
        assert ciphertext not in text
    assert ACCOUNT_ID in pages[0].content.decode()


def test_an_accounts_hashed_id_follows_its_raw_id(admin_client) -> None:
    response = admin_client.post(
        reverse("admin:rules_account_add"), {"rc_account_id": ACCOUNT_ID, "name": "Acme"}
    )

    assert response.status_code == 302
    from connector.utils import hash_value

    account = Account.objects.get()
    assert account.account_key == hash_value(ACCOUNT_ID)
