"""POST and GET /admin/settings: a RingCentral account admin's settings (appconnect-api.md §2.17).

POST needs only the RingCentral admin token; GET needs the App Connect JWT too. Every
value is checked and nothing is stored unless all of it is valid; GET never shows a token.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from django.utils.dateparse import parse_datetime

from connector.api.authentication import jwt_encode
from rules.models import Account, RuleSetting
from rules.services import account_ensure
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
    stored_rows,
)

pytestmark = pytest.mark.django_db

AUTHORIZE = "Please go to Settings and authorize CRM platform"

ADMIN_SETTINGS = {
    "unknownContactAction": {"value": "createPlaceholder", "customizable": False},
    "defaultPlaceholderName": {"value": "Caller {last4}"},
    "placeholderContactType": {"value": "Lead", "customizable": True},
    "autoLogCall": {"value": True, "customizable": True},
    "addCallLogNote": {"value": False, "customizable": False, "isRemoved": True},
}
ADMIN_ROWS = {
    "unknownContactAction": ("createPlaceholder", False, False),
    "defaultPlaceholderName": ("Caller {last4}", False, False),
    "placeholderContactType": ("Lead", True, False),
    "autoLogCall": (True, True, False),
    "addCallLogNote": (False, False, True),
}


def account() -> Account:
    return Account.objects.get(rc_account_id=ACCOUNT_ID)


# --- POST: who may ---------------------------------------------------------------------------


def test_an_admin_saves_the_accounts_settings(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN, account_id=ACCOUNT_ID, admin=True)

    response = admin_post(anon, ADMIN_SETTINGS)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response.content.decode() == "Admin settings updated"
    assert rc_api.authorizations == [f"Bearer {ADMIN_TOKEN}"]
    saved = account()
    assert saved.account_key == account_key(ACCOUNT_ID)
    # `customizable` absent -> False (the admin's value is mandated), as App Connect merges it.
    assert stored_rows(saved) == ADMIN_ROWS
    assert RuleSetting.objects.filter(account__isnull=True).count() == 0


def test_a_second_post_replaces_the_whole_map(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, ADMIN_SETTINGS)

    response = admin_post(
        anon,
        {
            "unknownContactAction": {"value": "prompt", "customizable": True},
            "multipleMatchPolicy": {"value": "alphabetical"},
        },
    )

    assert response.status_code == 200
    assert stored_rows(account()) == {
        "unknownContactAction": ("prompt", True, False),
        "multipleMatchPolicy": ("alphabetical", False, False),
    }
    assert Account.objects.count() == 1


def test_an_empty_map_clears_the_accounts_settings(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, ADMIN_SETTINGS)

    response = admin_post(anon, {})

    assert response.status_code == 200
    assert stored_rows(account()) == {}


def test_each_change_is_kept_in_the_rows_history(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, {"autoLogCall": {"value": True}})
    admin_post(anon, {"autoLogCall": {"value": False}})
    admin_post(anon, {})

    history = RuleSetting.history.filter(key="autoLogCall").order_by("history_id")
    assert [(h.history_type, h.value) for h in history] == [("+", True), ("~", False), ("-", False)]


def test_the_admin_only_writes_their_own_account(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN, account_id=ACCOUNT_ID)
    rc_api(token=OTHER_TOKEN, account_id=OTHER_ACCOUNT_ID)
    RuleSetting.objects.create(key="autoLogCall", value=False)  # site-wide
    admin_post(anon, {"autoLogCall": {"value": True}}, token=OTHER_TOKEN)

    admin_post(anon, {"autoLogSMS": {"value": True}}, token=ADMIN_TOKEN)

    other = Account.objects.get(rc_account_id=OTHER_ACCOUNT_ID)
    assert stored_rows(other) == {"autoLogCall": (True, False, False)}
    assert stored_rows(account()) == {"autoLogSMS": (True, False, False)}
    assert RuleSetting.objects.get(account__isnull=True).value is False


def test_plugin_settings_are_accepted(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    plugin = {"value": {"config": {"apiUrl": {"value": "https://example.com", "customizable": False}}}}

    response = admin_post(anon, {"plugin_abc": plugin})

    assert response.status_code == 200
    assert stored_rows(account()) == {"plugin_abc": (plugin["value"], False, False)}


@pytest.mark.parametrize("where", ["header", "header-bearer", "header-bearer-lower", "query", "body"])
def test_the_ringcentral_token_is_read_from_every_place(
    rc_api: FakeRingCentral, anon: ApiClient, where: str
) -> None:
    rc_api(token=ADMIN_TOKEN)
    body: dict[str, Any] = {"adminSettings": {"userSettings": {"autoLogCall": {"value": True}}}}
    path, headers = "/admin/settings", None
    if where == "header":
        headers = {"X-RC-Access-Token": ADMIN_TOKEN}
    elif where == "header-bearer":
        headers = {"X-RC-Access-Token": f"Bearer {ADMIN_TOKEN}"}
    elif where == "header-bearer-lower":
        headers = {"x-rc-access-token": f"bearer {ADMIN_TOKEN}"}
    elif where == "query":
        path = f"/admin/settings?rcAccessToken={ADMIN_TOKEN}"
    else:
        body["rcAccessToken"] = ADMIN_TOKEN

    response = anon.post(path, body, headers=headers)

    assert response.status_code == 200, response.content
    assert rc_api.authorizations == [f"Bearer {ADMIN_TOKEN}"]
    assert stored_rows(account()) == {"autoLogCall": (True, False, False)}


def test_no_app_connect_jwt_is_needed_or_read(rc_api: FakeRingCentral) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = admin_post(ApiClient("not-a-jwt"), {"autoLogCall": {"value": True}})

    assert response.status_code == 200
    assert stored_rows(account()) == {"autoLogCall": (True, False, False)}


def test_without_a_ringcentral_token_nothing_is_stored(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    response = admin_post(anon, ADMIN_SETTINGS, token=None)

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    assert Account.objects.count() == 0
    assert RuleSetting.objects.count() == 0


def test_a_token_ringcentral_refuses_is_a_400(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api.fail(status=401)

    response = admin_post(anon, ADMIN_SETTINGS)

    assert response.status_code == 400
    assert response.json() == {"error": "Request failed with status code 401"}
    assert Account.objects.count() == 0
    assert RuleSetting.objects.count() == 0


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 503},
        {"exc": requests.exceptions.ConnectionError("connection refused")},
        {"exc": requests.exceptions.ConnectTimeout("connect timed out")},
        {"exc": requests.exceptions.ReadTimeout("read timed out")},
        {"status": 200, "body": {"unexpected": True}},
    ],
    ids=["500", "503", "connection-error", "connect-timeout", "read-timeout", "bad-shape"],
)
def test_a_failing_ringcentral_is_a_400_error_never_a_crash(
    rc_api: FakeRingCentral, anon: ApiClient, failure: dict
) -> None:
    rc_api.fail(**failure)

    response = admin_post(anon, ADMIN_SETTINGS)

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    assert_no_token(response, ADMIN_TOKEN)
    assert Account.objects.count() == 0
    assert RuleSetting.objects.count() == 0


def test_a_non_admin_is_refused_and_nothing_is_stored(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=USER_TOKEN, admin=False)

    response = admin_post(anon, ADMIN_SETTINGS, token=USER_TOKEN)

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Admin validation failed"
    assert Account.objects.count() == 0
    assert RuleSetting.objects.count() == 0


def test_a_non_admin_cannot_change_what_an_admin_set(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN, admin=True)
    rc_api(token=USER_TOKEN, admin=False)
    admin_post(anon, ADMIN_SETTINGS)

    response = admin_post(anon, {}, token=USER_TOKEN)

    assert response.status_code == 403
    assert stored_rows(account()) == ADMIN_ROWS


# --- POST: what may be stored --------------------------------------------------------------

BAD_SETTINGS = [
    ({"bogusKey": {"value": 1}}, "adminSettings.userSettings.bogusKey"),
    ({"unknownContactAction": {"value": "maybe"}}, "adminSettings.userSettings.unknownContactAction.value"),
    ({"unknownContactAction": {"value": None}}, "adminSettings.userSettings.unknownContactAction.value"),
    (
        {"placeholderNameSource": {"value": "callerId"}},
        "adminSettings.userSettings.placeholderNameSource.value",
    ),
    ({"multipleMatchPolicy": {"value": "newest"}}, "adminSettings.userSettings.multipleMatchPolicy.value"),
    (
        {"defaultPlaceholderName": {"value": "{bogus}"}},
        "adminSettings.userSettings.defaultPlaceholderName.value",
    ),
    (
        {"defaultPlaceholderName": {"value": "Caller {last4"}},
        "adminSettings.userSettings.defaultPlaceholderName.value",
    ),
    ({"defaultPlaceholderName": {"value": "   "}}, "adminSettings.userSettings.defaultPlaceholderName.value"),
    (
        {"defaultPlaceholderName": {"value": "x" * 121}},
        "adminSettings.userSettings.defaultPlaceholderName.value",
    ),
    ({"defaultPlaceholderName": {"value": 42}}, "adminSettings.userSettings.defaultPlaceholderName.value"),
    (
        {"placeholderContactType": {"value": "Spaceship"}},
        "adminSettings.userSettings.placeholderContactType.value",
    ),
    ({"autoLogCall": {"value": "true"}}, "adminSettings.userSettings.autoLogCall.value"),
    ({"autoLogCall": {"value": 1}}, "adminSettings.userSettings.autoLogCall.value"),
    (
        {"autoLogCall": {"value": True, "customizable": "yes"}},
        "adminSettings.userSettings.autoLogCall.customizable",
    ),
    ({"autoLogCall": {"value": True, "isRemoved": 1}}, "adminSettings.userSettings.autoLogCall.isRemoved"),
    ({"autoLogCall": True}, "adminSettings.userSettings.autoLogCall"),
    ({"clickToDialUrls": {"value": [1, 2]}}, "adminSettings.userSettings.clickToDialUrls.value"),
    (
        {"autoLogCall": {"value": True}, "unknownContactAction": {"value": "maybe"}},
        "adminSettings.userSettings.unknownContactAction.value",
    ),
]


@pytest.mark.parametrize(
    ("settings", "field"), BAD_SETTINGS, ids=[field.rsplit("Settings.", 1)[1] for _, field in BAD_SETTINGS]
)
def test_bad_settings_are_refused_and_earlier_ones_stay(
    rc_api: FakeRingCentral, anon: ApiClient, settings: dict, field: str
) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, ADMIN_SETTINGS)
    history_before = RuleSetting.history.count()

    response = admin_post(anon, settings)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["successful"] is False
    assert field in body["errors"], body["errors"]
    assert field in body["returnMessage"]["message"]
    assert stored_rows(account()) == ADMIN_ROWS
    assert RuleSetting.history.count() == history_before


@pytest.mark.parametrize(
    ("settings", "field"), BAD_SETTINGS[:4], ids=["unknown-key", "bad-choice", "null", "bad-source"]
)
def test_bad_settings_from_a_new_accounts_admin_store_nothing(
    rc_api: FakeRingCentral, anon: ApiClient, settings: dict, field: str
) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = admin_post(anon, settings)

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert RuleSetting.objects.count() == 0
    assert Account.objects.count() == 0


def test_every_bad_key_is_named(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = admin_post(
        anon,
        {
            "bogusKey": {"value": 1},
            "multipleMatchPolicy": {"value": "newest"},
            "autoLogSMS": {"value": "no"},
            "autoLogCall": {"value": True},
        },
    )

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {
        "adminSettings.userSettings.bogusKey",
        "adminSettings.userSettings.multipleMatchPolicy.value",
        "adminSettings.userSettings.autoLogSMS.value",
    }
    assert RuleSetting.objects.count() == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"userMappings": [{"crmUserId": "1", "rcExtensionId": "101"}]},
        {"customAdapter": {}},
        {"adminAccessToken": "x"},
    ],
    ids=["userMappings", "customAdapter", "adminAccessToken"],
)
def test_other_admin_config_columns_are_refused(
    rc_api: FakeRingCentral, anon: ApiClient, extra: dict
) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, ADMIN_SETTINGS)
    (column,) = extra

    response = admin_post(anon, {"autoLogCall": {"value": False}}, extra=extra)

    assert response.status_code == 400
    assert f"adminSettings.{column}" in response.json()["errors"]
    assert stored_rows(account()) == ADMIN_ROWS


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "adminSettings"),
        ({"adminSettings": None}, "adminSettings"),
        ({"adminSettings": {}}, "adminSettings.userSettings"),
        ({"adminSettings": {"userSettings": ["autoLogCall"]}}, "adminSettings.userSettings"),
        ({"adminSettings": {"userSettings": "autoLogCall"}}, "adminSettings.userSettings"),
        ({"adminSettings": {"userSettings": {"": {"value": 1}}}}, "adminSettings.userSettings"),
        ([], "body"),
    ],
)
def test_a_malformed_body_is_refused(rc_api: FakeRingCentral, anon: ApiClient, body: Any, field: str) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = anon.post("/admin/settings", body, headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert RuleSetting.objects.count() == 0


def test_malformed_json_is_refused(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = anon.post("/admin/settings", raw="{not json", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert "body" in response.json()["errors"]
    assert RuleSetting.objects.count() == 0


# --- GET -----------------------------------------------------------------------------------


def test_get_needs_the_app_connect_jwt(rc_api: FakeRingCentral, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = anon.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == AUTHORIZE
    assert rc_api.authorizations == []


def test_get_for_a_user_that_does_not_exist(rc_api: FakeRingCentral) -> None:
    rc_api(token=ADMIN_TOKEN)
    client = ApiClient(jwt_encode(user_id="nobody-builtin", platform="builtin"))

    response = client.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert response.content.decode() == "User not found"


def test_get_needs_a_ringcentral_token(rc_api: FakeRingCentral, api: ApiClient) -> None:
    response = api.get("/admin/settings")

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]


def test_get_with_a_token_ringcentral_refuses(rc_api: FakeRingCentral, api: ApiClient) -> None:
    rc_api.fail(status=401)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert response.json() == {"error": "Request failed with status code 401"}


@pytest.mark.parametrize(
    "failure",
    [{"status": 502}, {"exc": requests.exceptions.ConnectTimeout("timed out")}],
    ids=["502", "timeout"],
)
def test_get_with_ringcentral_down(rc_api: FakeRingCentral, api: ApiClient, failure: dict) -> None:
    rc_api.fail(**failure)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 400
    assert list(response.json()) == ["error"]


def test_get_by_a_non_admin_is_refused(rc_api: FakeRingCentral, api: ApiClient) -> None:
    rc_api(token=USER_TOKEN, admin=False)
    account_ensure(rc_account_id=ACCOUNT_ID)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": USER_TOKEN})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode() == "Admin validation failed"


def test_get_before_any_settings(rc_api: FakeRingCentral, api: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 200
    assert response.json() == {"customConnector": None, "userSettings": {}}


def test_get_for_an_account_linked_by_login_with_no_settings(rc_api: FakeRingCentral, api: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    account_ensure(rc_account_id=ACCOUNT_ID)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": ADMIN_TOKEN})

    assert response.status_code == 200
    assert response.json()["userSettings"] == {}


def test_get_answers_what_the_admin_stored_and_never_a_token(
    rc_api: FakeRingCentral, api: ApiClient, anon: ApiClient
) -> None:
    rc_api(token=ADMIN_TOKEN, account_id=ACCOUNT_ID)
    rc_api(token=OTHER_TOKEN, account_id=OTHER_ACCOUNT_ID)
    RuleSetting.objects.create(key="autoLogSMS", value=True)  # site-wide: not the account's
    admin_post(anon, {"multipleMatchPolicy": {"value": "lastUpdated"}}, token=OTHER_TOKEN)
    posted = admin_post(anon, ADMIN_SETTINGS)

    response = api.get("/admin/settings", headers={"X-RC-Access-Token": f"Bearer {ADMIN_TOKEN}"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"id", "userSettings", "createdAt", "updatedAt"}
    assert body["id"] == account_key(ACCOUNT_ID)
    assert parse_datetime(body["createdAt"]) is not None
    assert parse_datetime(body["updatedAt"]) is not None
    settings = body["userSettings"]
    assert set(settings) == set(ADMIN_SETTINGS)
    for key, entry in ADMIN_SETTINGS.items():
        expected = {"customizable": False, **entry}
        assert {k: settings[key].get(k) for k in expected} == expected, key
    assert not settings["autoLogCall"].get("isRemoved")
    for each in (posted, response):
        assert_no_token(each, ADMIN_TOKEN, OTHER_TOKEN)


def test_get_with_the_token_in_the_query(rc_api: FakeRingCentral, api: ApiClient, anon: ApiClient) -> None:
    rc_api(token=ADMIN_TOKEN)
    admin_post(anon, {"autoLogCall": {"value": True, "customizable": True}})

    response = api.get("/admin/settings", {"rcAccessToken": ADMIN_TOKEN})

    assert response.status_code == 200
    assert response.json()["userSettings"]["autoLogCall"] == {"value": True, "customizable": True}
    assert_no_token(response, ADMIN_TOKEN)
