"""RingCentral identity: who a RingCentral token belongs to, and logging in with one.

`GET /restapi/v1.0/account/~/extension/~` tells the account, the extension and whether
the caller is an admin; a failing RingCentral API is a clear error, never a crash or a
hang. `POST /apiKeyLogin` with `X-RC-Access-Token` links the CRM user to the account.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
import requests

from connector.models import CrmUser
from connector.ringcentral import (
    RcExtension,
    RingCentralRefused,
    RingCentralUnavailable,
    rc_extension_get,
)
from rules.models import Account
from tests.conftest import ApiClient
from tests.rules.conftest import (
    ACCOUNT_ID,
    ADMIN_TOKEN,
    OTHER_ACCOUNT_ID,
    OTHER_TOKEN,
    RC_EXTENSION_URL,
    USER_TOKEN,
    FakeRingCentral,
    account_key,
    assert_no_token,
)

# --- the RingCentral client ----------------------------------------------------------------


def test_extension_tells_account_extension_name_and_admin_role(rc_api: FakeRingCentral) -> None:
    rc_api(token=ADMIN_TOKEN, account_id=ACCOUNT_ID, extension_id="101", admin=True, name="Ada Admin")

    extension = rc_extension_get(access_token=ADMIN_TOKEN)

    assert extension == RcExtension(
        account_id=ACCOUNT_ID, extension_id="101", name="Ada Admin", is_admin=True
    )
    assert rc_api.authorizations == [f"Bearer {ADMIN_TOKEN}"]
    request = rc_api.mock.calls[0].request
    assert request.url == RC_EXTENSION_URL
    assert request.method == "GET"


def test_every_call_has_the_configured_timeout(rc_api: FakeRingCentral, settings) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "OUTBOUND_TIMEOUT_SECONDS": 2.5}
    rc_api(token=USER_TOKEN, admin=False)

    rc_extension_get(access_token=USER_TOKEN)

    assert rc_api.mock.calls[0].request.req_kwargs["timeout"] == 2.5


@pytest.mark.parametrize(
    "permissions",
    [{"admin": {"enabled": False}}, {"admin": {}}, {}, None],
    ids=["disabled", "no-flag", "no-admin", "no-permissions"],
)
def test_a_caller_without_the_admin_permission_is_not_an_admin(
    rc_api: FakeRingCentral, permissions: dict | None
) -> None:
    body = {"id": 202, "name": "Uma User", "account": {"id": ACCOUNT_ID}}
    if permissions is not None:
        body["permissions"] = permissions
    rc_api.mock.get(RC_EXTENSION_URL, json=body)

    extension = rc_extension_get(access_token=USER_TOKEN)

    assert (extension.account_id, extension.extension_id, extension.is_admin) == (ACCOUNT_ID, "202", False)


def test_a_numeric_account_id_is_read_as_a_string(rc_api: FakeRingCentral) -> None:
    rc_api.mock.get(RC_EXTENSION_URL, json={"id": 7, "account": {"id": 37439510}})

    assert rc_extension_get(access_token=USER_TOKEN).account_id == ACCOUNT_ID


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429])
def test_a_refused_token_says_the_status(rc_api: FakeRingCentral, status: int) -> None:
    rc_api.fail(status=status)

    with pytest.raises(RingCentralRefused) as caught:
        rc_extension_get(access_token=USER_TOKEN)

    assert str(caught.value) == f"Request failed with status code {status}"
    assert caught.value.status_code == status


@pytest.mark.parametrize(
    "failure",
    [
        {"status": 500},
        {"status": 502},
        {"status": 503},
        {"exc": requests.exceptions.ConnectionError("connection refused")},
        {"exc": requests.exceptions.ConnectTimeout("connect timed out")},
        {"exc": requests.exceptions.ReadTimeout("read timed out")},
        {"status": 200, "body": {}},
        {"status": 200, "body": {"id": 1, "account": None}},
        {"status": 200, "body": ["not", "an", "object"]},
    ],
    ids=[
        "500",
        "502",
        "503",
        "connection-error",
        "connect-timeout",
        "read-timeout",
        "empty",
        "no-acct",
        "list",
    ],
)
def test_a_failing_api_is_unavailable_and_never_shows_the_token(
    rc_api: FakeRingCentral, failure: dict
) -> None:
    rc_api.fail(**failure)

    with pytest.raises(RingCentralUnavailable) as caught:
        rc_extension_get(access_token=USER_TOKEN)

    assert USER_TOKEN not in str(caught.value)


def test_a_body_that_is_not_json_is_unavailable(rc_api: FakeRingCentral) -> None:
    rc_api.mock.get(RC_EXTENSION_URL, body="<html>gateway</html>", status=200, content_type="text/html")

    with pytest.raises(RingCentralUnavailable):
        rc_extension_get(access_token=USER_TOKEN)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback server that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_ringcentral_that_never_answers_times_out(
    db, silent_server: str, settings, anon: ApiClient
) -> None:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "RINGCENTRAL_SERVER": silent_server,
        "OUTBOUND_TIMEOUT_SECONDS": 0.5,
    }
    started = time.monotonic()
    with pytest.raises(RingCentralUnavailable):
        rc_extension_get(access_token=USER_TOKEN)
    assert time.monotonic() - started < 5

    started = time.monotonic()
    response = anon.post(
        "/admin/settings",
        {"adminSettings": {"userSettings": {}}},
        headers={"X-RC-Access-Token": ADMIN_TOKEN},
    )

    assert time.monotonic() - started < 5
    assert response.status_code == 400
    assert list(response.json()) == ["error"]
    assert Account.objects.count() == 0


# --- logging in with a RingCentral token ---------------------------------------------------


def login_body(api_key: str, **extra: object) -> dict:
    return {"platform": "builtin", "apiKey": api_key, **extra}


@pytest.mark.parametrize(
    "where",
    ["header", "header-bearer", "body", "query"],
)
def test_login_with_a_ringcentral_token_links_the_user_to_the_account(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str, where: str
) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, extension_id="202", admin=False)
    path, body, headers = "/apiKeyLogin", login_body(builtin_api_key), None
    if where == "header":
        headers = {"X-RC-Access-Token": USER_TOKEN}
    elif where == "header-bearer":
        headers = {"X-RC-Access-Token": f"Bearer {USER_TOKEN}"}
    elif where == "body":
        body["rcAccessToken"] = USER_TOKEN
    else:
        path = f"/apiKeyLogin?rcAccessToken={USER_TOKEN}"

    response = anon.post(path, body, headers=headers)

    assert response.status_code == 200, response.content
    assert set(response.json()) == {"jwtToken", "name", "returnMessage"}
    assert USER_TOKEN not in response.content.decode()
    assert rc_api.authorizations == [f"Bearer {USER_TOKEN}"]
    user = CrmUser.objects.get()
    assert user.rc_account_id == ACCOUNT_ID
    account = Account.objects.get()
    assert (account.rc_account_id, account.account_key) == (ACCOUNT_ID, account_key(ACCOUNT_ID))


def test_login_without_a_ringcentral_token_links_nothing_and_asks_nothing(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str
) -> None:
    response = anon.post("/apiKeyLogin", login_body(builtin_api_key))

    assert response.status_code == 200
    assert CrmUser.objects.get().rc_account_id == ""
    assert Account.objects.count() == 0
    assert rc_api.authorizations == []


def test_logging_in_again_with_another_account_relinks_the_user(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str
) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=False)
    rc_api(token=OTHER_TOKEN, account_id=OTHER_ACCOUNT_ID, admin=False)
    anon.post("/apiKeyLogin", login_body(builtin_api_key), headers={"X-RC-Access-Token": USER_TOKEN})

    response = anon.post(
        "/apiKeyLogin", login_body(builtin_api_key), headers={"X-RC-Access-Token": OTHER_TOKEN}
    )

    assert response.status_code == 200
    assert CrmUser.objects.get().rc_account_id == OTHER_ACCOUNT_ID
    assert set(Account.objects.values_list("rc_account_id", flat=True)) == {ACCOUNT_ID, OTHER_ACCOUNT_ID}


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ({"status": 401}, "Request failed with status code 401"),
        ({"status": 500}, None),
        ({"exc": requests.exceptions.ConnectionError("refused")}, None),
        ({"exc": requests.exceptions.ConnectTimeout("timed out")}, None),
    ],
    ids=["401", "500", "connection-error", "timeout"],
)
def test_a_ringcentral_failure_at_login_creates_no_user(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str, failure: dict, message: str | None
) -> None:
    rc_api.fail(**failure)

    response = anon.post(
        "/apiKeyLogin", login_body(builtin_api_key), headers={"X-RC-Access-Token": USER_TOKEN}
    )

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str) and body["error"]
    if message is not None:
        assert body["error"] == message
    assert_no_token(response, USER_TOKEN)
    assert CrmUser.objects.count() == 0
    assert Account.objects.count() == 0


def test_a_ringcentral_failure_at_login_leaves_an_existing_user_unchanged(
    rc_api: FakeRingCentral, anon: ApiClient, crm_user: CrmUser, builtin_api_key: str
) -> None:
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.user_settings = {"autoLogCall": {"value": True}}
    crm_user.save()
    before = CrmUser.objects.values().get(pk=crm_user.pk)
    rc_api.fail(status=401)

    response = anon.post(
        "/apiKeyLogin",
        login_body(builtin_api_key, hostname="changed.example.com"),
        headers={"X-RC-Access-Token": OTHER_TOKEN},
    )

    assert response.status_code == 400
    assert response.json() == {"error": "Request failed with status code 401"}
    assert CrmUser.objects.values().get(pk=crm_user.pk) == before


def test_a_login_the_crm_refuses_links_no_account(
    rc_api: FakeRingCentral, anon: ApiClient, builtin_api_key: str
) -> None:
    rc_api(token=USER_TOKEN, account_id=ACCOUNT_ID, admin=False)

    response = anon.post(
        "/apiKeyLogin", login_body("not-a-real-key"), headers={"X-RC-Access-Token": USER_TOKEN}
    )

    assert response.status_code == 400
    assert CrmUser.objects.count() == 0
    assert Account.objects.count() == 0


@pytest.mark.parametrize("failure", [{"status": 401}, {"status": 500}], ids=["401", "500"])
def test_no_log_line_holds_the_ringcentral_token(
    rc_api: FakeRingCentral, anon: ApiClient, api: ApiClient, caplog: pytest.LogCaptureFixture, failure: dict
) -> None:
    caplog.set_level(logging.DEBUG)
    rc_api.fail(**failure)

    anon.post(f"/admin/settings?rcAccessToken={ADMIN_TOKEN}", {"adminSettings": {"userSettings": {}}})
    anon.get("/user/preloadSettings", headers={"X-RC-Access-Token": USER_TOKEN})
    api.get("/admin/settings", headers={"X-RC-Access-Token": f"Bearer {OTHER_TOKEN}"})
    api.get("/user/settings", {"rcAccessToken": USER_TOKEN})

    assert caplog.records
    for record in caplog.records:
        text = record.getMessage() + str(record.args or "") + str(record.exc_info or "")
        for token in (ADMIN_TOKEN, USER_TOKEN, OTHER_TOKEN):
            assert token not in text
