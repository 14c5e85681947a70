"""GET and POST /user/settings: the user's own settings map (appconnect-api.md §2.16)."""

from __future__ import annotations

from typing import Any

import pytest

from connector.models import CrmUser
from tests.conftest import ApiClient

NOTE_OFF = {"value": False, "customizable": True}
DATE_FORMAT = {"value": "MM/DD/YYYY", "defaultValue": "YYYY-MM-DD hh:mm:ss A", "options": ["MM/DD/YYYY"]}


def stored(user: CrmUser) -> dict[str, Any]:
    user.refresh_from_db()
    return user.user_settings


def merged(entry: dict[str, Any]) -> dict[str, Any]:
    """A user's entry as GET answers it when no admin mandates the key (§2.16 merge)."""
    return {"customizable": True, **{k: entry[k] for k in ("value", "defaultValue", "options") if k in entry}}


def test_a_new_user_has_no_settings_of_their_own(api: ApiClient, crm_user: CrmUser) -> None:
    response = api.get("/user/settings")

    assert response.status_code == 200
    assert "addCallLogNote" not in response.json()
    assert api.post("/user/settings", {}).json() == {"userSettings": {}}
    assert stored(crm_user) == {}


def test_saving_settings_answers_the_whole_stored_map(api: ApiClient, crm_user: CrmUser) -> None:
    response = api.post(
        "/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF, "logDateFormat": DATE_FORMAT}}
    )

    assert response.status_code == 200
    assert response.json() == {"userSettings": {"addCallLogNote": NOTE_OFF, "logDateFormat": DATE_FORMAT}}
    assert stored(crm_user) == {"addCallLogNote": NOTE_OFF, "logDateFormat": DATE_FORMAT}
    read = api.get("/user/settings").json()
    assert read["addCallLogNote"] == merged(NOTE_OFF)
    assert read["logDateFormat"] == merged(DATE_FORMAT)


def test_each_key_sent_replaces_the_stored_entry_and_others_stay(api: ApiClient, crm_user: CrmUser) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF, "logDateFormat": DATE_FORMAT}})

    response = api.post("/user/settings", {"userSettings": {"addCallLogNote": {"value": True}}})

    # Replaced as a whole: the old `customizable` is gone.
    assert response.json() == {
        "userSettings": {"addCallLogNote": {"value": True}, "logDateFormat": DATE_FORMAT}
    }
    assert stored(crm_user) == {"addCallLogNote": {"value": True}, "logDateFormat": DATE_FORMAT}


def test_setting_keys_to_remove_are_dropped(api: ApiClient, crm_user: CrmUser) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF, "logDateFormat": DATE_FORMAT}})

    response = api.post("/user/settings", {"settingKeysToRemove": ["logDateFormat", "neverStored"]})

    assert response.json() == {"userSettings": {"addCallLogNote": NOTE_OFF}}
    assert stored(crm_user) == {"addCallLogNote": NOTE_OFF}


def test_updates_and_removals_apply_together(api: ApiClient, crm_user: CrmUser) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF}})

    response = api.post(
        "/user/settings",
        {"userSettings": {"logDateFormat": DATE_FORMAT}, "settingKeysToRemove": ["addCallLogNote"]},
    )

    assert response.json() == {"userSettings": {"logDateFormat": DATE_FORMAT}}


def test_an_empty_update_answers_the_stored_map(api: ApiClient) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF}})

    response = api.post("/user/settings", {})

    assert response.status_code == 200
    assert response.json() == {"userSettings": {"addCallLogNote": NOTE_OFF}}


def test_settings_are_per_user(api: ApiClient, login) -> None:
    _, bob = login("bob")
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF}})

    assert "addCallLogNote" not in bob.get("/user/settings").json()
    assert bob.post("/user/settings", {}).json() == {"userSettings": {}}


def test_settings_are_read_by_query_token(anon: ApiClient, api: ApiClient, jwt_token: str) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF}})

    assert anon.get("/user/settings", {"jwtToken": jwt_token}).json()["addCallLogNote"] == merged(NOTE_OFF)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userSettings": ["addCallLogNote"]}, "userSettings"),
        ({"userSettings": "x"}, "userSettings"),
        ({"userSettings": {"addCallLogNote": True}}, "userSettings.addCallLogNote"),
        ({"userSettings": {"addCallLogNote": "on"}}, "userSettings.addCallLogNote"),
        ({"settingKeysToRemove": "addCallLogNote"}, "settingKeysToRemove"),
        ({"settingKeysToRemove": [1]}, "settingKeysToRemove.0"),
    ],
)
def test_a_bad_shape_is_a_400_and_changes_nothing(
    api: ApiClient, crm_user: CrmUser, body: dict[str, Any], field: str
) -> None:
    api.post("/user/settings", {"userSettings": {"addCallLogNote": NOTE_OFF}})

    response = api.post(
        "/user/settings", {**body, "settingKeysToRemove": body.get("settingKeysToRemove", ["addCallLogNote"])}
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    payload = response.json()
    assert payload["successful"] is False
    assert field in payload["errors"], payload["errors"]
    assert field in payload["returnMessage"]["message"]
    assert stored(crm_user) == {"addCallLogNote": NOTE_OFF}


@pytest.mark.parametrize("raw", ["{", "[]", '"x"'])
def test_a_body_that_is_not_a_json_object_is_a_400(api: ApiClient, crm_user: CrmUser, raw: str) -> None:
    response = api.post("/user/settings", raw=raw)

    assert response.status_code == 400
    assert "body" in response.json()["errors"]
    assert stored(crm_user) == {}
