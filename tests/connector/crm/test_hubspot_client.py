"""The HubSpot client: each request it sends and how HubSpot's documented answers map to
App Connect's results, recorded with `responses`; then one run against the loopback fake.

The recorded answers are shaped as developers.hubspot.com shows them (OAuth v3 token and
introspection, account details, owners, CRM search, contacts, calls, communications,
associations v4, batch read; the 429 body of the API usage guidelines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.utils import timezone

from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogInput,
    CallLogUpdate,
    CrmAuthError,
    CrmRateLimited,
    CrmRejected,
    LogContact,
    MessageLogInput,
    OAuthTokens,
)
from connector.crm.hubspot import (
    HubspotCrmClient,
    html_to_plain,
    key_stamp,
    phone_formats,
    plain_to_html,
)
from connector.crm.registry import crm_registry
from connector.models import CrmUser
from tests.crm_fakes.hubspot import HUB_ID, OWNER_ID, PRIVATE_APP_TOKEN, HubspotFake
from tests.crm_fakes.server import served

API = "https://api.hubapi.com"
CLIENT_ID, CLIENT_SECRET = "hs-client-id", "hs-client-secret"
CALL_KEY = "call:session-1:ext-hash"
MESSAGE_KEY = "message:9001"


@pytest.fixture
def client(settings) -> HubspotCrmClient:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
        "OUTBOUND_ATTEMPTS": 3,
        "OAUTH_APPS": {
            **settings.CONNECTOR["OAUTH_APPS"],
            "hubspot": {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_url": "",
                "redirect_uri": "",
            },
        },
    }
    return HubspotCrmClient("hubspot")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def user(db) -> CrmUser:
    return CrmUser.objects.create(
        id="7001-hubspot",
        platform="hubspot",
        access_token="at-live",
        refresh_token="rt-live",
        token_expiry=timezone.now() + timedelta(minutes=25),
        platform_additional_info_json=json.dumps({"authMode": "oauth", "ownerId": OWNER_ID, "hubId": HUB_ID}),
    )


@pytest.fixture
def token_user(db) -> CrmUser:
    return CrmUser.objects.create(
        id=f"portal{HUB_ID}-hubspot",
        platform="hubspot",
        access_token=PRIVATE_APP_TOKEN,
        platform_additional_info_json=json.dumps({"authMode": "apiToken", "hubId": HUB_ID}),
    )


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


def sent_form(call: Any) -> dict[str, str]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else body
    return {k: v[0] for k, v in parse_qs(text).items()}


def query_of(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(call.request.url).query).items()}


def hs_record(record_id: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An object as HubSpot's v3 object APIs return one."""
    return {
        "id": record_id,
        "properties": {"hs_object_id": record_id, **properties},
        "createdAt": "2026-05-01T10:00:00.000Z",
        "updatedAt": "2026-05-01T10:00:00.000Z",
        "archived": False,
    }


CONTACT = LogContact(id="51001", phone_number="+14155550100", type="contact", name="Ada Lovelace")


# --- manifest and OAuth -------------------------------------------------------------------


def test_the_manifest_offers_oauth_with_hubspots_authorize_url_and_never_the_secret(client) -> None:
    manifest = client.manifest()

    assert manifest["name"] == "hubspot"
    assert manifest["contactTypes"] == [{"display": "Contact", "value": "contact"}]
    oauth = manifest["auth"]["oauth"]
    assert manifest["auth"]["type"] == "oauth"
    assert oauth["authUrl"] == "https://app.hubspot.com/oauth/authorize"
    assert oauth["clientId"] == CLIENT_ID
    assert (
        oauth["scope"]
        == "scope=oauth crm.objects.contacts.read crm.objects.contacts.write crm.objects.owners.read"
    )
    assert oauth["customState"] == "platform=hubspot"
    assert CLIENT_SECRET not in json.dumps(manifest)
    assert client.get_log_format_type() == "text/plain"


def test_the_oauth_app_uses_the_v3_token_endpoint_with_credentials_in_the_body(client) -> None:
    info = client.oauth_info()

    assert info.token_url == "https://api.hubapi.com/oauth/v3/token"
    assert info.revoke_url == "https://api.hubapi.com/oauth/2026-03/token/revoke"
    assert info.token_auth_method == "client_secret_post"
    assert (info.client_id, info.client_secret) == (CLIENT_ID, CLIENT_SECRET)


def test_the_code_is_exchanged_with_every_parameter_in_the_form_body(client, mocked) -> None:
    mocked.post(
        f"{API}/oauth/v3/token",
        json={"token_type": "bearer", "refresh_token": "rt-1", "access_token": "at-1", "expires_in": 1800},
    )
    info = client.oauth_info()

    tokens = client.oauth_exchange_code(info=info, callback_uri=f"{info.redirect_uri}?code=the-code&state=x")

    form = sent_form(mocked.calls[0])
    assert form == {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": info.redirect_uri,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert "Authorization" not in mocked.calls[0].request.headers
    assert (tokens.access_token, tokens.refresh_token) == ("at-1", "rt-1")
    assert tokens.expires_at is not None
    assert timedelta(minutes=29) < tokens.expires_at - timezone.now() <= timedelta(minutes=30)


def test_a_refresh_sends_the_refresh_token_and_the_client_in_the_body(client, mocked) -> None:
    mocked.post(
        f"{API}/oauth/v3/token",
        json={"token_type": "bearer", "refresh_token": "rt-2", "access_token": "at-2", "expires_in": 1800},
    )

    tokens = client.oauth_refresh(info=client.oauth_info(), refresh_token="rt-1")

    assert sent_form(mocked.calls[0]) == {
        "grant_type": "refresh_token",
        "refresh_token": "rt-1",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert (tokens.access_token, tokens.refresh_token) == ("at-2", "rt-2")


def introspection(**overrides: Any) -> dict[str, Any]:
    return {
        "token_use": "access_token",
        "active": True,
        "token": "at-1",
        "hub_id": 4242001,
        "user_id": 7001,
        "client_id": CLIENT_ID,
        "app_id": 3100,
        "scopes": ["oauth", "crm.objects.contacts.read"],
        "expires_in": 1790,
        "is_private_distribution": True,
        "token_type": "access",
        "user": "olive@example.com",
        "hub_domain": "olive-example.com",
        **overrides,
    }


ACCOUNT = {
    "portalId": 4242001,
    "accountType": "STANDARD",
    "timeZone": "US/Eastern",
    "companyCurrency": "USD",
    "additionalCurrencies": [],
    "utcOffset": "-05:00",
    "utcOffsetMilliseconds": -18000000,
    "uiDomain": "app.hubspot.com",
    "dataHostingLocation": "na1",
}


def new_tokens() -> OAuthTokens:
    return OAuthTokens(access_token="at-1", refresh_token="rt-1", expires_at=None, raw={"expires_in": 1800})


def test_who_connected_comes_from_token_introspection_and_the_users_owner(client, mocked, db) -> None:
    mocked.post(f"{API}/oauth/v3/token/introspect", json=introspection())
    mocked.get(
        f"{API}/crm/v3/owners/7001",
        json={
            "id": "9001",
            "email": "olive@example.com",
            "firstName": "Olive",
            "lastName": "Owner",
            "userId": 7001,
        },
    )
    mocked.get(f"{API}/account-info/v3/details", json=ACCOUNT)

    info = client.oauth_user_info(info=client.oauth_info(), tokens=new_tokens(), hostname="", query={})

    assert sent_form(mocked.calls[0]) == {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "token": "at-1",
        "token_type_hint": "access_token",
    }
    assert query_of(mocked.calls[1]) == {"idProperty": "userId"}
    assert mocked.calls[1].request.headers["Authorization"] == "Bearer at-1"
    assert mocked.calls[2].request.headers["Authorization"] == "Bearer at-1"
    assert info.successful
    assert info.user_id == "7001-hubspot"
    assert info.name == "Olive Owner"
    assert (info.timezone_name, info.timezone_offset) == ("US/Eastern", "-05:00")
    assert info.platform_additional_info == {
        "authMode": "oauth",
        "hubId": 4242001,
        "hubDomain": "olive-example.com",
        "email": "olive@example.com",
        "uiDomain": "app.hubspot.com",
        "ownerId": "9001",
    }


def test_a_user_without_an_owner_record_still_connects_without_an_owner_id(client, mocked, db) -> None:
    mocked.post(f"{API}/oauth/v3/token/introspect", json=introspection())
    mocked.get(
        f"{API}/crm/v3/owners/7001",
        status=404,
        json={"status": "error", "message": "Owner not found", "category": "OBJECT_NOT_FOUND"},
    )
    mocked.get(f"{API}/account-info/v3/details", json=ACCOUNT)

    info = client.oauth_user_info(info=client.oauth_info(), tokens=new_tokens(), hostname="", query={})

    assert info.successful and info.name == "olive@example.com"
    assert "ownerId" not in info.platform_additional_info


def test_an_inactive_token_connects_nobody(client, mocked, db) -> None:
    mocked.post(f"{API}/oauth/v3/token/introspect", json={"active": False})

    info = client.oauth_user_info(info=client.oauth_info(), tokens=new_tokens(), hostname="", query={})

    assert not info.successful and info.user_id == ""
    assert len(mocked.calls) == 1


def test_a_private_app_token_logs_in_as_its_account(client, mocked) -> None:
    mocked.get(f"{API}/account-info/v3/details", json=ACCOUNT)

    info = client.get_user_info(api_key=PRIVATE_APP_TOKEN, hostname="", additional_info={})

    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {PRIVATE_APP_TOKEN}"
    assert info.successful
    assert info.user_id == "portal4242001-hubspot"
    assert info.platform_additional_info == {
        "authMode": "apiToken",
        "hubId": 4242001,
        "uiDomain": "app.hubspot.com",
    }
    assert info.timezone_name == "US/Eastern"


def test_a_refused_private_app_token_is_an_unsuccessful_login(client, mocked) -> None:
    mocked.get(
        f"{API}/account-info/v3/details",
        status=401,
        json={
            "status": "error",
            "message": "Authentication credentials not found.",
            "category": "INVALID_AUTHENTICATION",
        },
    )

    info = client.get_user_info(api_key="pat-wrong", hostname="", additional_info={})

    assert not info.successful
    assert info.return_message is not None and "refused" in info.return_message["message"]


def test_api_token_users_send_their_private_app_token(client, mocked, token_user) -> None:
    mocked.post(f"{API}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})

    client.find_contact(
        user=token_user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert mocked.calls[0].request.headers["Authorization"] == f"Bearer {PRIVATE_APP_TOKEN}"


def test_logging_out_revokes_the_refresh_token_with_the_client_in_the_body(client, mocked, user) -> None:
    mocked.post(f"{API}/oauth/2026-03/token/revoke", status=200, body="")

    message = client.unauthorize(user=user)

    assert sent_form(mocked.calls[0]) == {
        "token": "rt-live",
        "token_type_hint": "refresh_token",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    assert message is not None and message["messageType"] == "success"


def test_logging_out_a_private_app_token_sends_nothing(client, mocked, token_user) -> None:
    message = client.unauthorize(user=token_user)

    assert len(mocked.calls) == 0
    assert message is not None and message["messageType"] == "success"


def test_auth_validation_asks_for_the_account_details(client, mocked, user) -> None:
    mocked.get(f"{API}/account-info/v3/details", json=ACCOUNT)
    mocked.get(f"{API}/account-info/v3/details", status=401, json={"status": "error", "message": "expired"})

    assert client.auth_validation(user=user)[0] is True
    valid, message = client.auth_validation(user=user)
    assert valid is False and message is not None and message["messageType"] == "warning"


# --- contacts -----------------------------------------------------------------------------


def test_phone_formats_cover_e164_national_and_each_overriding_format() -> None:
    formats = phone_formats("+14155550100", "(***) ***-****, 1##########,***.***, ")

    assert formats == [
        "+14155550100",
        "4155550100",
        "(415) 555-0100",
        "+1 415-555-0100",
        "14155550100",
    ]  # "***.***" takes six of the ten digits: it does not fit the number


def test_phone_formats_of_text_that_is_no_number_are_the_text_alone() -> None:
    assert phone_formats("101", "(***) ***-****") == ["101"]


def test_a_lookup_searches_phone_and_mobile_for_every_format_and_offers_a_new_contact(
    client, mocked, user
) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts/search",
        json={
            "total": 1,
            "results": [
                hs_record(
                    "51001",
                    {
                        "firstname": "Ada",
                        "lastname": "Lovelace",
                        "phone": "(415) 555-0100",
                        "mobilephone": None,
                        "createdate": "2026-01-02T03:04:05.000Z",
                        "lastmodifieddate": "2026-05-01T10:00:00.000Z",
                        "notes_last_updated": "2026-04-30T09:00:00.000Z",
                    },
                )
            ],
        },
    )

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )

    body = sent_json(mocked.calls[0])
    formats = ["+14155550100", "4155550100", "(415) 555-0100", "+1 415-555-0100"]
    assert body["filterGroups"] == [
        {"filters": [{"propertyName": "phone", "operator": "IN", "values": formats}]},
        {"filters": [{"propertyName": "mobilephone", "operator": "IN", "values": formats}]},
    ]
    assert set(body["properties"]) >= {"firstname", "lastname", "phone", "mobilephone", "createdate"}
    assert mocked.calls[0].request.headers["Authorization"] == "Bearer at-live"
    assert result.successful
    assert result.contacts == [
        {
            "id": "51001",
            "name": "Ada Lovelace",
            "type": "contact",
            "phone": "+14155550100",
            "createdDate": "2026-01-02T03:04:05.000Z",
            "mostRecentActivityDate": "2026-04-30T09:00:00.000Z",
            "additionalInfo": None,
        },
        NEW_CONTACT_OPTION,
    ]


def test_no_match_leaves_only_the_new_contact_option(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert result.successful and result.contacts == [NEW_CONTACT_OPTION]


def test_an_extension_is_not_looked_up(client, mocked, user) -> None:
    result = client.find_contact(user=user, phone_number="101", overriding_format="", is_extension=True)

    assert (result.successful, result.contacts) == (False, [])
    assert len(mocked.calls) == 0


def test_a_name_search_uses_hubspots_text_query(client, mocked, user) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts/search",
        json={
            "total": 1,
            "results": [hs_record("51002", {"firstname": "Grace", "lastname": None, "mobilephone": "+1"})],
        },
    )

    result = client.find_contact_with_name(user=user, name=" Grace ")

    assert sent_json(mocked.calls[0])["query"] == "Grace"
    assert result.contacts is not None
    assert [(c["id"], c["name"], c["phone"]) for c in result.contacts] == [("51002", "Grace", "+1")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Caller 0100", {"firstname": "Caller", "lastname": "0100"}),
        ("Ada  King Lovelace", {"firstname": "Ada", "lastname": "King Lovelace"}),
        ("Madonna", {"firstname": "Madonna"}),
    ],
)
def test_a_placeholder_contact_is_created_with_its_name_split_and_its_phone(
    client, mocked, user, name: str, expected: dict[str, str]
) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts",
        status=201,
        json=hs_record("51003", {**expected, "phone": "+14155550100"}),
    )

    result = client.create_contact(
        user=user, phone_number="+14155550100", name=name, contact_type="contact", additional_submission={}
    )

    assert sent_json(mocked.calls[0]) == {"properties": {**expected, "phone": "+14155550100"}}
    assert result.contact == {"id": "51003", "name": " ".join(name.split()), "type": "contact"}


def test_an_unknown_contact_type_is_refused_before_asking_hubspot(client, mocked, user) -> None:
    with pytest.raises(CrmRejected):
        client.create_contact(
            user=user, phone_number="+14155550100", name="X", contact_type="lead", additional_submission={}
        )
    assert len(mocked.calls) == 0


# --- call logs ----------------------------------------------------------------------------


def call_input(**call: Any) -> CallLogInput:
    record = {
        "sessionId": "session-1",
        "direction": "Inbound",
        "startTime": "2026-05-01T10:00:00.250Z",
        "duration": 65,
        "result": "Call connected",
        "from": {"phoneNumber": "+14155550100", "name": "Ada"},
        "to": {"phoneNumber": "+16505550111", "name": "Olive"},
        **call,
    }
    return CallLogInput(
        call_log=record,
        note="Wants a quote",
        composed_log_details=(
            "- Note: Wants a quote\n- Summary: Inbound Call from Ada Lovelace\n"
            "- Duration: 1 minute, 5 seconds\n"
        ),
        log_key=CALL_KEY,
    )


def test_a_call_is_logged_with_its_properties_and_the_contact_association(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/calls", status=201, json=hs_record("81001", {}))

    result = client.create_call_log(user=user, contact=CONTACT, data=call_input())

    assert sent_json(mocked.calls[0]) == {
        "properties": {
            "hs_timestamp": "2026-05-01T10:00:00.250Z",
            "hs_call_title": "Inbound Call from Ada Lovelace",
            "hs_call_body": "- Note: Wants a quote<br>- Summary: Inbound Call from Ada Lovelace<br>"
            "- Duration: 1 minute, 5 seconds<br>",
            "hs_call_direction": "INBOUND",
            "hs_call_duration": "65000",
            "hs_call_status": "COMPLETED",
            "hs_call_from_number": "+14155550100",
            "hs_call_to_number": "+16505550111",
            "hs_call_external_id": key_stamp(CALL_KEY),
            "hubspot_owner_id": OWNER_ID,
        },
        "associations": [
            {
                "to": {"id": "51001"},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 194}],
            }
        ],
    }
    assert result.log_id == "81001"


def test_a_pending_outbound_call_from_server_side_logging(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/calls", status=201, json=hs_record("81002", {}))

    client.create_call_log(
        user=user,
        contact=CONTACT,
        data=call_input(direction="Outbound", duration="pending", startTime=1777629600000, result="Missed"),
    )

    properties = sent_json(mocked.calls[0])["properties"]
    assert "hs_call_duration" not in properties
    assert properties["hs_timestamp"] == "2026-05-01T10:00:00.000Z"
    assert properties["hs_call_title"] == "Outbound Call to Ada Lovelace"
    assert (properties["hs_call_direction"], properties["hs_call_status"]) == ("OUTBOUND", "MISSED")


def test_a_custom_subject_wins_and_markup_in_the_body_is_escaped(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/calls", status=201, json=hs_record("81003", {}))
    data = call_input(customSubject="Renewal <urgent>")
    data.composed_log_details = "- Note: a < b & c\n"

    client.create_call_log(user=user, contact=CONTACT, data=data)

    properties = sent_json(mocked.calls[0])["properties"]
    assert properties["hs_call_title"] == "Renewal <urgent>"
    assert properties["hs_call_body"] == "- Note: a &lt; b &amp; c<br>"


def test_a_call_log_update_patches_only_what_changed(client, mocked, user) -> None:
    mocked.patch(f"{API}/crm/v3/objects/calls/81001", json=hs_record("81001", {}))

    result = client.update_call_log(
        user=user,
        data=CallLogUpdate(
            crm_log_id="81001",
            contact_id="51001",
            subject="Renewal call",
            note="Sent the quote",
            duration=125,
            result="Call connected",
            composed_log_details="- Note: Sent the quote\n- Duration: 2 minutes, 5 seconds\n",
        ),
    )

    assert sent_json(mocked.calls[0]) == {
        "properties": {
            "hs_call_body": "- Note: Sent the quote<br>- Duration: 2 minutes, 5 seconds<br>",
            "hs_call_title": "Renewal call",
            "hs_call_duration": "125000",
            "hs_call_status": "COMPLETED",
        }
    }
    assert result.updated_note == "Sent the quote"


def test_a_note_update_without_composed_details_rewrites_the_stored_note(client, mocked, user) -> None:
    mocked.get(
        f"{API}/crm/v3/objects/calls/81001",
        json=hs_record("81001", {"hs_call_body": "<p>- Note: old<br>- Result: Call connected</p>"}),
    )
    mocked.patch(f"{API}/crm/v3/objects/calls/81001", json=hs_record("81001", {}))

    client.update_call_log(user=user, data=CallLogUpdate(crm_log_id="81001", contact_id="51001", note="new"))

    assert query_of(mocked.calls[0]) == {"properties": "hs_call_body"}
    assert sent_json(mocked.calls[1]) == {
        "properties": {"hs_call_body": "- Note: new<br>- Result: Call connected<br>"}
    }


def test_a_call_log_is_read_back_as_plain_text(client, mocked, user) -> None:
    mocked.get(
        f"{API}/crm/v3/objects/calls/81001",
        json=hs_record(
            "81001",
            {
                "hs_call_title": "Inbound Call from Ada Lovelace",
                "hs_call_body": "<p>- Note: Wants a quote &amp; more<br>"
                "- Duration: 1 minute, 5 seconds<br></p>",
            },
        ),
    )

    details = client.get_call_log(user=user, crm_log_id="81001", contact_id="51001")

    assert "hs_call_body" in query_of(mocked.calls[0])["properties"].split(",")
    assert details.info is not None
    assert details.info["subject"] == "Inbound Call from Ada Lovelace"
    assert details.info["note"] == "Wants a quote & more"
    assert details.info["fullBody"] == "- Note: Wants a quote & more\n- Duration: 1 minute, 5 seconds\n"
    assert details.info["fullLogResponse"]["id"] == "81001"


def test_plain_text_survives_the_round_trip_through_a_rich_text_body() -> None:
    text = '- Note: <b> & "quoted"\n- Summary: x\n'

    assert html_to_plain(plain_to_html(text)) == text
    assert html_to_plain(f"<div>{plain_to_html(text)}</div>") == text


def search_answer(*records: dict[str, Any]) -> dict[str, Any]:
    return {"total": len(records), "results": list(records)}


def test_find_call_log_finds_the_call_by_its_external_id(client, mocked, user) -> None:
    stamp = key_stamp(CALL_KEY)
    mocked.post(
        f"{API}/crm/v3/objects/calls/search",
        json=search_answer(hs_record("81001", {"hs_call_external_id": stamp})),
    )

    assert client.find_call_log(user=user, log_key=CALL_KEY, contact_id="51001") == "81001"
    assert sent_json(mocked.calls[0])["filterGroups"] == [
        {"filters": [{"propertyName": "hs_call_external_id", "operator": "EQ", "value": stamp}]}
    ]


def test_find_call_log_reads_the_contacts_calls_when_search_has_not_caught_up(client, mocked, user) -> None:
    stamp = key_stamp(CALL_KEY)
    mocked.post(f"{API}/crm/v3/objects/calls/search", json=search_answer())
    mocked.get(
        f"{API}/crm/v4/objects/contacts/51001/associations/calls",
        json={
            "results": [
                {"toObjectId": 81000, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 193}]}
            ],
            "paging": {"next": {"after": "MQ=="}},
        },
    )
    mocked.get(
        f"{API}/crm/v4/objects/contacts/51001/associations/calls",
        json={
            "results": [
                {"toObjectId": 81001, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 193}]}
            ]
        },
    )
    mocked.post(
        f"{API}/crm/v3/objects/calls/batch/read",
        json={
            "status": "COMPLETE",
            "results": [
                hs_record("81000", {"hs_call_external_id": None}),
                hs_record("81001", {"hs_call_external_id": stamp}),
            ],
        },
    )

    assert client.find_call_log(user=user, log_key=CALL_KEY, contact_id="51001") == "81001"
    assert query_of(mocked.calls[2]) == {"limit": "500", "after": "MQ=="}
    assert sent_json(mocked.calls[3]) == {
        "properties": ["hs_call_external_id"],
        "inputs": [{"id": "81001"}, {"id": "81000"}],
    }


def test_find_call_log_reads_the_contacts_calls_when_search_refuses_the_filter(client, mocked, user) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/calls/search",
        status=400,
        json={"status": "error", "message": "Invalid filter", "category": "VALIDATION_ERROR"},
    )
    mocked.get(
        f"{API}/crm/v4/objects/contacts/51001/associations/calls",
        json={"results": [{"toObjectId": 81001, "associationTypes": []}]},
    )
    mocked.post(
        f"{API}/crm/v3/objects/calls/batch/read",
        json={
            "status": "COMPLETE",
            "results": [hs_record("81001", {"hs_call_external_id": key_stamp(CALL_KEY)})],
        },
    )

    assert client.find_call_log(user=user, log_key=CALL_KEY, contact_id="51001") == "81001"


def test_find_call_log_answers_none_when_hubspot_holds_no_such_call(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/calls/search", json=search_answer())
    mocked.get(f"{API}/crm/v4/objects/contacts/51001/associations/calls", json={"results": []})

    assert client.find_call_log(user=user, log_key=CALL_KEY, contact_id="51001") is None


# --- message logs -------------------------------------------------------------------------


def message_input(message_id: str = "9001", text: str = "Hi <there>", **extra: Any) -> MessageLogInput:
    return MessageLogInput(
        message={
            "id": message_id,
            "type": "SMS",
            "direction": "Inbound",
            "creationTime": "2026-05-01T10:00:00.000Z",
            "subject": text,
            "from": {"phoneNumber": "+14155550100", "name": "Ada"},
            "conversationId": "c-1",
        },
        log_key=f"message:{message_id}",
        **extra,
    )


def test_a_text_is_logged_as_an_sms_communication_on_the_contact(client, mocked, user) -> None:
    mocked.post(f"{API}/crm/v3/objects/communications", status=201, json=hs_record("91001", {}))

    result = client.create_message_log(user=user, contact=CONTACT, data=message_input())

    body = sent_json(mocked.calls[0])
    assert body["properties"] == {
        "hs_communication_channel_type": "SMS",
        "hs_communication_logged_from": "CRM",
        "hs_communication_body": "<b>SMS conversation with Ada Lovelace</b><br>"
        f"2026-05-01T10:00:00.000Z Inbound Ada: Hi &lt;there&gt; (ref: {key_stamp(MESSAGE_KEY)})",
        "hs_timestamp": "2026-05-01T10:00:00.000Z",
        "hubspot_owner_id": OWNER_ID,
    }
    assert body["associations"] == [
        {
            "to": {"id": "51001"},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 81}],
        }
    ]
    assert result.log_id == "91001"


def test_the_next_text_of_the_conversation_is_appended(client, mocked, user) -> None:
    first = f"<b>SMS conversation with Ada Lovelace</b><br>line one (ref: {key_stamp(MESSAGE_KEY)})"
    mocked.get(
        f"{API}/crm/v3/objects/communications/91001",
        json=hs_record("91001", {"hs_communication_body": first}),
    )
    mocked.patch(f"{API}/crm/v3/objects/communications/91001", json=hs_record("91001", {}))
    data = message_input("9002", "Second", links={"imageLink": "https://media.example/1"})

    client.update_message_log(user=user, contact=CONTACT, crm_log_id="91001", data=data)

    assert query_of(mocked.calls[0]) == {"properties": "hs_communication_body"}
    assert sent_json(mocked.calls[1]) == {
        "properties": {
            "hs_communication_body": first + "<br>2026-05-01T10:00:00.000Z Inbound Ada: Second "
            f"imageLink: https://media.example/1 (ref: {key_stamp('message:9002')})"
        }
    }


def test_a_text_already_in_the_conversation_is_not_appended_twice(client, mocked, user) -> None:
    held = f"<b>SMS</b><br>line (ref: {key_stamp(MESSAGE_KEY)})"
    mocked.get(
        f"{API}/crm/v3/objects/communications/91001", json=hs_record("91001", {"hs_communication_body": held})
    )

    result = client.update_message_log(user=user, contact=CONTACT, crm_log_id="91001", data=message_input())

    assert len(mocked.calls) == 1  # no PATCH
    assert result.return_message is not None


def test_a_shared_sms_conversation_is_replaced_keeping_the_earlier_keys(client, mocked, user) -> None:
    earlier = key_stamp("message:9000")
    mocked.get(
        f"{API}/crm/v3/objects/communications/91001",
        json=hs_record("91001", {"hs_communication_body": f"<b>Old</b><br>old (ref: {earlier})"}),
    )
    mocked.patch(f"{API}/crm/v3/objects/communications/91001", json=hs_record("91001", {}))
    data = message_input(shared_content={"subject": "Shared SMS with Ada", "body": "- one\n- two\n"})

    client.update_message_log(user=user, contact=CONTACT, crm_log_id="91001", data=data)

    assert sent_json(mocked.calls[1]) == {
        "properties": {
            "hs_communication_body": "<b>Shared SMS with Ada</b><br>- one<br>- two"
            f"<br>(ref: {earlier}, {key_stamp(MESSAGE_KEY)})"
        }
    }


def test_find_message_log_looks_for_the_key_in_the_contacts_communications(client, mocked, user) -> None:
    mocked.get(
        f"{API}/crm/v4/objects/contacts/51001/associations/communications",
        json={
            "results": [
                {"toObjectId": 91001, "associationTypes": []},
                {"toObjectId": 91002, "associationTypes": []},
            ]
        },
    )
    mocked.post(
        f"{API}/crm/v3/objects/communications/batch/read",
        json={
            "status": "COMPLETE",
            "results": [
                hs_record("91002", {"hs_communication_body": "other"}),
                hs_record("91001", {"hs_communication_body": f"x (ref: {key_stamp(MESSAGE_KEY)})"}),
            ],
        },
    )

    assert client.find_message_log(user=user, log_key=MESSAGE_KEY, contact_id="51001") == "91001"
    assert client.find_message_log(user=user, log_key=MESSAGE_KEY, contact_id="") is None


# --- failures -----------------------------------------------------------------------------

RATE_LIMIT_BODY = {
    "status": "error",
    "message": "You have reached your secondly limit.",
    "errorType": "RATE_LIMIT",
    "correlationId": "c0ffee00-0000-0000-0000-000000000000",
    "policyName": "SECONDLY",
}
RATE_LIMIT_HEADERS = {
    "X-HubSpot-RateLimit-Max": "100",
    "X-HubSpot-RateLimit-Remaining": "0",
    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
}


def test_a_429_with_a_long_retry_after_is_raised_with_it_and_the_rate_limit_headers(
    client, mocked, user
) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts/search",
        status=429,
        json=RATE_LIMIT_BODY,
        headers={**RATE_LIMIT_HEADERS, "Retry-After": "30"},
    )

    with pytest.raises(CrmRateLimited) as raised:
        client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)

    assert raised.value.retry_after == 30
    assert raised.value.limits["x-hubspot-ratelimit-remaining"] == "0"
    assert len(mocked.calls) == 1


def test_a_429_without_retry_after_is_tried_again_after_a_backoff(client, mocked, user) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts/search", status=429, json=RATE_LIMIT_BODY, headers=RATE_LIMIT_HEADERS
    )
    mocked.post(f"{API}/crm/v3/objects/contacts/search", json={"total": 0, "results": []})

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert result.successful and len(mocked.calls) == 2


def test_a_429_that_lasts_goes_up_with_no_retry_after(client, mocked, user) -> None:
    for _ in range(3):
        mocked.post(
            f"{API}/crm/v3/objects/calls", status=429, json=RATE_LIMIT_BODY, headers=RATE_LIMIT_HEADERS
        )

    with pytest.raises(CrmRateLimited) as raised:
        client.create_call_log(user=user, contact=CONTACT, data=call_input())

    assert raised.value.retry_after is None
    assert len(mocked.calls) == 3


def test_a_401_is_an_auth_error(client, mocked, user) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/calls",
        status=401,
        json={
            "status": "error",
            "message": "The OAuth token used to make this call expired.",
            "category": "EXPIRED_AUTHENTICATION",
        },
    )

    with pytest.raises(CrmAuthError):
        client.create_call_log(user=user, contact=CONTACT, data=call_input())
    assert len(mocked.calls) == 1  # a write is never sent twice


def test_a_validation_error_is_a_rejection(client, mocked, user) -> None:
    mocked.post(
        f"{API}/crm/v3/objects/contacts",
        status=400,
        json={"status": "error", "message": "Property values were not valid", "category": "VALIDATION_ERROR"},
    )

    with pytest.raises(CrmRejected) as raised:
        client.create_contact(
            user=user, phone_number="+1", name="X", contact_type="contact", additional_submission={}
        )
    assert raised.value.status_code == 400


# --- against the loopback fake ------------------------------------------------------------


def test_the_client_against_the_fake_over_loopback(settings, db) -> None:
    fake = HubspotFake()
    fake.search_lag = 30.0  # nothing created here shows in search during the test
    with served(fake, settings):
        client = crm_registry.get("hubspot")
        assert isinstance(client, HubspotCrmClient)

        info = client.oauth_info()
        tokens = client.oauth_exchange_code(info=info, callback_uri=fake.callback_query()["callbackUri"])
        who = client.oauth_user_info(info=client.oauth_info(), tokens=tokens, hostname="", query={})
        assert (who.successful, who.user_id) == (True, fake.user_id)
        user = CrmUser.objects.create(
            id=who.user_id,
            platform="hubspot",
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            token_expiry=tokens.expires_at,
            platform_additional_info_json=json.dumps(who.platform_additional_info),
        )

        fake.search_lag = 0.0
        known = fake.add_contact(name="Ada Lovelace", phone="(415) 555-0100")
        fake.search_lag = 30.0
        found = client.find_contact(
            user=user, phone_number="+14155550100", overriding_format="", is_extension=False
        )
        assert found.contacts is not None and [c["id"] for c in found.contacts] == [known, "createNewContact"]

        created = client.create_contact(
            user=user,
            phone_number="+16505550111",
            name="Caller 0111",
            contact_type="contact",
            additional_submission={},
        )
        assert created.contact is not None
        new_id = created.contact["id"]
        assert [c["id"] for c in fake.contacts_with_phone("+16505550111")] == [new_id]
        # HubSpot's search has not seen the new contact yet.
        again = client.find_contact(
            user=user, phone_number="+16505550111", overriding_format="", is_extension=False
        )
        assert again.contacts == [NEW_CONTACT_OPTION]

        contact = LogContact(id=new_id, phone_number="+16505550111", name="Caller 0111")
        logged = client.create_call_log(user=user, contact=contact, data=call_input())
        assert fake.call_logs()[0]["contact_id"] == new_id
        assert fake.call_logs()[0]["properties"]["hubspot_owner_id"] == OWNER_ID
        # Found although search lags: read from the contact's calls themselves.
        assert client.find_call_log(user=user, log_key=CALL_KEY, contact_id=new_id) == logged.log_id
        assert client.find_call_log(user=user, log_key="call:other:x", contact_id=new_id) is None

        client.update_call_log(
            user=user,
            data=CallLogUpdate(
                crm_log_id=str(logged.log_id),
                contact_id=new_id,
                subject="Renamed",
                composed_log_details="- Note: n\n",
            ),
        )
        details = client.get_call_log(user=user, crm_log_id=str(logged.log_id), contact_id=new_id)
        assert details.info is not None
        assert (details.info["subject"], details.info["fullBody"], details.info["note"]) == (
            "Renamed",
            "- Note: n\n",
            "n",
        )

        message = client.create_message_log(user=user, contact=contact, data=message_input("9001", "one"))
        client.update_message_log(
            user=user, contact=contact, crm_log_id=str(message.log_id), data=message_input("9002", "two")
        )
        [stored] = fake.message_logs()
        assert stored["contact_id"] == new_id and stored["subject"] == "SMS conversation with Caller 0111"
        assert "one" in stored["body"] and "two" in stored["body"]
        assert client.find_message_log(user=user, log_key="message:9002", contact_id=new_id) == message.log_id
        assert client.find_message_log(user=user, log_key="message:9003", contact_id=new_id) is None

        client.unauthorize(user=user)
        assert fake.oauth.revocations[-1]["token"] == tokens.refresh_token
        with pytest.raises(CrmAuthError):
            client.oauth_refresh(info=info, refresh_token=tokens.refresh_token)
