"""Login, logout, credential checks and the App Connect JWT (appconnect-api.md §1.2, §2.4, §2.6, §2.7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.utils import timezone

from connector.models import BuiltinApiKey, BuiltinCrmUser, CrmUser
from logs.models import CallLog
from tests.conftest import ApiClient, call_body
from tests.factories import CrmUserFactory

AUTHORIZE = "Please go to Settings and authorize CRM platform"
FOURTEEN_DAYS = 14 * 24 * 3600
SEVEN_DAYS = 7 * 24 * 3600
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def sign(claims: dict[str, Any], secret: str | None = None) -> str:
    return jwt.encode(claims, secret or settings.APP_SERVER_SECRET_KEY, algorithm="HS256")


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, settings.APP_SERVER_SECRET_KEY, algorithms=["HS256"])


def text_of(response: HttpResponse) -> str:
    """The body of a plain-text answer (asserting that it is plain text)."""
    assert response["Content-Type"].startswith("text/plain"), response["Content-Type"]
    return response.content.decode()


# --- POST /apiKeyLogin -----------------------------------------------------------------


def test_api_key_login_issues_a_14_day_jwt_naming_the_user(anon: ApiClient, builtin_api_key: str) -> None:
    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"jwtToken", "name", "returnMessage"}
    assert body["name"] == "alice"
    assert body["returnMessage"] == {
        "message": "Connected to the built-in CRM.",
        "messageType": "success",
        "ttl": 1000,
    }
    user_id = f"{BuiltinCrmUser.objects.get(name='alice').pk}-builtin"
    claims = claims_of(body["jwtToken"])
    assert claims["id"] == user_id
    assert claims["platform"] == "builtin"
    assert claims["exp"] - claims["iat"] == FOURTEEN_DAYS
    assert jwt.get_unverified_header(body["jwtToken"])["alg"] == "HS256"
    user = CrmUser.objects.get(pk=user_id)
    assert (user.platform, user.name, user.access_token, user.user_settings) == (
        "builtin",
        "alice",
        builtin_api_key,
        {},
    )


def test_api_key_login_persists_the_rc_extension_id_header(anon: ApiClient, builtin_api_key: str) -> None:
    response = anon.post(
        "/apiKeyLogin",
        {"platform": "builtin", "apiKey": builtin_api_key},
        headers={"rc-extension-id": "hashed-ext-42"},
    )

    assert response.status_code == 200
    user = CrmUser.objects.get(pk=claims_of(response.json()["jwtToken"])["id"])
    assert user.hashed_rc_extension_id == "hashed-ext-42"


@pytest.mark.parametrize("body", [{}, {"apiKey": "k"}, {"platform": ""}, {"platform": None, "apiKey": "k"}])
def test_api_key_login_without_platform_is_a_400_text(db, anon: ApiClient, body: dict[str, Any]) -> None:
    response = anon.post("/apiKeyLogin", body)

    assert response.status_code == 400
    assert text_of(response) == "Missing platform name"
    assert CrmUser.objects.count() == 0


def test_api_key_login_to_an_unknown_platform_is_a_400_error_object(
    anon: ApiClient, builtin_api_key: str
) -> None:
    response = anon.post("/apiKeyLogin", {"platform": "x", "apiKey": builtin_api_key})

    assert response.status_code == 400
    assert response.json() == {"error": "Connector not found for platform: x"}
    assert CrmUser.objects.count() == 0


@pytest.mark.parametrize("api_key", ["bcrm_not-a-real-key", ""])
def test_api_key_login_with_a_bad_key_answers_the_connector_message(
    anon: ApiClient, builtin_api_key: str, api_key: str
) -> None:
    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": api_key})

    assert response.status_code == 400
    assert response.json() == {
        "returnMessage": {
            "message": "Invalid API key for the built-in CRM.",
            "messageType": "warning",
            "ttl": 3000,
        }
    }
    assert CrmUser.objects.count() == 0


def test_api_key_login_with_a_revoked_key_is_refused(anon: ApiClient, builtin_api_key: str) -> None:
    BuiltinApiKey.objects.update(revoked_at=timezone.now())

    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key})

    assert response.status_code == 400
    assert response.json()["returnMessage"]["message"] == "Invalid API key for the built-in CRM."


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"apiKey": 12345}, "apiKey"),
        ({"platform": ["builtin"]}, "platform"),
        ({"platform": 7}, "platform"),
        ({"additionalInfo": "not an object"}, "additionalInfo"),
        ({"hostname": {"a": 1}}, "hostname"),
        ({"isPrivate": "maybe"}, "isPrivate"),
    ],
)
def test_api_key_login_with_bad_types_is_a_400_naming_the_field(
    anon: ApiClient, builtin_api_key: str, extra: dict[str, Any], field: str
) -> None:
    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key, **extra})

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["successful"] is False
    assert list(body["errors"]) == [field]
    assert body["returnMessage"]["messageType"] == "warning"
    assert field in body["returnMessage"]["message"]
    assert CrmUser.objects.count() == 0


def test_re_login_keeps_the_user_row_and_its_settings(
    anon: ApiClient, crm_user: CrmUser, builtin_api_key: str
) -> None:
    crm_user.user_settings = {"addCallLogNote": {"value": False}}
    crm_user.save()

    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key})

    assert response.status_code == 200
    assert claims_of(response.json()["jwtToken"])["id"] == crm_user.pk
    assert CrmUser.objects.count() == 1
    crm_user.refresh_from_db()
    assert crm_user.user_settings == {"addCallLogNote": {"value": False}}
    assert crm_user.access_token == builtin_api_key


def test_re_login_after_logout_reconnects_the_user(
    api: ApiClient, anon: ApiClient, crm_user: CrmUser, builtin_api_key: str
) -> None:
    api.post("/unAuthorize")

    response = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key})

    assert response.status_code == 200
    crm_user.refresh_from_db()
    assert crm_user.access_token == builtin_api_key


def test_the_stored_api_key_is_encrypted_in_the_database(crm_user: CrmUser, builtin_api_key: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT access_token FROM {CrmUser._meta.db_table} WHERE id = %s",
            [crm_user.pk],
        )
        (raw,) = cursor.fetchone()

    assert raw
    assert builtin_api_key not in raw
    assert builtin_api_key.removeprefix("bcrm_") not in raw
    assert CrmUser.objects.get(pk=crm_user.pk).access_token == builtin_api_key


# --- GET /authValidation ---------------------------------------------------------------


def test_auth_validation_with_working_credentials(api: ApiClient) -> None:
    response = api.get("/authValidation")

    assert response.status_code == 200
    assert response.json() == {
        "successful": True,
        "returnMessage": {"message": "Authentication is valid.", "messageType": "success", "ttl": 1000},
    }


def test_auth_validation_with_a_key_revoked_in_the_crm(api: ApiClient, crm_user: CrmUser) -> None:
    BuiltinApiKey.objects.update(revoked_at=timezone.now())

    response = api.get("/authValidation")

    assert response.status_code == 200
    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "The built-in CRM API key is no longer valid. Please connect again.",
            "messageType": "warning",
            "ttl": 5000,
        },
    }


def test_auth_validation_by_query_token(anon: ApiClient, jwt_token: str) -> None:
    response = anon.get("/authValidation", {"jwtToken": jwt_token})

    assert response.status_code == 200
    assert response.json()["successful"] is True


# --- POST /unAuthorize -----------------------------------------------------------------


def test_unauthorize_answers_the_connector_message_and_forgets_the_credentials(
    api: ApiClient, crm_user: CrmUser
) -> None:
    crm_user.user_settings = {"addCallLogNote": {"value": False}}
    crm_user.save()

    response = api.post("/unAuthorize")

    assert response.status_code == 200
    assert response.json() == {
        "message": "Logged out of the built-in CRM.",
        "messageType": "success",
        "ttl": 1000,
    }
    crm_user.refresh_from_db()
    assert not crm_user.access_token
    assert not crm_user.refresh_token
    assert crm_user.token_expiry is None
    # The row and the user's own settings stay, as App Connect keeps them.
    assert crm_user.user_settings == {"addCallLogNote": {"value": False}}


def test_after_unauthorize_the_crm_routes_answer_as_for_a_disconnected_user(
    api: ApiClient, crm_user: CrmUser
) -> None:
    api.post("/unAuthorize")

    lookup = api.get("/contact", {"phoneNumber": "+14155550100"})
    assert lookup.status_code == 200
    assert lookup.json() == {
        "successful": False,
        "returnMessage": {"message": "Contact not found", "messageType": "warning", "ttl": 5000},
    }
    validation = api.get("/authValidation")
    assert validation.status_code == 200
    assert validation.json() == {"successful": False}
    logged = api.post("/callLog", call_body(contact_id="1"))
    assert logged.json() == {
        "successful": False,
        "returnMessage": {"message": "User not found", "messageType": "warning", "ttl": 5000},
    }
    assert CallLog.objects.count() == 0


# --- the JWT: where it is read, and what each route answers without a usable one -------

CONTACT_BODY = {"phoneNumber": "+14155550100", "newContactName": "Jane"}
MESSAGE_BODY = {
    "logInfo": {
        "messages": [{"id": "m1", "type": "SMS", "direction": "Inbound", "subject": "hi"}],
        "correspondents": [{"phoneNumber": "+14155550100"}],
    },
    "contactId": "1",
}
# (method, path, query or body, text for an invalid query token)
ROUTES = [
    ("get", "/contact", {"phoneNumber": "+14155550100"}, AUTHORIZE),
    ("post", "/contact", CONTACT_BODY, AUTHORIZE),
    ("get", "/custom/contact/search", {"name": "Jane"}, "Invalid JWT token"),
    ("post", "/callLog", call_body(contact_id="1"), AUTHORIZE),
    ("get", "/callLog", {"sessionIds": "session-1"}, AUTHORIZE),
    ("patch", "/callLog", {"sessionId": "session-1", "note": "n"}, AUTHORIZE),
    ("post", "/callLog/cacheNote", {"sessionId": "session-1", "note": "n"}, AUTHORIZE),
    ("post", "/messageLog", MESSAGE_BODY, AUTHORIZE),
    ("get", "/authValidation", {}, "Invalid JWT token"),
    ("post", "/unAuthorize", {}, "User not found"),
    ("get", "/user/settings", {}, AUTHORIZE),
    ("post", "/user/settings", {"userSettings": {}}, "Unknown platform"),
]
ROUTE_IDS = [f"{method.upper()} {path}" for method, path, *_ in ROUTES]


def send(
    client: ApiClient, method: str, path: str, data: dict[str, Any], query: dict[str, str] | None = None
):
    """Send `data` as the query of a GET, else as the JSON body (with `query` in the URL)."""
    if method == "get":
        return client.get(path, {**data, **(query or {})})
    url = f"{path}?jwtToken={query['jwtToken']}" if query else path
    return getattr(client, method)(url, data)


def expired_token(user_id: str) -> str:
    now = int(datetime.now(UTC).timestamp())
    return sign({"id": user_id, "platform": "builtin", "iat": now - FOURTEEN_DAYS - 60, "exp": now - 60})


@pytest.mark.parametrize(("method", "path", "data", "invalid_text"), ROUTES, ids=ROUTE_IDS)
def test_no_token_is_a_400_text_asking_to_authorize(
    db, anon: ApiClient, method: str, path: str, data: dict[str, Any], invalid_text: str
) -> None:
    response = send(anon, method, path, data)

    assert response.status_code == 400
    assert text_of(response) == AUTHORIZE


@pytest.mark.parametrize(("method", "path", "data", "invalid_text"), ROUTES, ids=ROUTE_IDS)
@pytest.mark.parametrize("forgery", ["not-a-jwt", "other-secret", "expired"])
def test_an_invalid_query_token_gets_the_route_s_own_text(
    anon: ApiClient,
    crm_user: CrmUser,
    method: str,
    path: str,
    data: dict[str, Any],
    invalid_text: str,
    forgery: str,
) -> None:
    token = {
        "not-a-jwt": "not-a-jwt",
        "other-secret": sign({"id": crm_user.pk, "platform": "builtin"}, secret="x" * 40),
        "expired": expired_token(crm_user.pk),
    }[forgery]

    response = send(anon, method, path, data, query={"jwtToken": token})

    assert response.status_code == 400
    assert text_of(response) == invalid_text
    assert CallLog.objects.count() == 0


@pytest.mark.parametrize(("method", "path", "data", "invalid_text"), ROUTES, ids=ROUTE_IDS)
def test_an_invalid_bearer_token_counts_as_no_token(
    crm_user: CrmUser, method: str, path: str, data: dict[str, Any], invalid_text: str
) -> None:
    response = send(ApiClient(expired_token(crm_user.pk)), method, path, data)

    assert response.status_code == 400
    assert text_of(response) == AUTHORIZE


def test_an_invalid_bearer_token_hides_a_valid_query_token(db, jwt_token: str) -> None:
    # The peer deletes the query token when the Bearer header does not verify.
    response = ApiClient("forged.bearer.token").get("/authValidation", {"jwtToken": jwt_token})

    assert response.status_code == 400
    assert text_of(response) == AUTHORIZE


def test_a_valid_bearer_token_wins_over_a_forged_query_token(api: ApiClient) -> None:
    response = api.get("/authValidation", {"jwtToken": "forged"})

    assert response.status_code == 200
    assert response.json()["successful"] is True


def test_the_bearer_scheme_is_case_insensitive(db, jwt_token: str) -> None:
    response = ApiClient().client.get("/authValidation", HTTP_AUTHORIZATION=f"bearer {jwt_token}")

    assert response.status_code == 200
    assert response.json()["successful"] is True


# Valid token naming a user that does not exist: what each route answers (§1.2 matrix).
MISSING_USER = [
    (
        "get",
        "/contact",
        {"phoneNumber": "+14155550100"},
        200,
        {
            "successful": False,
            "returnMessage": {"message": "Contact not found", "messageType": "warning", "ttl": 5000},
        },
    ),
    ("post", "/contact", CONTACT_BODY, 200, {"successful": False}),
    (
        "get",
        "/custom/contact/search",
        {"name": "Jane"},
        200,
        {
            "successful": False,
            "returnMessage": {
                "message": "No contact found with name Jane",
                "messageType": "warning",
                "ttl": 5000,
            },
        },
    ),
    (
        "post",
        "/callLog",
        call_body(contact_id="1"),
        200,
        {
            "successful": False,
            "returnMessage": {"message": "User not found", "messageType": "warning", "ttl": 5000},
        },
    ),
    ("get", "/callLog", {"sessionIds": "session-1"}, 200, {"successful": False}),
    ("patch", "/callLog", {"sessionId": "session-1", "note": "n"}, 200, {"successful": False}),
    (
        "post",
        "/callLog/cacheNote",
        {"sessionId": "session-1", "note": "n"},
        200,
        {"successful": True, "returnMessage": "Note cache saved"},
    ),
    (
        "post",
        "/messageLog",
        MESSAGE_BODY,
        200,
        {
            "successful": False,
            "returnMessage": {"message": "Contact not found", "messageType": "warning", "ttl": 5000},
        },
    ),
    ("get", "/authValidation", {}, 200, {"successful": False}),
    ("post", "/unAuthorize", {}, 400, "User not found"),
    ("get", "/user/settings", {}, 400, "User not found"),
    ("post", "/user/settings", {"userSettings": {}}, 400, "User not found"),
]


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "expected"),
    MISSING_USER,
    ids=[f"{method.upper()} {path}" for method, path, *_ in MISSING_USER],
)
def test_a_valid_token_for_a_missing_user(
    db, method: str, path: str, data: dict[str, Any], status: int, expected: Any
) -> None:
    client = ApiClient(sign({"id": "404-builtin", "platform": "builtin"}))

    response = send(client, method, path, data)

    assert response.status_code == status
    if isinstance(expected, str):
        assert text_of(response) == expected
    else:
        assert response.json() == expected
    assert CallLog.objects.count() == 0


DISCONNECTED = [case for case in MISSING_USER if case[1] not in ("/unAuthorize", "/user/settings")]


@pytest.mark.parametrize(
    ("method", "path", "data", "status", "expected"),
    DISCONNECTED,
    ids=[f"{method.upper()} {path}" for method, path, *_ in DISCONNECTED],
)
def test_a_valid_token_for_a_user_without_credentials(
    db, method: str, path: str, data: dict[str, Any], status: int, expected: Any
) -> None:
    user = CrmUserFactory(access_token="")
    client = ApiClient(sign({"id": user.pk, "platform": "builtin"}))

    response = send(client, method, path, data)

    assert response.status_code == status
    assert response.json() == expected
    assert CallLog.objects.count() == 0


def test_contact_routes_load_the_user_by_id_and_platform(crm_user: CrmUser) -> None:
    client = ApiClient(sign({"id": crm_user.pk, "platform": "otherplatform"}))

    response = client.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 200
    assert response.json() == {
        "successful": False,
        "returnMessage": {"message": "Contact not found", "messageType": "warning", "ttl": 5000},
    }


def test_a_token_without_exp_is_accepted_and_never_refreshed(crm_user: CrmUser) -> None:
    client = ApiClient(sign({"id": crm_user.pk, "platform": "builtin"}))

    response = client.get("/authValidation")

    assert response.status_code == 200
    assert response.json()["successful"] is True
    assert "x-refreshed-jwt-token" not in response


def test_a_token_with_extra_claims_is_accepted(crm_user: CrmUser) -> None:
    client = ApiClient(sign({"id": crm_user.pk, "platform": "builtin", "rcUserNumber": "+16505550100"}))

    assert client.get("/authValidation").json()["successful"] is True


@pytest.mark.parametrize("left", [SEVEN_DAYS, SEVEN_DAYS - 1, 60])
@pytest.mark.parametrize("where", ["bearer", "query"])
def test_a_token_with_7_days_or_less_left_is_refreshed(crm_user: CrmUser, left: int, where: str) -> None:
    with time_machine.travel(NOW, tick=False):
        now = int(NOW.timestamp())
        token = sign(
            {"id": crm_user.pk, "platform": "builtin", "iat": now + left - FOURTEEN_DAYS, "exp": now + left}
        )
        if where == "bearer":
            response = ApiClient(token).get("/authValidation")
        else:
            response = ApiClient().get("/authValidation", {"jwtToken": token})

    assert response.status_code == 200
    assert response.json()["successful"] is True
    refreshed = response["x-refreshed-jwt-token"]
    assert refreshed != token
    with time_machine.travel(NOW, tick=False):
        claims = claims_of(refreshed)
    assert claims["id"] == crm_user.pk
    assert claims["platform"] == "builtin"
    assert claims["iat"] == now
    assert claims["exp"] == now + FOURTEEN_DAYS


def test_the_refreshed_token_works(crm_user: CrmUser) -> None:
    with time_machine.travel(NOW, tick=False):
        now = int(NOW.timestamp())
        token = sign({"id": crm_user.pk, "platform": "builtin", "iat": now - SEVEN_DAYS, "exp": now + 3600})
        refreshed = ApiClient(token).get("/authValidation")["x-refreshed-jwt-token"]
    with time_machine.travel(NOW + timedelta(days=10), tick=False):
        # The old token has expired by now; the refreshed one has four days left.
        assert ApiClient(token).get("/authValidation").status_code == 400
        response = ApiClient(refreshed).get("/authValidation")

    assert response.status_code == 200
    assert response.json()["successful"] is True


def test_a_token_with_more_than_7_days_left_is_not_refreshed(crm_user: CrmUser) -> None:
    with time_machine.travel(NOW, tick=False):
        now = int(NOW.timestamp())
        token = sign({"id": crm_user.pk, "platform": "builtin", "iat": now, "exp": now + SEVEN_DAYS + 1})
        response = ApiClient(token).get("/authValidation")

    assert response.status_code == 200
    assert "x-refreshed-jwt-token" not in response


def test_a_freshly_issued_token_is_not_refreshed(api: ApiClient) -> None:
    response = api.get("/user/settings")

    assert response.status_code == 200
    assert "x-refreshed-jwt-token" not in response


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "/isAlive", {}),
        ("get", "/crmManifest", {}),
        ("get", "/contact", {"phoneNumber": "not a number"}),
        ("post", "/callLog", {"logInfo": "nope"}),
        ("get", "/user/settings", {}),
    ],
)
def test_the_refresh_happens_on_every_route_whatever_the_outcome(
    crm_user: CrmUser, method: str, path: str, data: dict[str, Any]
) -> None:
    with time_machine.travel(NOW, tick=False):
        now = int(NOW.timestamp())
        token = sign({"id": crm_user.pk, "platform": "builtin", "iat": now - SEVEN_DAYS, "exp": now + 3600})
        response = send(ApiClient(token), method, path, data)
        claims = claims_of(response["x-refreshed-jwt-token"])

    assert (claims["id"], claims["platform"]) == (crm_user.pk, "builtin")


def test_an_expired_token_is_not_refreshed(crm_user: CrmUser) -> None:
    response = ApiClient().get("/authValidation", {"jwtToken": expired_token(crm_user.pk)})

    assert response.status_code == 400
    assert "x-refreshed-jwt-token" not in response
