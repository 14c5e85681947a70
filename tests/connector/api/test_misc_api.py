"""/isAlive, /crmManifest, /implementedInterfaces, CORS, and no credential in any answer."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client

from connector.models import CrmUser
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory


def text_of(response) -> str:
    assert response["Content-Type"].startswith("text/plain"), response["Content-Type"]
    return response.content.decode()


def test_is_alive(anon: ApiClient) -> None:
    response = anon.get("/isAlive")

    assert response.status_code == 200
    assert text_of(response) == "OK"


def test_is_alive_ignores_a_bad_token(db) -> None:
    response = ApiClient("forged").get("/isAlive", {"jwtToken": "forged"})

    assert response.status_code == 200
    assert text_of(response) == "OK"


def test_the_default_manifest(anon: ApiClient) -> None:
    response = anon.get("/crmManifest")

    assert response.status_code == 200
    manifest = response.json()
    assert manifest["serverUrl"] == "http://testserver"
    assert manifest["author"]["name"]
    assert list(manifest["platforms"]) == ["builtin"]
    builtin = manifest["platforms"]["builtin"]
    assert builtin["name"] == "builtin"
    assert builtin["auth"]["type"] == "apiKey"
    assert builtin["contactTypes"] == [
        {"display": "Contact", "value": "Contact"},
        {"display": "Lead", "value": "Lead"},
    ]
    assert builtin["page"]["useContactSearch"] is True
    assert anon.get("/crmManifest", {"platformName": "default"}).json() == manifest


def test_an_unknown_manifest_is_a_400_text(anon: ApiClient, db) -> None:
    response = anon.get("/crmManifest", {"platformName": "salesforce"})

    assert response.status_code == 400
    assert text_of(response) == "Platform not found"


def test_implemented_interfaces_of_the_builtin_crm(anon: ApiClient) -> None:
    response = anon.get("/implementedInterfaces", {"platform": "builtin"})

    assert response.status_code == 200
    body = response.json()
    # The peer's key order: getAuthType, then the auth kind's function, then the rest.
    assert list(body.items()) == [
        ("getAuthType", True),
        ("getBasicAuth", True),
        ("getUserInfo", True),
        ("createCallLog", True),
        ("updateCallLog", True),
        ("getCallLog", True),
        ("createMessageLog", True),
        ("updateMessageLog", True),
        ("createContact", True),
        ("findContact", True),
        ("listAppointments", False),
        ("createAppointment", False),
        ("updateAppointment", False),
        ("refreshAppointment", False),
        ("confirmAppointment", False),
        ("cancelAppointment", False),
        ("unAuthorize", True),
        ("upsertCallDisposition", False),
        ("findContactWithName", True),
        ("getUserList", False),
        ("getManagedAuthOptions", False),
        ("getLicenseStatus", False),
        ("getLogFormatType", True),
        ("refreshUserInfo", False),
        ("cacheCallNote", False),
    ]


def test_implemented_interfaces_without_platform_is_a_400_text(anon: ApiClient) -> None:
    response = anon.get("/implementedInterfaces")

    assert response.status_code == 400
    assert text_of(response) == "Please provide platform."


def test_implemented_interfaces_of_an_unknown_platform(anon: ApiClient, db) -> None:
    response = anon.get("/implementedInterfaces", {"platform": "x"})

    assert response.status_code == 400
    assert response.json() == {"error": "Connector not found for platform: x"}


def test_unknown_paths_are_404(anon: ApiClient) -> None:
    assert anon.get("/noSuchRoute").status_code == 404


# --- CORS ------------------------------------------------------------------------------


def test_api_answers_carry_cors_headers(api: ApiClient, anon: ApiClient) -> None:
    for response in (
        anon.get("/isAlive"),
        api.get("/contact", {"phoneNumber": "+14155550100"}),
        anon.get("/contact", {"phoneNumber": "+14155550100"}),  # a 400 text
        api.post("/callLog", {"logInfo": 1}),  # a 400 JSON
    ):
        assert response["Access-Control-Allow-Origin"] == "*"
        assert response["Access-Control-Expose-Headers"] == "x-refreshed-jwt-token"


def test_a_preflight_request_is_answered_204(db) -> None:
    response = Client().options(
        "/callLog",
        HTTP_ORIGIN="chrome-extension://abc",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
    )

    assert response.status_code == 204
    assert response.content == b""
    assert response["Access-Control-Allow-Origin"] == "*"
    assert response["Access-Control-Allow-Methods"] == "GET, POST, PATCH, PUT, DELETE"
    assert response["Access-Control-Allow-Headers"] == "authorization,content-type"


# --- no credential ever leaves the server ---------------------------------------------


def test_no_answer_of_any_route_contains_the_api_key_or_the_stored_token(
    anon: ApiClient, builtin_api_key: str
) -> None:
    contact = BuiltinContactFactory(name="Jane Caller", phone_numbers=["+14155550100"])
    responses = []
    login = anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key})
    responses.append(login)
    api = ApiClient(login.json()["jwtToken"])
    user = CrmUser.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT access_token FROM {CrmUser._meta.db_table}")
        (raw_token,) = cursor.fetchone()
    message = {
        "logInfo": {
            "messages": [{"id": "m1", "type": "SMS", "direction": "Inbound", "subject": "hi"}],
            "correspondents": [{"phoneNumber": "+14155550100"}],
            "rcAccessToken": "rc-secret-access-token",
        },
        "contactId": str(contact.pk),
    }
    responses += [
        anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key + "x"}),
        anon.post("/apiKeyLogin", {"platform": "builtin", "apiKey": builtin_api_key, "hostname": 5}),
        anon.post("/apiKeyLogin", {"platform": "nope", "apiKey": builtin_api_key}),
        api.get("/authValidation"),
        api.get("/contact", {"phoneNumber": "+14155550100"}),
        api.post("/contact", {"phoneNumber": "+14155550111", "newContactName": "John"}),
        api.get("/custom/contact/search", {"name": "Jane"}),
        api.post("/callLog", call_body(contact_id=str(contact.pk))),
        api.post("/callLog", call_body(contact_id=str(contact.pk))),
        api.get("/callLog", {"sessionIds": "session-1", "requireDetails": "true"}),
        api.patch("/callLog", {"sessionId": "session-1", "note": "n"}),
        api.post("/callLog/cacheNote", {"sessionId": "session-2", "note": "n"}),
        api.post("/messageLog", message),
        api.post("/user/settings", {"userSettings": {"addCallLogNote": {"value": True}}}),
        api.get("/user/settings"),
        api.get("/crmManifest"),
        api.get("/implementedInterfaces", {"platform": "builtin"}),
        api.get("/isAlive"),
        api.post("/unAuthorize"),
    ]

    assert raw_token and user.access_token == builtin_api_key
    for response in responses:
        everything = response.content.decode() + repr(sorted(response.items()))
        for secret in (
            builtin_api_key,
            builtin_api_key.removeprefix("bcrm_"),
            raw_token,
            "rc-secret-access-token",
        ):
            assert secret not in everything, (response.request["PATH_INFO"], response.status_code)


def test_a_lost_database_connection_is_a_503_json_the_client_can_retry(api: ApiClient, monkeypatch) -> None:
    from django.db import OperationalError

    from connector.api import views

    def lost(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(views, "contact_find", lost)

    response = api.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 503
    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "The server could not reach its database. Please try again.",
            "messageType": "warning",
            "ttl": 5000,
        },
    }


@pytest.mark.parametrize("platform", ["pipedrive", "hubspot", "clio"])
def test_a_real_crms_manifest_offers_oauth_without_the_secret(
    anon: ApiClient, settings, platform: str
) -> None:
    key = "clio" if platform == "clio" else platform
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OAUTH_APPS": {key: {"client_id": f"{platform}-client", "client_secret": "s3cr3t-DO-NOT-SHOW"}},
    }

    response = anon.get("/crmManifest", {"platformName": platform})

    assert response.status_code == 200
    manifest = response.json()["platforms"][platform]
    assert manifest["auth"]["type"] == "oauth"
    oauth = manifest["auth"]["oauth"]
    assert oauth["clientId"] == f"{platform}-client"
    assert oauth["authUrl"].startswith("https://") and f"platform={platform}" in oauth["customState"]
    assert "s3cr3t-DO-NOT-SHOW" not in response.content.decode()
    assert manifest["contactTypes"]
