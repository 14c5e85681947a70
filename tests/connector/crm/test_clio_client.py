"""The Clio connector: each request it sends, and how Clio's documented answers map back.

Most tests replay exchanges with `responses`, shaped as Clio's API reference shows them
(records under `data`, `meta.paging.next`, `{"error": {...}}`); the last ones drive the
client against tests/crm_fakes/clio.py over loopback.
"""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.utils import timezone
from responses import matchers

from connector.crm.base import (
    EMBEDDABLE_REDIRECT_URI,
    CallLogInput,
    CallLogUpdate,
    CrmAuthError,
    CrmRateLimited,
    CrmRejected,
    LogContact,
    MessageLogInput,
)
from connector.crm.clio import LOG_KEY_PROPERTY, ClioCrmClient, clio_host, phone_queries, zone_offset
from connector.crm.registry import crm_registry
from connector.models import CrmUser
from connector.services import crm_user_login_with_oauth
from tests.crm_fakes.clio import ClioFake
from tests.crm_fakes.server import Reply, served

US = "https://app.clio.com"
EU = "https://eu.app.clio.com"
APPS = {
    "clio": {"client_id": "us-id", "client_secret": "us-secret"},
    "clio_eu": {"client_id": "eu-id", "client_secret": "eu-secret"},
    "clio_ca": {"client_id": "ca-id", "client_secret": "ca-secret"},
    "clio_au": {"client_id": "", "client_secret": ""},
}
INBOUND_CALL = {
    "sessionId": "s-1",
    "direction": "Inbound",
    "startTime": 1717245000000,  # 2024-06-01T12:30:00Z
    "duration": 65,
    "from": {"phoneNumber": "+14155550100"},
    "to": {"phoneNumber": "+16505550111"},
}


@pytest.fixture
def client(settings) -> ClioCrmClient:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OAUTH_APPS": {**settings.CONNECTOR.get("OAUTH_APPS", {}), **APPS},
        "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
        "OUTBOUND_ATTEMPTS": 3,
    }
    return ClioCrmClient("clio")


@pytest.fixture
def user(db) -> CrmUser:
    return CrmUser.objects.create(
        id="3456-clio",
        platform="clio",
        name="Casey Counsel",
        hostname="app.clio.com",
        timezone_offset="-07:00",
        access_token="at-good",
        refresh_token="rt-good",
        token_expiry=timezone.now() + timedelta(days=29),
    )


def contact(**overrides) -> LogContact:
    values = {"id": "1001", "phone_number": "+14155550100", "type": "Person", "name": "Ada Lovelace"}
    return LogContact(**{**values, **overrides})


def sent_json(call_index: int = -1) -> dict:
    return json.loads(responses.calls[call_index].request.body)


def sent_query(call_index: int = -1) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(responses.calls[call_index].request.url).query).items()}


def sent_url(call_index: int = -1) -> str:
    request = responses.calls[call_index].request
    parts = urlsplit(request.url)
    return f"{request.method} {parts.scheme}://{parts.netloc}{parts.path}"


# --- regions, OAuth and the manifest -------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "host"),
    [
        ("app.clio.com", "app.clio.com"),
        ("eu.app.clio.com", "eu.app.clio.com"),
        ("https://ca.app.clio.com/nc/", "ca.app.clio.com"),
        ("AU.app.clio.com", "au.app.clio.com"),
        ("", "app.clio.com"),
        ("evil.example.com", "app.clio.com"),
        ("app.clio.com.evil.example", "app.clio.com"),
    ],
)
def test_a_hostname_always_resolves_to_one_of_clios_hosts(hostname: str, host: str) -> None:
    assert clio_host(hostname) == host


@pytest.mark.parametrize(
    ("hostname", "client_id", "token_url"),
    [
        ("app.clio.com", "us-id", f"{US}/oauth/token"),
        ("eu.app.clio.com", "eu-id", f"{EU}/oauth/token"),
        ("ca.app.clio.com", "ca-id", "https://ca.app.clio.com/oauth/token"),
        ("unknown.example", "us-id", f"{US}/oauth/token"),
    ],
)
def test_each_region_has_its_own_oauth_app_and_endpoints(client, hostname, client_id, token_url) -> None:
    info = client.oauth_info(hostname=hostname, token_url="https://attacker.example/token")

    assert (info.client_id, info.token_url) == (client_id, token_url)
    host = urlsplit(token_url).netloc
    assert info.auth_url == f"https://{host}/oauth/authorize"
    assert info.revoke_url == f"https://{host}/oauth/deauthorize"
    assert info.token_auth_method == "client_secret_post"
    assert info.redirect_uri == EMBEDDABLE_REDIRECT_URI


def test_the_manifest_offers_person_and_company_and_a_region_override_without_secrets(client) -> None:
    manifest = client.manifest()

    assert manifest["name"] == "clio" and manifest["auth"]["type"] == "oauth"
    assert manifest["auth"]["oauth"]["authUrl"] == f"{US}/oauth/authorize"
    assert manifest["auth"]["oauth"]["clientId"] == "us-id"
    assert manifest["auth"]["oauth"]["customState"] == "platform=clio"
    assert manifest["contactTypes"] == [
        {"display": "Person", "value": "Person"},
        {"display": "Company", "value": "Company"},
    ]
    overrides = {item["triggerValue"]: item["overrideObjects"] for item in manifest["override"]}
    assert overrides["eu.app.clio.com"] == [
        {"path": "auth.oauth.authUrl", "value": f"{EU}/oauth/authorize"},
        {"path": "auth.oauth.clientId", "value": "eu-id"},
    ]
    # a region without an app configured: its authorize URL only
    assert overrides["au.app.clio.com"] == [
        {"path": "auth.oauth.authUrl", "value": "https://au.app.clio.com/oauth/authorize"}
    ]
    assert "secret" not in json.dumps(manifest)
    assert manifest["page"]["callLog"]["additionalFields"][0]["const"] == "matters"


@responses.activate
def test_the_code_is_exchanged_at_the_regions_token_endpoint_with_the_secret_in_the_form(client) -> None:
    responses.post(
        f"{EU}/oauth/token",
        json={
            "access_token": "at-1",
            "token_type": "bearer",
            "expires_in": 2592000,
            "refresh_token": "rt-1",
        },
    )
    info = client.oauth_info(hostname="eu.app.clio.com")

    tokens = client.oauth_exchange_code(info=info, callback_uri=f"{EMBEDDABLE_REDIRECT_URI}?code=abc&state=x")

    form = parse_qs(responses.calls[0].request.body)
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["abc"]
    assert form["client_id"] == ["eu-id"] and form["client_secret"] == ["eu-secret"]
    assert form["redirect_uri"] == [EMBEDDABLE_REDIRECT_URI]
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-1")
    assert tokens.expires_at > timezone.now() + timedelta(days=29)


@responses.activate
def test_a_refresh_keeps_the_refresh_token_clio_does_not_rotate(client) -> None:
    responses.post(
        f"{US}/oauth/token", json={"access_token": "at-2", "token_type": "bearer", "expires_in": 2592000}
    )

    tokens = client.oauth_refresh(info=client.oauth_info(hostname="app.clio.com"), refresh_token="rt-1")

    assert parse_qs(responses.calls[0].request.body)["refresh_token"] == ["rt-1"]
    assert (tokens.access_token, tokens.refresh_token) == ("at-2", "rt-1")


@responses.activate
def test_who_am_i_names_the_user_and_the_region_host(client) -> None:
    responses.get(
        f"{EU}/api/v4/users/who_am_i.json",
        json={"data": {"id": 987, "name": "Eve Avocat", "time_zone": "Asia/Kolkata"}},
        match=[matchers.header_matcher({"Authorization": "Bearer at-eu"})],
    )
    from connector.crm.base import OAuthTokens

    info = client.oauth_user_info(
        info=client.oauth_info(),
        tokens=OAuthTokens(access_token="at-eu", refresh_token="rt", expires_at=None),
        hostname="https://eu.app.clio.com",
        query={},
    )

    assert sent_query() == {"fields": "id,name,time_zone"}
    assert info.successful and info.user_id == "987-clio" and info.name == "Eve Avocat"
    assert (info.timezone_name, info.timezone_offset) == ("Asia/Kolkata", "+05:30")
    assert info.overriding_hostname == "eu.app.clio.com"


def test_time_zone_offsets_for_iana_and_rails_names() -> None:
    assert zone_offset("Asia/Kolkata") == "+05:30"
    assert zone_offset("Hawaii") == "-10:00"
    assert zone_offset("Nowhere/Special") == ""
    assert zone_offset("") == ""


@responses.activate
def test_clio_has_no_api_keys_so_the_api_key_login_is_refused_without_a_request(client) -> None:
    info = client.get_user_info(api_key="anything", hostname="app.clio.com", additional_info={})

    assert not info.successful and "OAuth" not in info.user_id
    assert "Connect" in info.return_message["message"]
    assert len(responses.calls) == 0


@responses.activate
def test_logout_deauthorizes_the_access_token_at_the_users_region(client, user) -> None:
    user.hostname = "eu.app.clio.com"
    responses.post(f"{EU}/oauth/deauthorize", status=200)

    message = client.unauthorize(user=user)

    request = responses.calls[0].request
    assert parse_qs(request.body) == {"token": ["at-good"]}
    assert request.headers["Authorization"] == "Bearer at-good"
    assert message["messageType"] == "success"


@responses.activate
def test_auth_validation_says_no_when_clio_refuses_the_token(client, user) -> None:
    responses.get(f"{US}/api/v4/users/who_am_i.json", status=401, json={"error": {"type": "Unauthorized"}})

    valid, message = client.auth_validation(user=user)

    assert not valid and message["messageType"] == "warning"


# --- contacts -------------------------------------------------------------------------------


def test_phone_queries_render_each_overriding_format_with_the_national_digits() -> None:
    assert phone_queries("+14155550100", "(***) ***-****, 1##########,,###.###.####") == [
        "+14155550100",
        "(415) 555-0100",
        "14155550100",
        "415.555.0100",
    ]
    assert phone_queries("+442079460958", "0##########") == ["+442079460958", "02079460958"]
    # formats are rendered for valid numbers only
    assert phone_queries("+1999", "(***) ***-****") == ["+1999"]


@responses.activate
def test_find_contact_searches_each_format_dedups_and_offers_creation(client, user) -> None:
    record = {
        "id": 1001,
        "name": "Ada Lovelace",
        "type": "Person",
        "created_at": "2024-01-01T10:00:00-08:00",
        "updated_at": "2024-05-01T10:00:00-08:00",
    }
    company = {**record, "id": 1002, "name": "Analytical Engines Ltd", "type": "Company"}
    responses.get(
        f"{US}/api/v4/contacts.json",
        json={"data": [record], "meta": {"paging": {}, "records": 1}},
        match=[
            matchers.query_param_matcher(
                {"query": "+14155550100", "fields": "id,name,type,created_at,updated_at"}
            )
        ],
    )
    responses.get(
        f"{US}/api/v4/contacts.json",
        json={"data": [record, company], "meta": {"paging": {}, "records": 2}},
        match=[
            matchers.query_param_matcher(
                {"query": "(415) 555-0100", "fields": "id,name,type,created_at,updated_at"}
            )
        ],
    )
    responses.get(
        f"{US}/api/v4/matters.json",
        json={
            "data": [
                {"id": 77, "display_number": "00077-Lovelace", "description": "Estate", "status": "Open"}
            ]
        },
        match=[
            matchers.query_param_matcher(
                {
                    "client_id": "1001",
                    "fields": "id,display_number,description,status",
                    "status": "open,pending",
                }
            )
        ],
    )
    responses.get(
        f"{US}/api/v4/matters.json",
        json={"data": []},
        match=[matchers.query_param_matcher({"client_id": "1002"}, strict_match=False)],
    )

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )

    assert result.successful
    assert [c["id"] for c in result.contacts] == ["1001", "1002", "createNewContact"]
    ada, engines, new = result.contacts
    assert ada == {
        "id": "1001",
        "name": "Ada Lovelace",
        "type": "Person",
        "phone": "+14155550100",
        "createdDate": "2024-01-01T10:00:00-08:00",
        "mostRecentActivityDate": "2024-05-01T10:00:00-08:00",
        "additionalInfo": {
            "matters": [{"const": 77, "title": "00077-Lovelace", "description": "Open - Estate"}]
        },
    }
    assert engines["type"] == "Company" and engines["additionalInfo"] is None
    assert new["isNewContact"] is True
    assert all(call.request.headers["Authorization"] == "Bearer at-good" for call in responses.calls)
    assert len(responses.calls) == 4  # two searches, one matter lookup per contact


@responses.activate
def test_closed_matters_are_listed_when_the_user_asks_for_them(client, user) -> None:
    user.user_settings = {"clioSeeClosedMatters": {"value": True}}
    responses.get(f"{US}/api/v4/contacts.json", json={"data": [{"id": 5, "name": "B", "type": "Person"}]})
    responses.get(f"{US}/api/v4/matters.json", json={"data": []})

    client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)

    assert "status" not in sent_query()


@responses.activate
def test_the_next_page_is_asked_of_the_users_own_host_whatever_url_clio_sent(client, user) -> None:
    responses.get(
        f"{US}/api/v4/contacts.json",
        json={
            "data": [{"id": 1, "name": "A", "type": "Person"}],
            "meta": {"paging": {"next": "https://evil.example/api/v4/contacts.json?page_token=p2&query=x"}},
        },
        match=[matchers.query_param_matcher({"query": "+14155550100"}, strict_match=False)],
    )
    responses.get(
        f"{US}/api/v4/contacts.json",
        json={"data": [{"id": 2, "name": "B", "type": "Person"}], "meta": {"paging": {}}},
        match=[matchers.query_param_matcher({"page_token": "p2", "query": "x"})],
    )
    responses.get(f"{US}/api/v4/matters.json", json={"data": []})

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert [c["id"] for c in result.contacts] == ["1", "2", "createNewContact"]
    assert all(urlsplit(call.request.url).netloc == "app.clio.com" for call in responses.calls)


@responses.activate
def test_an_extension_is_not_looked_up(client, user) -> None:
    result = client.find_contact(user=user, phone_number="101", overriding_format="", is_extension=True)

    assert (result.successful, result.contacts) == (False, [])
    assert len(responses.calls) == 0


@responses.activate
def test_find_contact_with_name_uses_the_primary_number(client, user) -> None:
    responses.get(
        f"{US}/api/v4/contacts.json",
        json={
            "data": [
                {"id": 9, "name": "Ada Lovelace", "type": "Person", "primary_phone_number": "415 555 0100"}
            ]
        },
    )

    result = client.find_contact_with_name(user=user, name=" Ada ")

    assert sent_query()["query"] == "Ada"
    assert result.contacts[0]["phone"] == "415 555 0100" and result.contacts[0]["id"] == "9"


@responses.activate
@pytest.mark.parametrize(
    ("name", "kind", "expected"),
    [
        ("Caller 0100", "Person", {"first_name": "Caller", "last_name": "0100"}),
        ("Madonna", "Person", {"last_name": "Madonna"}),
        ("Acme  Widgets Inc", "Company", {}),
    ],
)
def test_create_contact_sends_one_default_work_number_and_the_type(
    client, user, name, kind, expected
) -> None:
    responses.post(
        f"{US}/api/v4/contacts.json",
        status=201,
        json={"data": {"id": 4321, "name": " ".join(name.split()), "type": kind}},
    )

    result = client.create_contact(
        user=user, phone_number="+14155550100", name=name, contact_type=kind, additional_submission={}
    )

    data = sent_json()["data"]
    assert data["name"] == " ".join(name.split()) and data["type"] == kind
    assert data["phone_numbers"] == [{"name": "Work", "number": "+14155550100", "default_number": True}]
    assert {k: data[k] for k in ("first_name", "last_name") if k in data} == expected
    assert sent_query() == {"fields": "id,name,type"}
    assert result.contact == {"id": "4321", "name": " ".join(name.split()), "type": kind}


@responses.activate
def test_an_unknown_contact_type_is_refused_without_a_request(client, user) -> None:
    with pytest.raises(CrmRejected):
        client.create_contact(
            user=user, phone_number="+14155550100", name="X", contact_type="Lead", additional_submission={}
        )
    assert len(responses.calls) == 0


# --- call logs ------------------------------------------------------------------------------


@responses.activate
def test_an_inbound_call_is_a_phone_communication_from_the_contact_to_the_user(client, user) -> None:
    responses.post(f"{US}/api/v4/communications.json", status=201, json={"data": {"id": 555}})

    result = client.create_call_log(
        user=user,
        contact=contact(),
        data=CallLogInput(
            call_log=INBOUND_CALL,
            note="Wants a callback",
            composed_log_details="- Note: Wants a callback\n- Duration: 1 minute, 5 seconds\n",
            additional_submission={"matters": "77"},
            log_key="call:s-1:ext-101",
        ),
    )

    assert result.log_id == "555"
    assert sent_url() == f"POST {US}/api/v4/communications.json"
    assert sent_json() == {
        "data": {
            "type": "PhoneCommunication",
            "subject": "[Call] Inbound Call from Ada Lovelace [+14155550100]",
            "body": "- Note: Wants a callback\n- Duration: 1 minute, 5 seconds\n",
            "senders": [{"id": 1001, "type": "Contact"}],
            "receivers": [{"id": 3456, "type": "User"}],
            "received_at": "2024-06-01T12:30:00Z",
            "matter": {"id": 77},
            "external_properties": [{"name": LOG_KEY_PROPERTY, "value": "call:s-1:ext-101"}],
        }
    }


@responses.activate
def test_an_outbound_call_goes_from_the_user_and_keeps_a_custom_subject(client, user) -> None:
    responses.post(f"{US}/api/v4/communications.json", status=201, json={"data": {"id": 556}})
    call = {
        **INBOUND_CALL,
        "direction": "Outbound",
        "customSubject": "Follow-up",
        "startTime": "2024-06-01T12:30:00.000Z",
    }

    client.create_call_log(user=user, contact=contact(), data=CallLogInput(call_log=call))

    data = sent_json()["data"]
    assert data["senders"] == [{"id": 3456, "type": "User"}]
    assert data["receivers"] == [{"id": 1001, "type": "Contact"}]
    assert data["subject"] == "Follow-up" and data["body"] == "No details available"
    assert data["received_at"] == "2024-06-01T12:30:00Z"
    assert "matter" not in data and "external_properties" not in data


@responses.activate
def test_a_call_against_the_create_option_is_refused_without_a_request(client, user) -> None:
    with pytest.raises(CrmRejected):
        client.create_call_log(
            user=user, contact=contact(id="createNewContact"), data=CallLogInput(call_log=INBOUND_CALL)
        )
    assert len(responses.calls) == 0


@responses.activate
def test_update_call_log_patches_what_changed(client, user) -> None:
    responses.patch(f"{US}/api/v4/communications/555.json", json={"data": {"id": 555}})

    result = client.update_call_log(
        user=user,
        data=CallLogUpdate(
            crm_log_id="555.9001",
            contact_id="1001",
            subject="New subject",
            start_time=1717245000000,
            composed_log_details="- Note: edited\n",
        ),
    )

    assert sent_json() == {
        "data": {"body": "- Note: edited\n", "subject": "New subject", "received_at": "2024-06-01T12:30:00Z"}
    }
    assert result.updated_note == "- Note: edited\n"


@responses.activate
def test_update_call_log_with_nothing_to_change_sends_nothing(client, user) -> None:
    client.update_call_log(user=user, data=CallLogUpdate(crm_log_id="555", contact_id="1001"))

    assert len(responses.calls) == 0


@responses.activate
def test_get_call_log_reads_the_note_and_the_contacts_name(client, user) -> None:
    body = "- Note: Wants a callback\nabout the estate\n- Summary: Call\n- Duration: 5 seconds\n"
    responses.get(
        f"{US}/api/v4/communications/555.json",
        json={
            "data": {
                "id": 555,
                "subject": "[Call] Inbound Call from Ada Lovelace [+14155550100]",
                "body": body,
                "senders": [{"id": 1001, "type": "Person", "name": "Ada Lovelace"}],
                "receivers": [{"id": 3456, "type": "User", "name": "Casey Counsel"}],
            }
        },
    )

    details = client.get_call_log(user=user, crm_log_id="555", contact_id="1001")

    assert "senders{id,type,name}" in sent_query()["fields"]
    assert details.info["note"] == "Wants a callback\nabout the estate"
    assert details.info["fullBody"] == body and details.info["contactName"] == "Ada Lovelace"
    assert details.info["fullLogResponse"]["id"] == 555


@responses.activate
def test_find_call_log_filters_on_the_external_property_and_checks_the_exact_key(client, user) -> None:
    responses.get(
        f"{US}/api/v4/communications.json",
        json={
            "data": [
                {
                    "id": 1,
                    "external_properties": [{"id": 5, "name": LOG_KEY_PROPERTY, "value": "call:s-1:other"}],
                },
                {
                    "id": 2,
                    "external_properties": [{"id": 6, "name": LOG_KEY_PROPERTY, "value": "call:s-1:ext-101"}],
                },
            ],
            "meta": {"paging": {}},
        },
    )

    found = client.find_call_log(user=user, log_key="call:s-1:ext-101", contact_id="1001")

    assert found == "2"
    assert sent_query() == {
        "external_property_name": LOG_KEY_PROPERTY,
        "external_property_value": "call:s-1:ext-101",
        "type": "PhoneCommunication",
        "fields": "id,external_properties{id,name,value}",
        "contact_id": "1001",
    }


@responses.activate
def test_find_call_log_answers_none_when_clio_holds_no_such_key(client, user) -> None:
    responses.get(f"{US}/api/v4/communications.json", json={"data": [], "meta": {"paging": {}}})

    assert client.find_call_log(user=user, log_key="call:s-9:ext-101", contact_id="1001") is None


# --- message logs ---------------------------------------------------------------------------


def sms(**overrides) -> dict:
    message = {
        "id": 42,
        "type": "SMS",
        "direction": "Inbound",
        "subject": "Running late",
        "creationTime": "2024-06-01T16:05:00.000Z",
        "from": {"phoneNumber": "+14155550100"},
    }
    return {**message, **overrides}


@responses.activate
def test_a_message_log_starts_a_conversation_communication(client, user) -> None:
    responses.post(f"{US}/api/v4/communications.json", status=201, json={"data": {"id": 700}})

    result = client.create_message_log(
        user=user,
        contact=contact(),
        data=MessageLogInput(
            message=sms(),
            links={"imageLink": "https://media/1", "imageDownloadLink": "https://x?access_token=SECRET"},
            additional_submission={"matters": 77},
            log_key="message:42",
        ),
    )

    assert result.log_id == "700"
    data = sent_json()["data"]
    assert data["subject"] == "SMS conversation with Ada Lovelace - 2024-06-01"
    assert data["body"] == (
        "Conversation with Ada Lovelace (+14155550100)\n"
        "- 2024-06-01 09:05 AM Ada Lovelace (+14155550100): Running late\n"
        "  Image: https://media/1"
    )
    assert "SECRET" not in json.dumps(data)
    assert data["senders"] == [{"id": 1001, "type": "Contact"}]
    assert data["receivers"] == [{"id": 3456, "type": "User"}]
    assert data["received_at"] == "2024-06-01T16:05:00Z" and data["matter"] == {"id": 77}
    assert data["external_properties"] == [{"name": LOG_KEY_PROPERTY, "value": "message:42"}]


@responses.activate
def test_a_voicemail_is_logged_with_its_recording(client, user) -> None:
    responses.post(f"{US}/api/v4/communications.json", status=201, json={"data": {"id": 701}})

    client.create_message_log(
        user=user,
        contact=contact(),
        data=MessageLogInput(
            message=sms(type="VoiceMail", subject=""), links={"recordingLink": "https://rec/1"}
        ),
    )

    data = sent_json()["data"]
    assert data["subject"].startswith("Voicemail from Ada Lovelace")
    assert "Recording: https://rec/1" in data["body"]


@responses.activate
def test_a_new_message_is_appended_with_if_match_and_its_key(client, user) -> None:
    responses.get(
        f"{US}/api/v4/communications/700.json",
        json={
            "data": {
                "id": 700,
                "etag": '"e1"',
                "body": "Conversation with Ada\n- first\n",
                "external_properties": [{"id": 11, "name": LOG_KEY_PROPERTY, "value": "message:42"}],
            }
        },
        headers={"ETag": '"e1"'},
    )
    responses.patch(f"{US}/api/v4/communications/700.json", json={"data": {"id": 700}})

    client.update_message_log(
        user=user,
        contact=contact(),
        crm_log_id="700",
        data=MessageLogInput(
            message=sms(id=43, direction="Outbound", subject="On my way"), log_key="message:43"
        ),
    )

    patch = responses.calls[1].request
    assert patch.headers["IF-MATCH"] == '"e1"'
    assert json.loads(patch.body) == {
        "data": {
            "body": "Conversation with Ada\n- first\n- 2024-06-01 09:05 AM Casey Counsel: On my way",
            "external_properties": [{"name": LOG_KEY_PROPERTY, "value": "message:43"}],
        }
    }


@responses.activate
def test_the_oldest_of_our_keys_gives_way_at_clios_five_properties(client, user) -> None:
    properties = [{"id": 20 + n, "name": LOG_KEY_PROPERTY, "value": f"message:{n}"} for n in range(4)]
    properties.insert(0, {"id": 5, "name": "other_app", "value": "x"})
    responses.get(
        f"{US}/api/v4/communications/700.json",
        json={"data": {"id": 700, "etag": '"e1"', "body": "b", "external_properties": properties}},
    )
    responses.patch(f"{US}/api/v4/communications/700.json", json={"data": {"id": 700}})

    client.update_message_log(
        user=user,
        contact=contact(),
        crm_log_id="700",
        data=MessageLogInput(message=sms(id=9), log_key="message:9"),
    )

    assert sent_json()["data"]["external_properties"] == [
        {"id": 20, "_destroy": True},
        {"name": LOG_KEY_PROPERTY, "value": "message:9"},
    ]


@responses.activate
def test_a_message_the_communication_already_holds_is_not_appended_twice(client, user) -> None:
    responses.get(
        f"{US}/api/v4/communications/700.json",
        json={
            "data": {
                "id": 700,
                "body": "b",
                "external_properties": [{"id": 1, "name": LOG_KEY_PROPERTY, "value": "message:43"}],
            }
        },
    )

    client.update_message_log(
        user=user,
        contact=contact(),
        crm_log_id="700",
        data=MessageLogInput(message=sms(id=43), log_key="message:43"),
    )

    assert [call.request.method for call in responses.calls] == ["GET"]


@responses.activate
def test_an_append_that_lost_a_race_reads_again_and_keeps_the_other_writers_line(client, user) -> None:
    url = f"{US}/api/v4/communications/700.json"
    responses.get(url, json={"data": {"id": 700, "etag": '"e1"', "body": "head", "external_properties": []}})
    responses.patch(url, status=412, json={"error": {"type": "PreconditionFailed", "message": "stale"}})
    responses.get(
        url, json={"data": {"id": 700, "etag": '"e2"', "body": "head\n- other", "external_properties": []}}
    )
    responses.patch(url, json={"data": {"id": 700}})

    client.update_message_log(
        user=user,
        contact=contact(),
        crm_log_id="700",
        data=MessageLogInput(message=sms(id=44), log_key="message:44"),
    )

    assert [call.request.method for call in responses.calls] == ["GET", "PATCH", "GET", "PATCH"]
    last = responses.calls[3].request
    assert last.headers["IF-MATCH"] == '"e2"'
    assert json.loads(last.body)["data"]["body"].startswith("head\n- other\n- ")


@responses.activate
def test_shared_sms_replaces_the_whole_conversation(client, user) -> None:
    responses.patch(f"{US}/api/v4/communications/700.json", json={"data": {"id": 700}})

    client.update_message_log(
        user=user,
        contact=contact(),
        crm_log_id="700",
        data=MessageLogInput(message=sms(), shared_content={"subject": "Shared", "body": "all of it"}),
    )

    assert sent_json() == {"data": {"body": "all of it", "subject": "Shared"}}
    assert "IF-MATCH" not in responses.calls[0].request.headers


@responses.activate
def test_find_message_log_finds_the_communication_holding_the_key(client, user) -> None:
    responses.get(
        f"{US}/api/v4/communications.json",
        json={
            "data": [
                {
                    "id": 700,
                    "external_properties": [{"id": 1, "name": LOG_KEY_PROPERTY, "value": "message:43"}],
                }
            ]
        },
        match=[matchers.query_param_matcher({"external_property_value": "message:43"}, strict_match=False)],
    )

    assert client.find_message_log(user=user, log_key="message:43", contact_id="1001") == "700"


# --- failures -------------------------------------------------------------------------------


@responses.activate
def test_a_429_with_a_long_retry_after_is_raised_with_it_and_the_rate_limit_headers(client, user) -> None:
    responses.post(
        f"{US}/api/v4/communications.json",
        status=429,
        json={"error": {"type": "RateLimited", "message": "Too Many Requests"}},
        headers={
            "Retry-After": "37",
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": "1717245060",
        },
    )

    with pytest.raises(CrmRateLimited) as raised:
        client.create_call_log(user=user, contact=contact(), data=CallLogInput(call_log=INBOUND_CALL))

    assert raised.value.retry_after == 37
    assert raised.value.limits["x-ratelimit-limit"] == "50"
    assert len(responses.calls) == 1


@responses.activate
def test_a_401_is_an_auth_error(client, user) -> None:
    responses.get(
        f"{US}/api/v4/contacts.json",
        status=401,
        json={"error": {"type": "Unauthorized", "message": "invalid token"}},
    )

    with pytest.raises(CrmAuthError):
        client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)


@responses.activate
def test_a_422_is_a_rejection(client, user) -> None:
    responses.post(
        f"{US}/api/v4/contacts.json",
        status=422,
        json={
            "error": {
                "type": "ValidationError",
                "message": "At least one of first name or last name must be provided",
            }
        },
    )

    with pytest.raises(CrmRejected) as raised:
        client.create_contact(
            user=user, phone_number="+1415", name="X", contact_type="Person", additional_submission={}
        )
    assert raised.value.status_code == 422


# --- against the fake, over loopback ---------------------------------------------------------


@pytest.fixture
def fake(settings, db):
    fake = ClioFake()
    with served(fake, settings, app_key="clio_eu", OUTBOUND_RETRY_AFTER_CAP_SECONDS=2.0):
        yield fake


def test_smoke_login_lookup_log_and_logout_against_the_fake(fake: ClioFake) -> None:
    # OAuth login in the EU region, through the login service
    query = fake.callback_query(hostname="eu.app.clio.com")
    outcome = crm_user_login_with_oauth(
        platform="clio", callback_uri=query["callbackUri"], hostname=query["hostname"], query={}
    )
    assert outcome.user_id == fake.user_id
    user = CrmUser.objects.get(pk=fake.user_id)
    assert user.hostname == "eu.app.clio.com" and user.timezone_offset in ("-07:00", "-08:00")
    assert user.token_expiry > timezone.now() + timedelta(days=29)
    client = crm_registry.get("clio")

    # a number stored as people type it is found through the overriding format
    ada = fake.add_contact(name="Ada Lovelace", phone="(415) 555-0100")
    fake.add_matter(client_id=ada, display_number="00077-Lovelace", description="Estate")
    found = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )
    assert [c["id"] for c in found.contacts] == [ada, "createNewContact"]
    matter = found.contacts[0]["additionalInfo"]["matters"][0]

    # a placeholder contact for an unknown number
    created = client.create_contact(
        user=user,
        phone_number="+16505550111",
        name="Caller 0111",
        contact_type="Person",
        additional_submission={},
    )
    assert fake.contacts_with_phone("+16505550111")[0]["id"] == int(created.contact["id"])

    # a call, found again by its key, updated and read back
    log = client.create_call_log(
        user=user,
        contact=contact(id=ada),
        data=CallLogInput(
            call_log=INBOUND_CALL,
            composed_log_details="- Note: hello\n",
            additional_submission={"matters": matter["const"]},
            log_key="call:s-1:ext-101",
        ),
    )
    assert client.find_call_log(user=user, log_key="call:s-1:ext-101", contact_id=ada) == log.log_id
    assert client.find_call_log(user=user, log_key="call:s-2:ext-101", contact_id=ada) is None
    client.update_call_log(
        user=user,
        data=CallLogUpdate(crm_log_id=str(log.log_id), contact_id=ada, composed_log_details="- Note: bye\n"),
    )
    assert client.get_call_log(user=user, crm_log_id=str(log.log_id), contact_id=ada).info["note"] == "bye"
    [stored] = fake.call_logs()
    assert (stored["id"], stored["contact_id"], stored["body"]) == (log.log_id, ada, "- Note: bye\n")

    # a conversation: created, then a second message appended, each findable by its key
    first = client.create_message_log(
        user=user, contact=contact(id=ada), data=MessageLogInput(message=sms(), log_key="message:42")
    )
    client.update_message_log(
        user=user,
        contact=contact(id=ada),
        crm_log_id=str(first.log_id),
        data=MessageLogInput(message=sms(id=43, subject="Here now"), log_key="message:43"),
    )
    [conversation] = fake.message_logs()
    assert conversation["body"].endswith("Here now") and conversation["log_keys"] == [
        "message:42",
        "message:43",
    ]
    assert client.find_message_log(user=user, log_key="message:43", contact_id=ada) == first.log_id

    # Clio throttles: a short Retry-After is waited out, the write goes through once
    method, pattern = fake.routes["create_call_log"]
    fake.api.fail(
        method, pattern, Reply(429, {"error": {"type": "RateLimited"}}, headers={"Retry-After": "0"})
    )
    client.create_call_log(user=user, contact=contact(id=ada), data=CallLogInput(call_log=INBOUND_CALL))
    assert len(fake.call_logs()) == 2

    # logout revokes the token at Clio: it no longer works
    client.unauthorize(user=user)
    assert fake.oauth.revocations[-1]["token"] == user.access_token
    with pytest.raises(CrmAuthError):
        client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)


def test_every_request_to_the_fake_went_to_a_clio_host_path(fake: ClioFake) -> None:
    user = CrmUser.objects.create(
        id=fake.user_id,
        platform="clio",
        hostname="au.app.clio.com",
        access_token=fake.access_token(),
        token_expiry=timezone.now() + timedelta(days=10),
    )
    fake.page_size = 1
    for n in range(3):
        fake.add_contact(name=f"Shared Line {n}", phone="+61291234567")

    found = crm_registry.get("clio").find_contact(
        user=user, phone_number="+61291234567", overriding_format="", is_extension=False
    )

    # two pages followed at most (SEARCH_PAGES_MAX), one matter lookup per contact
    assert len(found.contacts) == 3
    assert [r.path for r in fake.api.requests("GET")].count("/api/v4/contacts.json") == 2
