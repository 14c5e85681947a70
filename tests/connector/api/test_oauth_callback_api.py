"""GET /oauth-callback connects a CRM user with OAuth; POST /unAuthorize revokes and forgets.

The CRM is tests/oauth_fake.py's: a token endpoint on 127.0.0.1 that knows the code
"good-code" and the OAuth apps it was told of.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import jwt
import pytest
from django.conf import settings as django_settings
from django.db import connection

from connector.api.authentication import jwt_encode
from connector.models import CrmUser, ManagedOAuthApp
from rules.models import Account
from tests.conftest import ApiClient
from tests.oauth_fake import REDIRECT_URI, OAuthTestCrm, TokenEndpoint, token_endpoint

PLATFORM = "oauthtest"
USER_ID = f"crm-user-1-{PLATFORM}"


@pytest.fixture
def endpoint(settings) -> Iterator[TokenEndpoint]:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], PLATFORM: "tests.oauth_fake.OAuthTestCrm"},
    }
    with token_endpoint() as (url, state):
        OAuthTestCrm.token_url = url
        OAuthTestCrm.user_id = "crm-user-1"
        yield state


def callback(code: str = "good-code", *, state: str = f"platform={PLATFORM}", **query: str):
    """What App Connect's client sends once the CRM's consent page redirected the browser."""
    uri = f"{REDIRECT_URI}?code={code}&state={quote(state)}"
    return ApiClient().get("/oauth-callback", {"callbackUri": uri, **query})


def test_the_code_is_exchanged_and_the_user_connected_with_encrypted_tokens(
    endpoint: TokenEndpoint, db
) -> None:
    response = callback(hostname="crm.example.test", apiUrl="https://api.example.test")

    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Olive OAuth" and body["returnMessage"] is None
    claims = jwt.decode(body["jwtToken"], django_settings.APP_SERVER_SECRET_KEY, algorithms=["HS256"])
    assert (claims["id"], claims["platform"]) == (USER_ID, PLATFORM)
    assert endpoint.exchanges == 1
    user = CrmUser.objects.get(pk=USER_ID)
    assert (user.access_token, user.refresh_token, user.hostname) == ("at-0", "rt-0", "crm.example.test")
    assert user.token_expiry is not None and user.token_refreshed_at is not None
    # get_user_info saw the new access token and the callback's other fields
    assert user.platform_additional_info == {
        "seenAccessToken": "at-0",
        "apiUrl": "https://api.example.test",
        "authMode": "oauth",
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM connector_crmuser WHERE id = %s", [USER_ID])
        assert all(value.startswith("gAAAAA") for value in cursor.fetchone())


def test_the_jwt_works_on_the_crm_routes(endpoint: TokenEndpoint, db) -> None:
    token = callback().json()["jwtToken"]

    response = ApiClient(token).get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 200
    assert response.json()["contact"][0]["id"] == "at-0"  # the call carried the new token


def test_logging_in_again_keeps_the_users_settings(endpoint: TokenEndpoint, db) -> None:
    callback()
    CrmUser.objects.filter(pk=USER_ID).update(user_settings={"k": {"value": 1}})
    endpoint.codes["second-code"] = "user-1"

    assert callback("second-code").status_code == 200

    user = CrmUser.objects.get(pk=USER_ID)
    assert user.user_settings == {"k": {"value": 1}}
    assert user.token_version == 2


@pytest.mark.parametrize(
    "state", ["platform%3Doauthtest", "fillerString,platform=oauthtest", "platform=oauthtest&hostname=h"]
)
def test_the_platform_is_read_from_the_state_as_app_connect_writes_it(
    endpoint: TokenEndpoint, db, state: str
) -> None:
    assert callback(state=state.replace("%3D", "=")).status_code == 200


def test_the_code_may_come_beside_the_callback_uri(endpoint: TokenEndpoint, db) -> None:
    uri = f"{REDIRECT_URI}?state={quote('platform=' + PLATFORM)}"

    response = ApiClient().get("/oauth-callback", {"callbackUri": uri, "code": "good-code"})

    assert response.status_code == 200 and endpoint.exchanges == 1


@pytest.mark.parametrize(
    ("query", "text"),
    [({}, "Missing callbackUri"), ({"callbackUri": "undefined"}, "Missing callbackUri")],
)
def test_no_callback_uri_is_the_peers_text(endpoint: TokenEndpoint, db, query, text) -> None:
    response = ApiClient().get("/oauth-callback", query)

    assert (response.status_code, response.content.decode()) == (400, text)


def test_no_platform_in_the_state_is_the_peers_text(endpoint: TokenEndpoint, db) -> None:
    response = ApiClient().get("/oauth-callback", {"callbackUri": f"{REDIRECT_URI}?code=good-code&state=x"})

    assert (response.status_code, response.content.decode()) == (400, "Missing platform name")


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        (
            f"{REDIRECT_URI}?code=bad-code&state=platform%3D{PLATFORM}",
            f"{PLATFORM} refused the authorization code (invalid_grant)",
        ),
        (
            f"{REDIRECT_URI}?error=access_denied&state=platform%3D{PLATFORM}",
            f"{PLATFORM} refused the authorization: access_denied",
        ),
        (
            f"https://elsewhere.example.test/steal?code=good-code&state=platform%3D{PLATFORM}",
            "Redirected path should match configured path, but got: /steal",
        ),
    ],
)
def test_a_refused_or_foreign_callback_connects_no_one(
    endpoint: TokenEndpoint, db, uri: str, error: str
) -> None:
    response = ApiClient().get("/oauth-callback", {"callbackUri": uri})

    assert (response.status_code, response.json()) == (400, {"error": error})
    assert not CrmUser.objects.exists()


def test_a_crm_that_names_no_user_is_a_200_with_its_message(endpoint: TokenEndpoint, db) -> None:
    OAuthTestCrm.user_id = None

    response = callback()

    assert (response.status_code, response.json()) == (
        200,
        {"returnMessage": {"message": "No CRM user", "messageType": "warning", "ttl": 3000}},
    )
    assert not CrmUser.objects.exists()


def test_an_api_key_crm_has_no_oauth_callback(endpoint: TokenEndpoint, db) -> None:
    response = callback(state="platform=builtin")

    assert response.status_code == 400
    assert response.json() == {"error": "builtin does not connect with OAuth; log in with its API key."}


def test_an_unknown_platform_is_refused(endpoint: TokenEndpoint, db) -> None:
    response = callback(state="platform=nosuchcrm")

    assert (response.status_code, response.json()) == (
        400,
        {"error": "Connector not found for platform: nosuchcrm"},
    )


def test_an_accounts_own_oauth_app_is_used_and_links_the_user_to_the_account(
    endpoint: TokenEndpoint, db
) -> None:
    ManagedOAuthApp.objects.create(
        rc_account_id="rc-acct-1", platform=PLATFORM, client_id="acct-client", client_secret="acct-secret"
    )
    endpoint.clients["acct-client"] = "acct-secret"

    assert callback(rcAccountId="rc-acct-1").status_code == 200

    assert endpoint.clients_seen == ["acct-client"]
    assert CrmUser.objects.get(pk=USER_ID).rc_account_id == "rc-acct-1"
    assert Account.objects.filter(rc_account_id="rc-acct-1").exists()


def test_an_account_id_in_the_query_alone_links_no_account(endpoint: TokenEndpoint, db) -> None:
    assert callback(rcAccountId="someone-elses-account").status_code == 200

    assert endpoint.clients_seen == ["fake-client-id"]
    assert CrmUser.objects.get(pk=USER_ID).rc_account_id == ""


def test_unauthorize_revokes_at_the_crm_and_forgets_the_tokens(endpoint: TokenEndpoint, db) -> None:
    token = callback().json()["jwtToken"]

    response = ApiClient(token).post("/unAuthorize")

    assert response.status_code == 200
    assert response.json() == {"message": "Logged out", "messageType": "success", "ttl": 1000}
    assert endpoint.revocations == [{"token": "rt-0", "token_type_hint": "refresh_token"}]
    user = CrmUser.objects.get(pk=USER_ID)
    assert not user.access_token and not user.refresh_token and user.token_expiry is None
    assert ApiClient(token).get("/contact", {"phoneNumber": "+14155550100"}).json()["successful"] is False


def test_unauthorize_forgets_the_tokens_even_when_the_crm_cannot_be_told(endpoint: TokenEndpoint, db) -> None:
    token = callback().json()["jwtToken"]
    OAuthTestCrm.token_url = "http://127.0.0.1:9"  # nothing listens there

    response = ApiClient(token).post("/unAuthorize")

    assert response.status_code == 200
    assert "could not be told to revoke" in response.json()["message"]
    user = CrmUser.objects.get(pk=USER_ID)
    assert not user.access_token and not user.refresh_token
    assert user.auth_error.startswith("Revocation failed")


def test_not_configured_oauth_app_says_so(endpoint: TokenEndpoint, db, monkeypatch) -> None:
    from connector.crm.base import OAuthInfo

    monkeypatch.setattr(
        OAuthTestCrm,
        "oauth_info",
        lambda self, hostname="", token_url="": OAuthInfo(
            client_id="", client_secret="", token_url="", redirect_uri=REDIRECT_URI
        ),
    )

    response = callback()

    assert response.status_code == 200
    message = response.json()["returnMessage"]
    assert message["messageType"] == "danger" and "OAuth app is missing" in message["message"]


def test_the_user_id_of_a_jwt_is_not_taken_from_the_query(endpoint: TokenEndpoint, db) -> None:
    # a forged JWT for another user does not matter: the callback ignores Authorization
    forged = jwt_encode(user_id="victim-oauthtest", platform=PLATFORM)
    uri = f"{REDIRECT_URI}?code=good-code&state=platform%3D{PLATFORM}"

    body = ApiClient(forged).get("/oauth-callback", {"callbackUri": uri}).json()

    claims = jwt.decode(body["jwtToken"], django_settings.APP_SERVER_SECRET_KEY, algorithms=["HS256"])
    assert claims["id"] == USER_ID
