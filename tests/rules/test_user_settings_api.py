"""GET /user/settings (admin merged over user, appconnect-api.md §2.16), POST /user/settings
with the rule keys checked, and GET /user/preloadSettings."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from connector.api.authentication import jwt_encode
from connector.models import CrmUser
from rules.models import Account, RuleSetting
from rules.services import account_ensure, account_settings_replace
from tests.conftest import ApiClient
from tests.rules.conftest import (
    ACCOUNT_ID,
    ADMIN_TOKEN,
    OTHER_ACCOUNT_ID,
    OTHER_TOKEN,
    USER_TOKEN,
    FakeRingCentral,
    account_key,
    admin_post,
    assert_no_token,
)

pytestmark = pytest.mark.django_db

AUTHORIZE = "Please go to Settings and authorize CRM platform"

CALL_RESULT_KINDS = ["answered", "missed", "voicemail", "rejected", "busy", "noAnswer", "failed", "other"]
RULE_DEFAULTS = {
    "unknownContactAction": {
        "value": "prompt",
        "customizable": True,
        "defaultValue": "prompt",
        "options": ["prompt", "createPlaceholder"],
    },
    "placeholderNameSource": {
        "value": "callerIdThenDefault",
        "customizable": True,
        "defaultValue": "callerIdThenDefault",
        "options": ["callerIdThenDefault", "defaultOnly"],
    },
    "defaultPlaceholderName": {
        "value": "Unknown caller",
        "customizable": True,
        "defaultValue": "Unknown caller",
    },
    "placeholderContactType": {"value": "", "customizable": True, "defaultValue": ""},
    "multipleMatchPolicy": {
        "value": "prompt",
        "customizable": True,
        "defaultValue": "prompt",
        "options": ["prompt", "lastUpdated", "alphabetical", "earliestCreated"],
    },
    "placeholderDirections": {
        "value": ["inbound", "outbound"],
        "customizable": True,
        "defaultValue": ["inbound", "outbound"],
        "options": ["inbound", "outbound"],
    },
    "placeholderCallResults": {
        "value": CALL_RESULT_KINDS,
        "customizable": True,
        "defaultValue": CALL_RESULT_KINDS,
        "options": CALL_RESULT_KINDS,
    },
    "placeholderMinDurationSeconds": {"value": 0, "customizable": True, "defaultValue": 0},
    "placeholderMessageTypes": {
        "value": ["SMS", "VoiceMail"],
        "customizable": True,
        "defaultValue": ["SMS", "VoiceMail"],
        "options": ["SMS", "Fax", "VoiceMail"],
    },
}


def admin_set(rc_account_id: str = ACCOUNT_ID, **settings: dict[str, Any]) -> Account:
    """The account's admin settings, written through the service (as POST /admin/settings does)."""
    account = account_ensure(rc_account_id=rc_account_id)
    account_settings_replace(account=account, settings=settings)
    return account


def user_set(user: CrmUser, **settings: dict[str, Any]) -> None:
    user.user_settings = settings
    user.save()


def link(user: CrmUser, rc_account_id: str = ACCOUNT_ID) -> None:
    account_ensure(rc_account_id=rc_account_id)
    user.rc_account_id = rc_account_id
    user.save()


def stored(user: CrmUser) -> dict[str, Any]:
    user.refresh_from_db()
    return user.user_settings


# --- GET /user/settings: who may -----------------------------------------------------------


def test_get_without_a_jwt(anon: ApiClient) -> None:
    response = anon.get("/user/settings")

    assert response.status_code == 400
    assert response.content.decode() == AUTHORIZE


def test_get_for_a_user_that_does_not_exist(db) -> None:
    response = ApiClient(jwt_encode(user_id="nobody-builtin", platform="builtin")).get("/user/settings")

    assert response.status_code == 400
    assert response.content.decode() == "User not found"


# --- GET /user/settings: the merge ---------------------------------------------------------


def test_with_no_admin_settings_the_rule_keys_have_their_code_defaults(
    rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser
) -> None:
    user_set(crm_user, myClientKey={"value": "x"})

    response = api.get("/user/settings")

    assert response.status_code == 200
    assert response.json() == {**RULE_DEFAULTS, "myClientKey": {"customizable": True, "value": "x"}}
    assert rc_api.authorizations == []


def test_a_removed_key_is_hidden(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(
        autoLogCall={"value": True, "isRemoved": True},
        unknownContactAction={"value": "prompt", "customizable": True, "isRemoved": True},
    )
    user_set(crm_user, autoLogCall={"value": False}, unknownContactAction={"value": "createPlaceholder"})

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert "autoLogCall" not in body
    assert "unknownContactAction" not in body


def test_a_mandated_value_wins_over_the_users(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(
        autoLogCall={"value": True, "customizable": False},
        autoLogSMS={"value": True},  # no `customizable`: mandated, as in App Connect
        unknownContactAction={"value": "createPlaceholder", "customizable": False},
    )
    user_set(
        crm_user,
        autoLogCall={"value": False},
        autoLogSMS={"value": False, "customizable": True},
        unknownContactAction={"value": "prompt"},
    )

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["autoLogCall"] == {"value": True, "customizable": False}
    assert body["autoLogSMS"] == {"value": True, "customizable": False}
    assert body["unknownContactAction"]["value"] == "createPlaceholder"
    assert body["unknownContactAction"]["customizable"] is False


def test_a_customizable_key_takes_the_users_value(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(
        autoLogCall={"value": True, "customizable": True},
        logDateFormat={"value": "YYYY-MM-DD", "customizable": True},
        multipleMatchPolicy={"value": "lastUpdated", "customizable": True},
    )
    user_set(
        crm_user,
        autoLogCall={"value": False, "customizable": False, "note": "dropped"},
        logDateFormat={"value": "MM/DD/YYYY", "defaultValue": "YYYY", "options": ["MM/DD/YYYY"], "x": 1},
        multipleMatchPolicy={"value": "alphabetical"},
    )

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["autoLogCall"] == {"customizable": True, "value": False}
    assert body["logDateFormat"] == {
        "customizable": True,
        "value": "MM/DD/YYYY",
        "defaultValue": "YYYY",
        "options": ["MM/DD/YYYY"],
    }
    assert body["multipleMatchPolicy"] == {"customizable": True, "value": "alphabetical"}


def test_an_admin_key_the_user_lacks_is_the_admin_entry(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(
        autoLogCall={"value": True, "customizable": True},
        autoLogSMS={"value": False, "customizable": False},
    )
    user_set(crm_user)

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["autoLogCall"] == {"value": True, "customizable": True}
    assert body["autoLogSMS"] == {"value": False, "customizable": False}


def test_keys_only_the_user_has_are_kept(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(autoLogCall={"value": True})
    user_set(
        crm_user,
        myClientKey={"value": {"nested": [1, 2]}, "customizable": False},
        addCallLogNote={"value": False, "defaultValue": True},
    )

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["myClientKey"] == {"customizable": True, "value": {"nested": [1, 2]}}
    assert body["addCallLogNote"] == {"customizable": True, "value": False, "defaultValue": True}


def test_site_wide_rows_apply_and_the_accounts_rows_win(api: ApiClient, crm_user: CrmUser) -> None:
    RuleSetting.objects.create(key="autoLogCall", value=False, customizable=False)
    RuleSetting.objects.create(key="autoLogSMS", value=True, customizable=False)
    admin_set(autoLogCall={"value": True, "customizable": False})

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["autoLogCall"] == {"value": True, "customizable": False}
    assert body["autoLogSMS"] == {"value": True, "customizable": False}


# --- GET /user/settings: which account's settings ------------------------------------------


def test_context_by_rc_account_id(rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(autoLogCall={"value": True})
    user_set(crm_user, autoLogCall={"value": False})

    body = api.get("/user/settings", {"rcAccountId": account_key()}).json()

    assert body["autoLogCall"] == {"value": True, "customizable": False}
    assert rc_api.authorizations == []


@pytest.mark.parametrize("where", ["header", "header-bearer", "query"])
def test_context_by_ringcentral_token(
    rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser, where: str
) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=False)
    admin_set(autoLogCall={"value": True})
    user_set(crm_user, autoLogCall={"value": False})
    params: dict[str, str] = {}
    headers: dict[str, str] | None = None
    if where == "header":
        headers = {"X-RC-Access-Token": USER_TOKEN}
    elif where == "header-bearer":
        headers = {"X-RC-Access-Token": f"Bearer {USER_TOKEN}"}
    else:
        params["rcAccessToken"] = USER_TOKEN

    response = api.get("/user/settings", params, headers=headers)

    assert response.status_code == 200
    assert response.json()["autoLogCall"] == {"value": True, "customizable": False}
    assert rc_api.authorizations == [f"Bearer {USER_TOKEN}"]
    assert_no_token(response, USER_TOKEN)


def test_context_by_the_linked_account(rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(autoLogCall={"value": True})
    link(crm_user)
    user_set(crm_user, autoLogCall={"value": False})

    body = api.get("/user/settings").json()

    assert body["autoLogCall"] == {"value": True, "customizable": False}
    assert rc_api.authorizations == []


def test_rc_account_id_wins_over_the_token_and_the_link(
    rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser
) -> None:
    rc_api(token=OTHER_TOKEN, account_id=OTHER_ACCOUNT_ID, admin=False)
    admin_set(autoLogCall={"value": True})
    admin_set(OTHER_ACCOUNT_ID, autoLogCall={"value": False})
    link(crm_user, OTHER_ACCOUNT_ID)

    response = api.get(
        "/user/settings", {"rcAccountId": account_key(ACCOUNT_ID)}, headers={"X-RC-Access-Token": OTHER_TOKEN}
    )

    assert response.json()["autoLogCall"] == {"value": True, "customizable": False}
    assert rc_api.authorizations == []


def test_the_token_wins_over_the_link(rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=False)
    admin_set(autoLogCall={"value": True})
    admin_set(OTHER_ACCOUNT_ID, autoLogCall={"value": False})
    link(crm_user, OTHER_ACCOUNT_ID)

    response = api.get("/user/settings", headers={"X-RC-Access-Token": USER_TOKEN})

    assert response.json()["autoLogCall"] == {"value": True, "customizable": False}


def test_an_unknown_rc_account_id_applies_no_accounts_settings(api: ApiClient, crm_user: CrmUser) -> None:
    admin_set(autoLogCall={"value": True})
    user_set(crm_user, autoLogCall={"value": False})

    response = api.get("/user/settings", {"rcAccountId": account_key("55555555")})

    assert response.status_code == 200
    assert response.json() == {**RULE_DEFAULTS, "autoLogCall": {"customizable": True, "value": False}}


@pytest.mark.parametrize(
    "failure",
    [{"status": 401}, {"status": 500}, {"exc": requests.exceptions.ConnectTimeout("timed out")}],
    ids=["401", "500", "timeout"],
)
def test_a_failing_ringcentral_lookup_is_ignored(
    rc_api: FakeRingCentral, api: ApiClient, crm_user: CrmUser, failure: dict
) -> None:
    rc_api.fail(**failure)
    user_set(crm_user, autoLogCall={"value": False})

    response = api.get("/user/settings", headers={"X-RC-Access-Token": USER_TOKEN})

    assert response.status_code == 200
    assert response.json()["autoLogCall"] == {"customizable": True, "value": False}


def test_a_login_with_a_ringcentral_token_brings_the_accounts_settings(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str
) -> None:
    rc_api(token=ADMIN_TOKEN, account_id=ACCOUNT_ID, admin=True)
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=False)
    admin_post(anon, {"unknownContactAction": {"value": "createPlaceholder"}})
    login = anon.post(
        "/apiKeyLogin",
        {"platform": "builtin", "apiKey": builtin_api_key},
        headers={"X-RC-Access-Token": USER_TOKEN},
    )
    client = ApiClient(login.json()["jwtToken"])

    body = client.get("/user/settings").json()

    assert body["unknownContactAction"]["value"] == "createPlaceholder"
    assert body["unknownContactAction"]["customizable"] is False


def test_an_admin_change_shows_at_once(
    rc_api: FakeRingCentral, api: ApiClient, anon: ApiClient, crm_user
) -> None:
    rc_api(token=ADMIN_TOKEN)
    link(crm_user)
    assert api.get("/user/settings").json()["multipleMatchPolicy"]["value"] == "prompt"  # cached now

    admin_post(anon, {"multipleMatchPolicy": {"value": "earliestCreated"}})

    assert api.get("/user/settings").json()["multipleMatchPolicy"] == {
        "value": "earliestCreated",
        "customizable": False,
        "options": ["prompt", "lastUpdated", "alphabetical", "earliestCreated"],
    }


# --- POST /user/settings -------------------------------------------------------------------

KEPT = {"unknownContactAction": {"value": "createPlaceholder"}, "myClientKey": {"value": 1}}


@pytest.mark.parametrize(
    ("key", "entry", "field"),
    [
        ("unknownContactAction", {"value": "maybe"}, "value"),
        ("placeholderNameSource", {"value": "callerId"}, "value"),
        ("multipleMatchPolicy", {"value": 3}, "value"),
        ("defaultPlaceholderName", {"value": "{bogus}"}, "value"),
        ("defaultPlaceholderName", {"value": ""}, "value"),
        ("placeholderContactType", {"value": "Company"}, "value"),
        ("autoLogCall", {"value": "yes"}, "value"),
        ("autoLogCall", {"value": True, "customizable": "no"}, "customizable"),
    ],
)
def test_a_bad_value_of_a_known_key_is_refused_and_nothing_stored(
    api: ApiClient, crm_user: CrmUser, key: str, entry: dict, field: str
) -> None:
    user_set(crm_user, **KEPT)

    response = api.post(
        "/user/settings",
        {"userSettings": {"autoLogSMS": {"value": True}, key: entry}, "settingKeysToRemove": ["myClientKey"]},
    )

    assert response.status_code == 400
    body = response.json()
    assert body["successful"] is False
    assert f"userSettings.{key}.{field}" in body["errors"], body["errors"]
    assert stored(crm_user) == KEPT


def test_a_settings_entry_must_be_an_object(api: ApiClient, crm_user: CrmUser) -> None:
    user_set(crm_user, **KEPT)

    response = api.post("/user/settings", {"userSettings": {"autoLogCall": True}})

    assert response.status_code == 400
    assert any(field.startswith("userSettings") for field in response.json()["errors"])
    assert stored(crm_user) == KEPT


def test_the_clients_own_keys_and_valid_rule_values_are_stored(api: ApiClient, crm_user: CrmUser) -> None:
    settings = {
        "myClientKey": {"value": {"anything": [1, "two"]}},
        "plugin_xyz": {"value": {"config": {}}},
        "unknownContactAction": {"value": "createPlaceholder"},
        "placeholderContactType": {"value": "Lead"},
        "defaultPlaceholderName": {"value": "New lead {last4}"},
        "multipleMatchPolicy": {"value": "earliestCreated", "customizable": True},
    }

    response = api.post("/user/settings", {"userSettings": settings})

    assert response.status_code == 200
    assert response.json() == {"userSettings": settings}
    assert stored(crm_user) == settings


def test_setting_keys_to_remove(api: ApiClient, crm_user: CrmUser) -> None:
    user_set(crm_user, **KEPT, autoLogCall={"value": True})

    response = api.post(
        "/user/settings",
        {
            "userSettings": {"autoLogSMS": {"value": True}},
            "settingKeysToRemove": ["myClientKey", "neverStored"],
        },
    )

    expected = {
        "unknownContactAction": {"value": "createPlaceholder"},
        "autoLogCall": {"value": True},
        "autoLogSMS": {"value": True},
    }
    assert response.status_code == 200
    assert response.json() == {"userSettings": expected}
    assert stored(crm_user) == expected


def test_a_user_value_for_a_mandated_key_is_kept_but_the_admins_shows(
    api: ApiClient, crm_user: CrmUser
) -> None:
    link(crm_user)
    admin_set(unknownContactAction={"value": "createPlaceholder"})

    saved = api.post("/user/settings", {"userSettings": {"unknownContactAction": {"value": "prompt"}}})

    assert saved.json() == {"userSettings": {"unknownContactAction": {"value": "prompt"}}}
    assert api.get("/user/settings").json()["unknownContactAction"]["value"] == "createPlaceholder"


def test_post_without_a_jwt(anon: ApiClient, db) -> None:
    response = anon.post("/user/settings", {"userSettings": {"autoLogCall": {"value": True}}})

    assert response.status_code == 400
    assert response.content.decode() == AUTHORIZE


# --- GET /user/preloadSettings -------------------------------------------------------------


def test_preload_needs_a_token_or_an_account(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    response = anon.get("/user/preloadSettings")

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Cannot find rc user login"


def test_preload_by_rc_account_id(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    admin_set(
        autoLogCall={"value": True}, unknownContactAction={"value": "createPlaceholder", "customizable": True}
    )
    admin_set(OTHER_ACCOUNT_ID, autoLogSMS={"value": True})

    response = anon.get("/user/preloadSettings", {"rcAccountId": account_key()})

    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["userSettings"]
    settings = body["userSettings"]
    assert settings["autoLogCall"] == {"value": True, "customizable": False}
    assert settings["unknownContactAction"]["value"] == "createPlaceholder"
    assert settings["unknownContactAction"]["customizable"] is True
    assert "autoLogSMS" not in settings
    assert rc_api.authorizations == []


@pytest.mark.parametrize("admin", [True, False])
def test_preload_by_ringcentral_token(rc_api: FakeRingCentral, anon: ApiClient, admin: bool) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=admin)
    admin_set(autoLogCall={"value": True})
    by_account = anon.get("/user/preloadSettings", {"rcAccountId": account_key()}).json()

    response = anon.get("/user/preloadSettings", headers={"X-RC-Access-Token": f"Bearer {USER_TOKEN}"})

    assert response.status_code == 200
    assert response.json() == by_account
    assert response.json()["userSettings"]["autoLogCall"] == {"value": True, "customizable": False}
    assert rc_api.authorizations == [f"Bearer {USER_TOKEN}"]
    assert_no_token(response, USER_TOKEN)


def test_preload_for_an_account_without_settings(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    response = anon.get("/user/preloadSettings", {"rcAccountId": account_key("55555555")})

    assert response.status_code == 200
    assert response.json() == {"userSettings": RULE_DEFAULTS}


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ({"status": 401}, "Request failed with status code 401"),
        ({"status": 500}, None),
        ({"exc": requests.exceptions.ConnectionError("refused")}, None),
        ({"exc": requests.exceptions.ReadTimeout("timed out")}, None),
    ],
    ids=["401", "500", "connection-error", "timeout"],
)
def test_preload_with_a_failing_ringcentral(
    rc_api: FakeRingCentral, anon: ApiClient, failure: dict, message: str | None
) -> None:
    rc_api.fail(**failure)

    response = anon.get("/user/preloadSettings", headers={"X-RC-Access-Token": USER_TOKEN})

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert body["error"] == message
    assert_no_token(response, USER_TOKEN)
