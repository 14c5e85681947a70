"""The proxy connector's client: what a JSON-described CRM is asked, and how its answers map.

The first tests record exchanges with `responses` against the sample config
(tests/crm_fakes/proxy_sample.json) and variants of it: exact methods, URLs, headers (the
auth schemes of crm-connectors.md §3.2) and bodies. The last ones drive the client over
loopback against tests/crm_fakes/restcrm.py, the REST CRM the sample describes.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.utils import timezone

from connector.choices import AuthType
from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogInput,
    CallLogUpdate,
    CrmAuthError,
    CrmRateLimited,
    CrmRejected,
    LogContact,
    MessageLogInput,
    OAuthCrmClient,
)
from connector.crm.proxy import MASK, ConfigError, ProxyCrmClient
from connector.models import CrmUser
from tests.crm_fakes.restcrm import RestCrmFake
from tests.crm_fakes.server import Reply, served

SAMPLE = Path(__file__).resolve().parents[2] / "crm_fakes" / "proxy_sample.json"
BASE = "https://api.restcrm.example/v1"
API_KEY = "key-0123456789"
SECRET = "partner-secret-42"
USER_ID = "77-restcrm"
JANE = LogContact(id="1001", phone_number="+14155550100", type="Contact", name="Jane Roe")
# what requests adds to every request by itself
REQUESTS_OWN = {"user-agent", "accept-encoding", "connection", "content-length"}


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text())


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def outbound(settings) -> None:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OUTBOUND_HOST_MAP": {},
        "OUTBOUND_TIMEOUT_SECONDS": 10.0,
        "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
        "OUTBOUND_ATTEMPTS": 3,
    }


def make(config: dict[str, Any] | None = None, *, secret_key: str = SECRET) -> ProxyCrmClient:
    return ProxyCrmClient("restcrm", config=config or sample(), secret_key=secret_key, proxy_id="px-1")


@pytest.fixture
def client(outbound) -> ProxyCrmClient:
    return make()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def rest_user(*, access_token: str = API_KEY, **fields: Any) -> CrmUser:
    return CrmUser.objects.create(
        id=USER_ID,
        platform="restcrm",
        name="Pat Rest",
        hostname="",
        access_token=access_token,
        platform_additional_info_json=json.dumps({"tenantId": "t-9"}),
        **fields,
    )


def headers(call: Any) -> dict[str, str]:
    """The headers a request carried, lower-cased, without the ones requests adds itself."""
    return {k.lower(): v for k, v in call.request.headers.items() if k.lower() not in REQUESTS_OWN}


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def body(call: Any) -> Any:
    return json.loads(call.request.body)


def call_input(**extra: Any) -> CallLogInput:
    return CallLogInput(
        call_log={
            "sessionId": "s-1",
            "direction": "Inbound",
            "startTime": "2024-05-01T10:00:00.000Z",
            "duration": 90,
            "result": "Call connected",
            **extra,
        },
        note="Asked for a quote",
        composed_log_details="- Note: Asked for a quote\n- Duration: 1 minute 30 seconds\n",
        log_key="call:s-1:abc",
    )


def message_input(message_id: str, text: str, *, direction: str = "Inbound") -> MessageLogInput:
    return MessageLogInput(
        message={
            "id": message_id,
            "direction": direction,
            "from": {"phoneNumber": "+14155550100" if direction == "Inbound" else "+16505550111"},
            "subject": text,
            "creationTime": "2024-05-01T10:00:00.000Z",
        },
        log_key=f"message:{message_id}",
    )


ME = {
    "user": {
        "id": 77,
        "username": "pat",
        "name": "Pat Rest",
        "timezone": "America/New_York",
        "tenant_id": "t-9",
    },
    "message": "Welcome back, Pat.",
}
CONTACT = {
    "id": 1001,
    "name": "Jane Roe",
    "type": "Lead",
    "phone": "4155550100",
    "created_at": "2024-01-02T03:04:05Z",
    "updated_at": "2024-02-03T04:05:06Z",
}


# --- construction, manifest, capabilities ---------------------------------------------


def test_a_bad_config_is_refused_when_the_client_is_built(outbound) -> None:
    config = sample()
    config["operations"]["findContact"]["url"] = "https://collector.evil.example/contacts"
    config["operations"]["findContact"]["method"] = "FETCH"

    with pytest.raises(ConfigError) as raised:
        make(config)

    assert [error.split(":", 1)[0] for error in raised.value.errors] == [
        "operations.findContact.method",
        "operations.findContact.url",
    ]


def test_the_client_keeps_its_own_copy_of_the_config(outbound) -> None:
    config = sample()
    client = make(config)
    config["operations"]["findContact"]["url"] = "https://collector.evil.example/contacts"

    assert client.operations["findContact"]["url"] == "/contacts"


def test_an_api_key_manifest_offers_the_key_page_and_the_configs_contact_types(client) -> None:
    manifest = client.manifest()

    assert manifest["name"] == "restcrm" and manifest["displayName"] == "Rest CRM"
    assert manifest["auth"] == {
        "type": "apiKey",
        "apiKey": {
            "page": {
                "title": "Rest CRM",
                "content": [{"const": "apiKey", "title": "API key", "type": "string", "required": True}],
            }
        },
    }
    assert client.contact_type_values() == ["Contact", "Lead"]
    assert manifest["page"] == {"useContactSearch": True}
    assert client.get_log_format_type() == "text/plain"


def test_the_login_page_may_ask_for_more_fields_and_contact_types_default_to_contact(outbound) -> None:
    config = sample()
    del config["meta"]["contactTypes"]
    config["auth"]["page"] = {
        "title": "Connect Rest CRM",
        "content": [{"const": "username", "title": "User name", "type": "string", "required": True}],
    }

    manifest = make(config).manifest()

    assert [field["const"] for field in manifest["auth"]["apiKey"]["page"]["content"]] == [
        "apiKey",
        "username",
    ]
    assert manifest["contactTypes"] == [{"display": "Contact", "value": "Contact"}]


def oauth_config() -> dict[str, Any]:
    config = sample()
    config["auth"] = {
        "type": "oauth",
        "clientId": RestCrmFake.client_id,
        "clientSecret": RestCrmFake.client_secret,
        "authUrl": "https://auth.restcrm.example/oauth/authorize",
        "tokenUrl": "https://auth.restcrm.example/oauth/token",
        "scope": "scope=contacts activities",
    }
    config["requestDefaults"]["allowedHosts"] = ["auth.restcrm.example"]
    return config


def test_an_oauth_manifest_shows_the_app_but_never_its_secret(outbound) -> None:
    client = make(oauth_config())

    manifest = client.manifest()

    assert manifest["auth"] == {
        "type": "oauth",
        "oauth": {
            "authUrl": "https://auth.restcrm.example/oauth/authorize",
            "clientId": RestCrmFake.client_id,
            "redirectUri": "https://ringcentral.github.io/ringcentral-embeddable/redirect.html",
            "scope": "scope=contacts activities",
            "customState": "platform=restcrm",
        },
    }
    assert RestCrmFake.client_secret not in json.dumps(manifest)
    info = client.oauth_info(token_url="https://tokens.evil.example/token")
    assert (info.client_secret, info.token_url) == (
        RestCrmFake.client_secret,
        "https://auth.restcrm.example/oauth/token",
    )


def test_without_a_client_secret_the_secret_key_is_the_oauth_apps_secret(outbound) -> None:
    config = oauth_config()
    del config["auth"]["clientSecret"]

    assert make(config, secret_key="from-the-secret-key").oauth_info().client_secret == "from-the-secret-key"


def test_the_auth_type_is_the_configs_per_client(outbound) -> None:
    api_key, oauth = make(), make(oauth_config())

    assert (api_key.auth_type, oauth.auth_type) == (AuthType.API_KEY, AuthType.OAUTH)
    assert ProxyCrmClient.auth_type == OAuthCrmClient.auth_type == AuthType.OAUTH  # the class is untouched
    assert api_key.implemented_interfaces()["getBasicAuth"] is True
    assert "getOauthInfo" not in api_key.implemented_interfaces()
    assert oauth.implemented_interfaces()["getOauthInfo"] is True


def test_the_optional_interfaces_are_the_configs(outbound) -> None:
    config = sample()
    for name in ("getCallLog", "updateMessageLog", "findContactWithName"):
        del config["operations"][name]

    interfaces = make(config).implemented_interfaces()

    assert (interfaces["getCallLog"], interfaces["updateMessageLog"], interfaces["findContactWithName"]) == (
        False,
        False,
        False,
    )
    assert make().implemented_interfaces()["getCallLog"] is True


# --- login ----------------------------------------------------------------------------


def test_a_login_asks_who_the_key_belongs_to_with_the_samples_headers(client, mocked) -> None:
    mocked.get(f"{BASE}/authentication", json=ME)

    who = client.get_user_info(
        api_key=API_KEY, hostname="", additional_info={"region": "eu", "password": "pw"}
    )

    [call] = mocked.calls
    assert call.request.method == "GET" and call.request.url == f"{BASE}/authentication"
    assert headers(call) == {
        "accept": "application/json",
        "x-secret-key": SECRET,
        "authorization": f"Basic {b64(API_KEY)}",
    }
    assert call.request.body is None
    assert call.request.req_kwargs["timeout"] == 10.0  # the config's 20 s, capped by ours
    assert (who.successful, who.user_id, who.name, who.timezone_name) == (
        True,
        USER_ID,
        "Pat Rest",
        "America/New_York",
    )
    assert who.platform_additional_info == {"region": "eu", "tenantId": "t-9"}  # the password is dropped
    assert who.return_message["message"] == "Welcome back, Pat."


def test_a_key_the_crm_refuses_is_a_failed_login(client, mocked) -> None:
    mocked.get(f"{BASE}/authentication", status=401, json={"error": "invalid_credentials"})

    who = client.get_user_info(api_key="wrong", hostname="", additional_info={})

    assert not who.successful and who.return_message["message"] == "Rest CRM refused these credentials."


def test_an_empty_key_is_refused_without_asking_the_crm(client, mocked) -> None:
    assert not client.get_user_info(api_key=" ", hostname="", additional_info={}).successful


def test_a_login_answer_without_the_user_id_names_the_operation_and_path(client, mocked) -> None:
    mocked.get(f"{BASE}/authentication", json={"message": "hello"})

    with pytest.raises(
        CrmRejected, match=r"getUserInfo has no value at 'body\.user\.id' \(responseMapping\.idPath\)"
    ):
        client.get_user_info(api_key=API_KEY, hostname="", additional_info={})


def test_login_fields_reach_the_login_request_and_a_session_key_replaces_the_api_key(
    outbound, mocked
) -> None:
    """A Redtail-like login: user name and password in the login's own auth; the CRM hands
    back a session key (`overridingApiKeyPath`) that later calls use."""
    config = sample()
    login = config["operations"]["getUserInfo"]
    login["auth"] = {
        "scheme": "Basic",
        "credentialTemplate": "{{additionalInfo.username}}:{{additionalInfo.password}}",
    }
    login["responseMapping"]["overridingApiKeyPath"] = "body.session.key"
    mocked.get(f"{BASE}/authentication", json={**ME, "session": {"key": "session-key-1"}})

    who = make(config).get_user_info(
        api_key="unused", hostname="", additional_info={"username": "pat", "password": "pw"}
    )

    assert headers(mocked.calls[0])["authorization"] == f"Basic {b64('pat:pw')}"
    assert who.overriding_api_key == "session-key-1"
    assert who.platform_additional_info == {"username": "pat", "tenantId": "t-9"}


# --- auth headers ---------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        pytest.param({"type": "apiKey"}, {"authorization": f"Basic {b64(API_KEY + ':')}"}, id="core-basic"),
        pytest.param(
            {"type": "apiKey", "scheme": "Bearer", "credentialTemplate": "{{apiKey}}", "encode": "none"},
            {"authorization": f"Bearer {API_KEY}"},
            id="bearer-as-is",
        ),
        pytest.param(
            {"type": "apiKey", "scheme": "Token", "credentialTemplate": "{{apiKey}}:{{secretKey}}"},
            {"authorization": f"Token {b64(API_KEY + ':' + SECRET)}"},
            id="template-base64",
        ),
        pytest.param(
            {
                "type": "apiKey",
                "headerName": "X-Api-Key",
                "credentialTemplate": "{{apiKey}}",
                "encode": "none",
            },
            {"x-api-key": API_KEY},
            id="own-header-no-scheme",
        ),
    ],
)
def test_the_auth_header_is_built_as_the_config_says(outbound, mocked, auth, expected) -> None:
    config = sample()
    config["auth"] = auth
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})

    make(config).find_contact(
        user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
    )

    sent = headers(mocked.calls[0])
    assert {k: v for k, v in sent.items() if k not in ("accept", "x-secret-key")} == expected


@pytest.mark.django_db
def test_an_oauth_users_token_goes_after_the_scheme(outbound, mocked) -> None:
    config = oauth_config()
    config["auth"]["scheme"] = "Token"
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})
    user = rest_user(
        access_token="at-9", refresh_token="rt-9", token_expiry=timezone.now() + timedelta(hours=1)
    )

    make(config).find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert headers(mocked.calls[0])["authorization"] == "Token at-9"


@pytest.mark.django_db
def test_headers_are_the_defaults_then_the_operations_then_the_auth(outbound, mocked) -> None:
    config = sample()
    config["requestDefaults"]["defaultHeaders"]["X-Tenant"] = "{{user.platformAdditionalInfo.tenantId}}"
    config["operations"]["findContact"]["headers"] = {
        "accept": "application/vnd.rest+json",
        "Authorization": "mine",
    }
    config["operations"]["findContact"]["auth"] = {
        "scheme": "Bearer",
        "credentialTemplate": "{{apiKey}}",
        "encode": "none",
    }
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})

    make(config).find_contact(
        user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert headers(mocked.calls[0]) == {
        "accept": "application/vnd.rest+json",
        "x-secret-key": SECRET,
        "x-tenant": "t-9",
        "authorization": f"Bearer {API_KEY}",  # the operation's own auth, over its header
    }


# --- contacts -------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_lookup_tries_e164_then_the_national_digits_until_one_matches(client, mocked) -> None:
    mocked.get(f"{BASE}/contacts", json={"contacts": []})
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})

    found = client.find_contact(
        user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert [query(call)["phone"] for call in mocked.calls] == [["+14155550100"], ["4155550100"]]
    assert found.contacts == [
        {
            "id": "1001",
            "name": "Jane Roe",
            "type": "Lead",
            "phone": "4155550100",
            "title": "",
            "company": "",
            "createdDate": "2024-01-02T03:04:05Z",
            "mostRecentActivityDate": "2024-02-03T04:05:06Z",
            "additionalInfo": None,
        },
        NEW_CONTACT_OPTION,
    ]


@pytest.mark.django_db
def test_the_users_overriding_formats_come_after_and_the_first_match_ends_the_lookup(client, mocked) -> None:
    for _ in range(3):
        mocked.get(f"{BASE}/contacts", json={"contacts": []})
    mocked.get(f"{BASE}/contacts", json={"contacts": [{**CONTACT, "phone": "415-555-0100"}]})

    found = client.find_contact(
        user=rest_user(),
        phone_number="+14155550100",
        overriding_format="(***) ***-****, ***-***-****, 1##########",
        is_extension=False,
    )

    assert [query(call)["phone"][0] for call in mocked.calls] == [
        "+14155550100",
        "4155550100",
        "(415) 555-0100",
        "415-555-0100",
    ]
    assert [c["id"] for c in found.contacts] == ["1001", "createNewContact"]


@pytest.mark.django_db
def test_a_number_nobody_has_offers_only_contact_creation(client, mocked) -> None:
    mocked.get(f"{BASE}/contacts", json={"contacts": []})
    mocked.get(f"{BASE}/contacts", json={"contacts": []})

    found = client.find_contact(
        user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert found.successful and found.contacts == [NEW_CONTACT_OPTION]
    assert len(mocked.calls) == 2


@pytest.mark.django_db
def test_a_lookup_by_parsed_number_parts_is_one_request(outbound, mocked) -> None:
    config = sample()
    config["operations"]["findContact"]["query"] = {
        "digits": "{{parsedPhoneNumber.number.significant}}",
        "country": "{{parsedPhoneNumber.countryCode}}",
    }
    mocked.get(f"{BASE}/contacts", json={"contacts": []})

    make(config).find_contact(
        user=rest_user(), phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )

    [call] = mocked.calls
    assert query(call) == {"digits": ["4155550100"], "country": ["1"]}


@pytest.mark.django_db
def test_an_extension_is_looked_up_once_as_given(client, mocked) -> None:
    mocked.get(f"{BASE}/contacts", json={"contacts": []})

    client.find_contact(
        user=rest_user(), phone_number="101", overriding_format="(***) ***-****", is_extension=True
    )

    assert query(mocked.calls[0])["phone"] == ["101"]


@pytest.mark.django_db
def test_a_lookup_answer_that_does_not_fit_the_mapping_names_the_operation_and_path(client, mocked) -> None:
    mocked.get(f"{BASE}/contacts", json={"people": []})
    with pytest.raises(
        CrmRejected, match=r"findContact has nothing at 'body\.contacts' \(responseMapping\.listPath\)"
    ):
        client.find_contact(
            user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
        )

    mocked.get(f"{BASE}/contacts", json={"contacts": [{"name": "No Id"}]})
    with pytest.raises(CrmRejected, match=r"contact 0 of the answer to findContact has no value at 'id'"):
        client.find_contact(
            user=CrmUser.objects.get(), phone_number="+1415", overriding_format="", is_extension=True
        )


@pytest.mark.django_db
def test_a_name_search_sends_the_name(client, mocked) -> None:
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})

    found = client.find_contact_with_name(user=rest_user(), name="Jane R")

    assert query(mocked.calls[0]) == {"name": ["Jane R"]}
    assert [c["name"] for c in found.contacts] == ["Jane Roe"]


@pytest.mark.django_db
def test_a_contact_is_created_with_the_samples_body(client, mocked) -> None:
    mocked.post(
        f"{BASE}/contacts", status=201, json={**CONTACT, "id": 1002, "name": "Caller 0100", "type": "Contact"}
    )

    created = client.create_contact(
        user=rest_user(),
        phone_number="+14155550100",
        name="Caller 0100",
        contact_type="Contact",
        additional_submission={},
    )

    [call] = mocked.calls
    assert call.request.method == "POST" and call.request.url == f"{BASE}/contacts"
    assert headers(call)["content-type"] == "application/json"
    assert body(call) == {"name": "Caller 0100", "type": "Contact", "phone": "+14155550100"}
    assert created.contact == {"id": "1002", "name": "Caller 0100", "type": "Contact"}


@pytest.mark.django_db
def test_a_created_contact_without_an_id_is_refused_as_perhaps_made(client, mocked) -> None:
    mocked.post(f"{BASE}/contacts", status=201, json={"ok": True})

    with pytest.raises(CrmRejected, match=r"createContact has no value at 'body\.id'") as raised:
        client.create_contact(
            user=rest_user(),
            phone_number="+14155550100",
            name="X",
            contact_type="Contact",
            additional_submission={},
        )

    assert raised.value.uncertain is True


# --- call logs ------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_call_is_logged_with_app_connects_variables_and_the_log_key(client, mocked) -> None:
    mocked.post(f"{BASE}/activities", status=201, json={"activity": {"id": 5001}})

    logged = client.create_call_log(user=rest_user(), contact=JANE, data=call_input())

    [call] = mocked.calls
    assert body(call) == {
        "category": "call",
        "subject": "Inbound Call from Jane Roe",
        "description": "- Note: Asked for a quote\n- Duration: 1 minute 30 seconds\n",
        "note": "Asked for a quote",
        "start_date": "2024-05-01T10:00:00.000Z",
        "end_date": "2024-05-01T10:01:30.000Z",
        "external_key": "call:s-1:abc",
        "linked_contacts": [{"contact_id": "1001"}],
    }
    assert logged.log_id == "5001" and logged.return_message["message"] == "Call logged"


@pytest.mark.django_db
def test_a_custom_subject_is_kept_and_a_pending_duration_has_no_end(client, mocked) -> None:
    mocked.post(f"{BASE}/activities", status=201, json={"activity": {"id": 5001}})

    client.create_call_log(
        user=rest_user(),
        contact=JANE,
        data=call_input(customSubject="Quote call", direction="Outbound", duration="pending"),
    )

    sent = body(mocked.calls[0])
    assert sent["subject"] == "Quote call" and "end_date" not in sent


@pytest.mark.django_db
def test_an_update_sends_what_it_has_and_leaves_the_rest_out(client, mocked) -> None:
    mocked.put(f"{BASE}/activities/5001", json={"activity": {"id": 5001}})

    updated = client.update_call_log(
        user=rest_user(),
        data=CallLogUpdate(
            crm_log_id="5001",
            contact_id="1001",
            composed_log_details="- Result: Call connected\n",
        ),
    )

    assert body(mocked.calls[0]) == {"description": "- Result: Call connected\n"}
    assert updated.return_message["message"] == "Call log updated."


@pytest.mark.django_db
def test_a_log_id_cannot_change_the_path_and_an_empty_one_is_not_sent(client, mocked) -> None:
    mocked.put(f"{BASE}/activities/50%2F..%2Fadmin%3Fx%3D1", json={})

    client.update_call_log(
        user=rest_user(), data=CallLogUpdate(crm_log_id="50/../admin?x=1", contact_id="1001")
    )
    with pytest.raises(CrmRejected, match=r"updateCallLog refused: \{\{thirdPartyLogId\}\} is empty"):
        client.update_call_log(
            user=CrmUser.objects.get(), data=CallLogUpdate(crm_log_id="", contact_id="1001")
        )

    assert len(mocked.calls) == 1


@pytest.mark.django_db
def test_a_call_log_is_read_back_at_the_mapped_paths(client, mocked) -> None:
    activity = {"id": 5001, "subject": "Inbound call", "note": "Quote", "description": "- Note: Quote\n"}
    mocked.get(f"{BASE}/activities/5001", json={"activity": activity})

    details = client.get_call_log(user=rest_user(), crm_log_id="5001", contact_id="1001")

    assert query(mocked.calls[0]) == {"include": ["linked_contacts"]}
    assert details.info == {
        "subject": "Inbound call",
        "note": "Quote",
        "fullBody": "- Note: Quote\n",
        "fullLogResponse": {"activity": activity},
    }


@pytest.mark.django_db
def test_a_call_log_is_found_by_its_key_when_the_config_can_ask(client, outbound, mocked) -> None:
    mocked.get(f"{BASE}/activities", json={"activities": [{"id": 5001}]})
    mocked.get(f"{BASE}/activities", json={"activities": []})
    user = rest_user()

    assert client.find_call_log(user=user, log_key="call:s-1:abc", contact_id="1001") == "5001"
    assert client.find_call_log(user=user, log_key="call:s-2:abc", contact_id="1001") is None
    assert query(mocked.calls[0]) == {"external_key": ["call:s-1:abc"], "contact_id": ["1001"]}

    config = sample()
    del config["operations"]["findCallLog"]
    with pytest.raises(NotImplementedError):
        make(config).find_call_log(user=user, log_key="call:s-1:abc", contact_id="1001")
    with pytest.raises(NotImplementedError):
        client.find_message_log(user=user, log_key="message:m1", contact_id="1001")


# --- message logs ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_message_is_logged_then_the_next_one_added(client, mocked) -> None:
    mocked.post(f"{BASE}/activities", status=201, json={"activity": {"id": 6001}})
    mocked.put(f"{BASE}/activities/6001", json={"activity": {"id": 6001}})
    user = rest_user()

    logged = client.create_message_log(user=user, contact=JANE, data=message_input("m1", "Hi"))
    client.update_message_log(
        user=user, contact=JANE, crm_log_id="6001", data=message_input("m2", "Bye", direction="Outbound")
    )

    assert logged.log_id == "6001"
    assert body(mocked.calls[0]) == {
        "category": "message",
        "subject": "Messages with Jane Roe",
        "description": "Inbound +14155550100: Hi\n",
        "start_date": "2024-05-01T10:00:00.000Z",
        "end_date": "2024-05-01T10:00:00.000Z",
        "external_key": "message:m1",
        "linked_contacts": [{"contact_id": "1001"}],
    }
    assert body(mocked.calls[1]) == {
        "append_description": "Outbound +16505550111: Bye\n",
        "end_date": "2024-05-01T10:00:00.000Z",
    }


# --- logging out, missing operations --------------------------------------------------


@pytest.mark.django_db
def test_logging_out_ends_the_session_when_the_config_can(client, outbound, mocked) -> None:
    mocked.delete(f"{BASE}/authentication", json={"logged_out": True})

    message = client.unauthorize(user=rest_user())

    assert mocked.calls[0].request.method == "DELETE" and message["message"] == "Logged out of Rest CRM."
    config = sample()
    del config["operations"]["unAuthorize"]
    assert make(config).unauthorize(user=CrmUser.objects.get())["message"] == "Logged out of Rest CRM."
    assert len(mocked.calls) == 1


@pytest.mark.django_db
def test_a_missing_operation_is_refused_when_required_and_absent_when_optional(outbound, mocked) -> None:
    config = sample()
    for name in ("createCallLog", "getCallLog", "findContactWithName", "updateMessageLog"):
        del config["operations"][name]
    client = make(config)
    user = rest_user()

    with pytest.raises(CrmRejected, match="restcrm: the connector's config has no createCallLog operation"):
        client.create_call_log(user=user, contact=JANE, data=call_input())
    with pytest.raises(NotImplementedError):
        client.get_call_log(user=user, crm_log_id="1", contact_id="1001")
    with pytest.raises(NotImplementedError):
        client.find_contact_with_name(user=user, name="Jane")
    with pytest.raises(NotImplementedError):
        client.update_message_log(user=user, contact=JANE, crm_log_id="1", data=message_input("m1", "x"))


# --- failures and limits --------------------------------------------------------------


@pytest.mark.django_db
def test_a_request_to_another_host_is_refused_at_run_time(client, mocked) -> None:
    """Validation keeps other hosts out of a config; the client checks again before
    sending, whatever the config became."""
    client.operations["findContact"]["url"] = "https://collector.evil.example/steal"

    with pytest.raises(
        CrmRejected, match=r"restcrm: findContact refused: https://collector\.evil\.example is not"
    ):
        client.find_contact(
            user=rest_user(), phone_number="+14155550100", overriding_format="", is_extension=False
        )

    assert len(mocked.calls) == 0


@pytest.mark.django_db
def test_a_429_with_a_short_retry_after_is_sent_again(client, mocked) -> None:
    mocked.post(f"{BASE}/activities", status=429, headers={"Retry-After": "0"}, json={"error": "slow down"})
    mocked.post(f"{BASE}/activities", status=201, json={"activity": {"id": 5001}})

    assert client.create_call_log(user=rest_user(), contact=JANE, data=call_input()).log_id == "5001"
    assert len(mocked.calls) == 2


@pytest.mark.django_db
def test_a_429_with_a_long_retry_after_goes_up_naming_the_operation(client, mocked) -> None:
    mocked.post(f"{BASE}/activities", status=429, headers={"Retry-After": "60"}, json={"error": "slow down"})

    with pytest.raises(CrmRateLimited, match=r"restcrm rate limit \(createCallLog\)") as raised:
        client.create_call_log(user=rest_user(), contact=JANE, data=call_input())

    assert raised.value.retry_after == 60 and len(mocked.calls) == 1


@pytest.mark.django_db
def test_a_401_is_an_auth_error_naming_the_operation(client, mocked) -> None:
    mocked.post(f"{BASE}/contacts", status=401, json={"error": "invalid_credentials"})

    with pytest.raises(CrmAuthError, match=r"\(createContact\)"):
        client.create_contact(
            user=rest_user(),
            phone_number="+14155550100",
            name="X",
            contact_type="Contact",
            additional_submission={},
        )


@pytest.mark.django_db
def test_the_configs_timeout_applies_below_ours(outbound, mocked) -> None:
    config = sample()
    config["requestDefaults"]["timeoutSeconds"] = 4
    mocked.get(f"{BASE}/activities/1", json={"activity": {}})

    make(config).get_call_log(user=rest_user(), crm_log_id="1", contact_id="1001")

    assert mocked.calls[0].request.req_kwargs["timeout"] == 4.0


@pytest.mark.django_db
def test_a_form_content_type_sends_the_body_as_a_form(outbound, mocked) -> None:
    config = sample()
    config["operations"]["createContact"]["headers"] = {"Content-Type": "application/x-www-form-urlencoded"}
    mocked.post(f"{BASE}/contacts", status=201, json={"id": 1002})

    make(config).create_contact(
        user=rest_user(),
        phone_number="+14155550100",
        name="Jo",
        contact_type="Lead",
        additional_submission={},
    )

    assert parse_qs(mocked.calls[0].request.body) == {
        "name": ["Jo"],
        "type": ["Lead"],
        "phone": ["+14155550100"],
    }


@pytest.mark.django_db
def test_a_header_value_http_cannot_carry_is_refused_before_sending(outbound, mocked) -> None:
    config = sample()
    config["operations"]["findContact"]["headers"] = {"X-Tenant": "{{user.platformAdditionalInfo.tenantId}}"}
    user = rest_user()
    user.platform_additional_info = {"tenantId": "t-9\r\nX-Injected: 1"}

    with pytest.raises(CrmRejected, match="findContact refused: header X-Tenant"):
        make(config).find_contact(user=user, phone_number="+1415", overriding_format="", is_extension=True)
    user.platform_additional_info = {"tenantId": "東京"}
    with pytest.raises(CrmRejected, match="findContact refused: header X-Tenant"):
        make(config).find_contact(user=user, phone_number="+1415", overriding_format="", is_extension=True)

    assert len(mocked.calls) == 0


# --- try it ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_try_it_shows_each_request_with_every_credential_masked(outbound, mocked) -> None:
    config = sample()
    config["operations"]["findContact"]["headers"] = {"X-Echo": "key={{apiKey}}", "X-Core": "{{authHeader}}"}
    mocked.get(f"{BASE}/authentication", json=ME)
    mocked.get(f"{BASE}/contacts", json={"contacts": []})
    mocked.get(f"{BASE}/contacts", json={"contacts": [CONTACT]})

    result = make(config).try_it(
        api_key=API_KEY, additional_info={"password": "pw-123456"}, phone_number="(415) 555-0100"
    )

    assert result["error"] is None
    assert [(r["operation"], r["method"], r["status"]) for r in result["requests"]] == [
        ("getUserInfo", "GET", 200),
        ("findContact", "GET", 200),
        ("findContact", "GET", 200),
    ]
    assert result["requests"][1]["url"] == f"{BASE}/contacts?phone=%2B14155550100"
    assert result["requests"][1]["headers"] == {
        "Accept": "application/json",
        "X-Secret-Key": MASK,
        "X-Echo": f"key={MASK}",
        "X-Core": f"Basic {MASK}",
        "Authorization": MASK,
    }
    assert result["userInfo"]["id"] == USER_ID and result["userInfo"]["platformAdditionalInfo"] == {
        "tenantId": "t-9"
    }
    assert [c["id"] for c in result["contacts"]] == ["1001"]
    text = json.dumps(result)
    for secret in (API_KEY, SECRET, b64(API_KEY), b64(API_KEY + ":"), "pw-123456"):
        assert secret not in text
    assert CrmUser.objects.count() == 0


@pytest.mark.django_db
def test_try_it_reports_a_refused_key_and_stops(client, mocked) -> None:
    mocked.get(f"{BASE}/authentication", status=401, json={"error": "invalid_credentials"})

    result = client.try_it(api_key=API_KEY, additional_info={}, phone_number="+14155550100")

    assert result["error"] == "Rest CRM refused these credentials."
    assert [r["status"] for r in result["requests"]] == [401]
    assert result["requests"][0]["headers"]["Authorization"] == MASK and result["contacts"] == []


@pytest.mark.django_db
def test_try_it_shows_no_status_for_a_crm_it_could_not_reach(client, mocked) -> None:
    mocked.get(f"{BASE}/authentication", body=requests.ConnectionError("refused"))

    result = client.try_it(api_key=API_KEY, additional_info={}, phone_number="+14155550100")

    assert result["error"] == "restcrm could not be reached (getUserInfo)"
    assert {r["status"] for r in result["requests"]} == {None}


# --- against the fake, over loopback --------------------------------------------------


@pytest.fixture
def fake(settings) -> Iterator[RestCrmFake]:
    rest = RestCrmFake()
    with served(rest, settings, OUTBOUND_TIMEOUT_SECONDS=3.0, OUTBOUND_RETRY_AFTER_CAP_SECONDS=2.0):
        yield rest


def fake_client(fake: RestCrmFake, config: dict[str, Any] | None = None) -> ProxyCrmClient:
    """Built after `served` has pointed our settings at the fake (the session reads the host map)."""
    return ProxyCrmClient("restcrm", config=config or sample(), secret_key=fake.secret_key)


def connect(client: ProxyCrmClient, fake: RestCrmFake) -> CrmUser:
    who = client.get_user_info(api_key=fake.api_key, hostname="", additional_info={})
    assert who.successful, who.return_message
    return CrmUser.objects.create(
        id=who.user_id,
        platform="restcrm",
        name=who.name,
        timezone_name=who.timezone_name,
        access_token=fake.api_key,
        platform_additional_info_json=json.dumps(who.platform_additional_info),
    )


@pytest.mark.django_db
def test_the_sample_config_works_against_the_fake(fake: RestCrmFake) -> None:
    client = fake_client(fake)
    assert not client.get_user_info(api_key="wrong", hostname="", additional_info={}).successful
    user = connect(client, fake)
    assert user.pk == fake.user_id and user.platform_additional_info == {"tenantId": "t-9"}
    known = fake.add_contact(name="Jane Roe", phone="4155550100")  # stored without the country code

    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )
    assert [c["id"] for c in lookup.contacts] == [known, "createNewContact"]
    assert [r.query["phone"] for r in fake.api.requests("GET", r"/v1/contacts")] == [
        "+14155550100",
        "4155550100",
    ]

    unknown = client.find_contact(
        user=user, phone_number="+14155550199", overriding_format="", is_extension=False
    )
    assert unknown.contacts == [NEW_CONTACT_OPTION]
    created = client.create_contact(
        user=user,
        phone_number="+14155550199",
        name="Caller 0199",
        contact_type="Lead",
        additional_submission={},
    )
    assert [c["id"] for c in fake.contacts_with_phone("+14155550199")] == [int(created.contact["id"])]
    again = client.find_contact(
        user=user, phone_number="+14155550199", overriding_format="", is_extension=False
    )
    assert again.contacts[0]["id"] == created.contact["id"] and again.contacts[0]["type"] == "Lead"

    contact = LogContact(id=created.contact["id"], phone_number="+14155550199", name="Caller 0199")
    logged = client.create_call_log(user=user, contact=contact, data=call_input())
    assert client.find_call_log(user=user, log_key="call:s-1:abc", contact_id=contact.id) == logged.log_id
    assert client.find_call_log(user=user, log_key="call:s-2:abc", contact_id=contact.id) is None
    full_body = client.get_call_log(user=user, crm_log_id=str(logged.log_id), contact_id=contact.id).info[
        "fullBody"
    ]
    client.update_call_log(
        user=user,
        data=CallLogUpdate(
            crm_log_id=str(logged.log_id),
            contact_id=contact.id,
            subject="Inbound Call from Caller 0199",
            composed_log_details=full_body + "- Result: Call connected\n",
        ),
    )
    [call] = fake.call_logs()
    assert (call["id"], call["contact_id"], call["external_key"]) == (
        logged.log_id,
        contact.id,
        "call:s-1:abc",
    )
    assert call["body"].endswith("- Result: Call connected\n") and call["note"] == "Asked for a quote"

    message = client.create_message_log(user=user, contact=contact, data=message_input("m1", "Hi"))
    client.update_message_log(
        user=user,
        contact=contact,
        crm_log_id=str(message.log_id),
        data=message_input("m2", "Bye", direction="Outbound"),
    )
    [sms] = fake.message_logs()
    assert sms["body"] == "Inbound +14155550100: Hi\nOutbound +16505550111: Bye\n"

    client.unauthorize(user=user)
    assert fake.logged_out == 1
    seen = fake.api.seen
    assert {r.headers["authorization"] for r in seen} == {fake.basic(), fake.basic("wrong")}
    assert {r.headers["x-secret-key"] for r in seen} == {fake.secret_key}


@pytest.mark.django_db
def test_an_overriding_format_finds_a_number_stored_the_users_way(fake: RestCrmFake) -> None:
    client = fake_client(fake)
    user = connect(client, fake)
    known = fake.add_contact(name="Jane Roe", phone="(415) 555-0100")

    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )

    assert [c["id"] for c in lookup.contacts] == [known, "createNewContact"]
    assert len(fake.api.requests("GET", r"/v1/contacts")) == 3


@pytest.mark.django_db
def test_the_fakes_429_is_waited_out_and_a_long_one_raised(fake: RestCrmFake) -> None:
    client = fake_client(fake)
    user = connect(client, fake)
    contact_id = fake.add_contact(name="Jane Roe", phone="+14155550100")
    contact = LogContact(id=contact_id, phone_number="+14155550100", name="Jane Roe")
    method, pattern = fake.routes["create_call_log"]

    fake.api.fail(method, pattern, Reply(429, {"error": "rate_limited"}, {"Retry-After": "1"}))
    assert client.create_call_log(user=user, contact=contact, data=call_input()).log_id
    assert len(fake.api.requests(method, pattern)) == 2

    fake.api.fail(method, pattern, Reply(429, {"error": "rate_limited"}, {"Retry-After": "30"}))
    with pytest.raises(CrmRateLimited) as raised:
        client.create_call_log(user=user, contact=contact, data=call_input())
    assert raised.value.retry_after == 30
    assert len(fake.call_logs()) == 1


@pytest.mark.django_db
def test_a_key_the_fake_no_longer_accepts_is_an_auth_error(fake: RestCrmFake) -> None:
    client = fake_client(fake)
    user = connect(client, fake)
    user.access_token = "revoked-key"
    user.save(update_fields=["access_token"])

    with pytest.raises(CrmAuthError, match=r"restcrm refused the credentials \(findContact\)"):
        client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)


@pytest.mark.django_db
def test_no_request_leaves_for_a_host_the_config_does_not_allow(fake: RestCrmFake, settings) -> None:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OUTBOUND_HOST_MAP": {
            **settings.CONNECTOR["OUTBOUND_HOST_MAP"],
            "collector.evil.example": "http://127.0.0.1:9",
        },
    }
    client = fake_client(fake)
    user = connect(client, fake)
    before = len(fake.api.seen)
    client.operations["createContact"]["url"] = "https://collector.evil.example/contacts"

    with pytest.raises(CrmRejected, match="createContact refused"):
        client.create_contact(
            user=user, phone_number="+14155550100", name="X", contact_type="Contact", additional_submission={}
        )

    assert len(fake.api.seen) == before


@pytest.mark.django_db
def test_try_it_against_the_fake_masks_every_credential(fake: RestCrmFake) -> None:
    client = fake_client(fake)
    fake.add_contact(name="Jane Roe", phone="+14155550100")

    result = client.try_it(api_key=fake.api_key, additional_info={}, phone_number="+14155550100")

    assert result["error"] is None and [c["name"] for c in result["contacts"]] == ["Jane Roe"]
    assert [(r["operation"], r["status"]) for r in result["requests"]] == [
        ("getUserInfo", 200),
        ("findContact", 200),
    ]
    text = json.dumps(result)
    assert fake.api_key not in text and fake.secret_key not in text and fake.basic().split()[1] not in text
    assert CrmUser.objects.count() == 0


@pytest.mark.django_db
def test_an_oauth_config_connects_and_refreshes_through_the_fakes_token_endpoint(fake: RestCrmFake) -> None:
    config = copy.deepcopy(oauth_config())
    client = fake_client(fake, config)
    info = client.oauth_info()

    tokens = client.oauth_exchange_code(info=info, callback_uri=fake.callback_query()["callbackUri"])
    who = client.oauth_user_info(tokens=tokens, info=info, hostname="", query={})
    assert who.user_id == fake.user_id
    user = CrmUser.objects.create(
        id=who.user_id,
        platform="restcrm",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expiry=timezone.now() + timedelta(seconds=30),  # about to expire: refreshed first
    )
    fake.add_contact(name="Jane Roe", phone="+14155550100")

    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert [c["name"] for c in lookup.contacts] == ["Jane Roe", "Create new contact..."]
    assert fake.oauth.refreshes == 1
    user.refresh_from_db()
    assert user.access_token != tokens.access_token
    last = fake.api.requests("GET", r"/v1/contacts")[-1]
    assert last.headers["authorization"] == f"Bearer {user.access_token}"
