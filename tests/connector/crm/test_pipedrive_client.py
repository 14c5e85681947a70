"""The Pipedrive connector: what it asks Pipedrive, and how Pipedrive's answers map to ours.

Exchanges are recorded with `responses` in the shapes Pipedrive's API reference shows
(developers.pipedrive.com/docs/api/v1 and v2: Users, ActivityTypes, Persons, Activities,
Oauth); the last tests drive the client against tests/crm_fakes/pipedrive.py over loopback.
"""

from __future__ import annotations

import base64
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
from connector.crm.pipedrive import (
    PipedriveCrmClient,
    html_to_plain,
    plain_to_html,
)
from connector.crm.registry import crm_registry
from connector.models import CrmUser
from tests.crm_fakes.pipedrive import PipedriveFake
from tests.crm_fakes.server import served

HOST = "https://acme.pipedrive.com"
USER_ID = "4242-pipedrive"
JANE = LogContact(id="77", phone_number="+14155550100", type="contact", name="Jane Roe")


@pytest.fixture
def client(settings) -> PipedriveCrmClient:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OAUTH_APPS": {
            **settings.CONNECTOR["OAUTH_APPS"],
            "pipedrive": {
                "client_id": "pd-client",
                "client_secret": "pd-secret",
                "token_url": "",
                "redirect_uri": "",
            },
        },
        "OUTBOUND_HOST_MAP": {},
        "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
        "OUTBOUND_ATTEMPTS": 3,
    }
    return PipedriveCrmClient("pipedrive")


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def pipedrive_user(
    *, api_token: bool = False, hostname: str = "acme.pipedrive.com", company_id: int | None = 7001
) -> CrmUser:
    info: dict[str, Any] = {"authMode": "apiToken" if api_token else "oauth"}
    if company_id is not None:
        info["companyId"] = company_id
    return CrmUser.objects.create(
        id=USER_ID,
        platform="pipedrive",
        name="Pat Pipedrive",
        hostname=hostname,
        timezone_offset="+03:00",
        access_token="pd-api-token" if api_token else "at-1",
        refresh_token="" if api_token else "rt-1",
        token_expiry=None if api_token else timezone.now() + timedelta(hours=1),
        platform_additional_info_json=json.dumps(info),
    )


def query(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


ME = {
    "success": True,
    "data": {
        "id": 4242,
        "name": "Pat Pipedrive",
        "email": "pat@acme.example",
        "timezone_name": "Europe/Tallinn",
        "timezone_offset": "+03:00",
        "company_id": 7001,
        "company_name": "Acme",
        "company_domain": "acme",
        "is_you": True,
    },
}

ACTIVITY_TYPES = {
    "success": True,
    "data": [
        {"id": 9, "order_nr": 0, "name": "Callback", "key_string": "callback", "active_flag": True},
        {"id": 1, "order_nr": 1, "name": "Call", "key_string": "call", "active_flag": True},
        {"id": 2, "order_nr": 2, "name": "Meeting", "key_string": "meeting", "active_flag": True},
        {"id": 8, "order_nr": 8, "name": "SMS (old)", "key_string": "sms_old", "active_flag": False},
        {"id": 7, "order_nr": 7, "name": "Text message SMS", "key_string": "text_sms", "active_flag": True},
    ],
}


def search_answer(*persons: tuple[int, str, str]) -> dict[str, Any]:
    """GET /api/v2/persons/search's answer (developers.pipedrive.com/docs/api/v2/Persons#searchPersons)."""
    return {
        "success": True,
        "data": {
            "items": [
                {
                    "result_score": 0.52,
                    "item": {
                        "id": pid,
                        "type": "person",
                        "name": name,
                        "phones": [phone],
                        "emails": [],
                        "visible_to": 3,
                        "owner": {"id": 4242},
                        "organization": {"id": 5, "name": "Roe Ltd", "address": None},
                        "custom_fields": [],
                        "notes": [],
                    },
                }
                for pid, name, phone in persons
            ]
        },
        "additional_data": {"next_cursor": None},
    }


def persons_answer(*ids: int) -> dict[str, Any]:
    """GET /api/v2/persons?ids=...'s answer (developers.pipedrive.com/docs/api/v2/Persons#getPersons)."""
    return {
        "success": True,
        "data": [
            {
                "id": pid,
                "name": f"Person {pid}",
                "owner_id": 4242,
                "org_id": 5,
                "add_time": f"2024-0{n + 1}-02T08:00:00Z",
                "update_time": f"2024-0{n + 1}-09T08:00:00Z",
                "phones": [{"value": "+14155550100", "primary": True, "label": "work"}],
                "emails": [],
                "is_deleted": False,
                "visible_to": 3,
            }
            for n, pid in enumerate(ids)
        ],
        "additional_data": {"next_cursor": None},
    }


def activity(aid: int, *, note: str, person_id: int = 77, type_: str = "call") -> dict[str, Any]:
    return {
        "id": aid,
        "subject": "Outbound Call to Jane Roe",
        "type": type_,
        "owner_id": 4242,
        "person_id": person_id,
        "participants": [{"person_id": person_id, "primary_flag": True}],
        "done": True,
        "add_time": "2024-05-01T10:16:00Z",
        "update_time": "2024-05-01T10:16:00Z",
        "due_date": "2024-05-01",
        "due_time": "10:15",
        "duration": "00:02",
        "note": note,
    }


# --- manifest and OAuth app ---------------------------------------------------------------


def test_the_manifest_offers_oauth_without_the_secret_and_one_contact_type(client) -> None:
    manifest = client.manifest()

    assert manifest["name"] == "pipedrive" and manifest["displayName"] == "Pipedrive"
    assert manifest["auth"] == {
        "type": "oauth",
        "oauth": {
            "authUrl": "https://oauth.pipedrive.com/oauth/authorize",
            "clientId": "pd-client",
            "redirectUri": "https://ringcentral.github.io/ringcentral-embeddable/redirect.html",
            "scope": "",
            "customState": "platform=pipedrive",
        },
    }
    assert "pd-secret" not in json.dumps(manifest)
    assert manifest["contactTypes"] == [{"display": "Person", "value": "contact"}]
    assert client.contact_type_values() == ["contact"]
    assert manifest["contactPageUrl"] == "https://{hostname}/person/{contactId}"
    assert client.get_log_format_type() == "text/plain"


def test_the_oauth_app_uses_pipedrives_endpoints_with_basic_client_auth(client, settings) -> None:
    info = client.oauth_info()

    assert (info.client_id, info.client_secret) == ("pd-client", "pd-secret")
    assert info.token_url == "https://oauth.pipedrive.com/oauth/token"
    assert info.revoke_url == "https://oauth.pipedrive.com/oauth/revoke"
    assert info.token_auth_method == "client_secret_basic"

    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OAUTH_APPS": {
            "pipedrive": {"client_id": "x", "client_secret": "y", "token_url": "https://sandbox.test/t"}
        },
    }
    assert client.oauth_info().token_url == "https://sandbox.test/t"


# --- who am I -----------------------------------------------------------------------------


def test_oauth_user_info_asks_the_company_host_of_api_domain(client, mocked) -> None:
    mocked.get(f"{HOST}/v1/users/me", json=ME)
    tokens = OAuthTokens(
        access_token="at-9",
        refresh_token="rt-9",
        expires_at=None,
        raw={"api_domain": "https://acme.pipedrive.com"},
    )

    info = client.oauth_user_info(info=client.oauth_info(), tokens=tokens, hostname="", query={})

    assert mocked.calls[0].request.headers["Authorization"] == "Bearer at-9"
    assert info.successful and info.user_id == USER_ID and info.name == "Pat Pipedrive"
    assert (info.timezone_name, info.timezone_offset) == ("Europe/Tallinn", "+03:00")
    assert info.overriding_hostname == "acme.pipedrive.com"
    assert info.platform_additional_info == {
        "authMode": "oauth",
        "companyId": 7001,
        "companyName": "Acme",
        "companyDomain": "acme",
    }


def test_an_api_domain_outside_pipedrive_never_receives_the_token(client, mocked) -> None:
    mocked.get("https://api.pipedrive.com/v1/users/me", json=ME)
    tokens = OAuthTokens(
        access_token="at-9", refresh_token="", expires_at=None, raw={"api_domain": "https://evil.test"}
    )

    info = client.oauth_user_info(info=client.oauth_info(), tokens=tokens, hostname="evil.test", query={})

    assert len(mocked.calls) == 1
    # the company's own host, from /users/me, becomes the user's host
    assert info.overriding_hostname == "acme.pipedrive.com"


def test_an_api_token_login_sends_the_token_in_the_x_api_token_header(client, mocked) -> None:
    mocked.get("https://api.pipedrive.com/v1/users/me", json=ME)

    info = client.get_user_info(api_key=" pd-api-token ", hostname="", additional_info={})

    request = mocked.calls[0].request
    assert request.headers["x-api-token"] == "pd-api-token"
    assert "Authorization" not in request.headers
    assert "pd-api-token" not in request.url
    assert info.successful and info.user_id == USER_ID
    assert info.platform_additional_info["authMode"] == "apiToken"
    assert info.overriding_hostname == "acme.pipedrive.com"


def test_an_api_token_login_asks_the_given_pipedrive_host_only(client, mocked) -> None:
    mocked.get(f"{HOST}/v1/users/me", json=ME)
    mocked.get("https://api.pipedrive.com/v1/users/me", json=ME)

    client.get_user_info(api_key="t", hostname="https://acme.pipedrive.com/deals", additional_info={})
    client.get_user_info(api_key="t", hostname="attacker.example", additional_info={})

    assert [urlsplit(c.request.url).hostname for c in mocked.calls] == [
        "acme.pipedrive.com",
        "api.pipedrive.com",
    ]


def test_a_refused_api_token_is_a_failed_login(client, mocked) -> None:
    mocked.get(
        "https://api.pipedrive.com/v1/users/me",
        status=401,
        json={"success": False, "error": "unauthorized access", "errorCode": 401, "error_info": ""},
    )

    info = client.get_user_info(api_key="wrong", hostname="", additional_info={})

    assert not info.successful and info.user_id == ""
    assert info.return_message["messageType"] == "warning"


def test_an_empty_api_token_is_refused_without_asking_pipedrive(client, mocked) -> None:
    info = client.get_user_info(api_key="  ", hostname="", additional_info={})

    assert not info.successful and len(mocked.calls) == 0


@pytest.mark.django_db
def test_an_api_token_users_calls_carry_the_token_header_not_a_bearer(client, mocked) -> None:
    user = pipedrive_user(api_token=True, hostname="acme.pipedrive.com")
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer())

    client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)

    request = mocked.calls[0].request
    assert request.headers["x-api-token"] == "pd-api-token"
    assert "Authorization" not in request.headers and "api_token" not in request.url


@pytest.mark.django_db
def test_auth_validation_asks_users_me(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/users/me", json=ME)
    mocked.get(f"{HOST}/v1/users/me", status=401, json={"success": False, "error": "unauthorized access"})

    assert client.auth_validation(user=user)[0] is True
    valid, message = client.auth_validation(user=user)
    assert valid is False and message["messageType"] == "warning"


# --- unauthorize --------------------------------------------------------------------------


@pytest.mark.django_db
def test_logging_out_revokes_the_refresh_token_then_the_access_token(client, mocked) -> None:
    user = pipedrive_user()
    mocked.post("https://oauth.pipedrive.com/oauth/revoke", body="")
    mocked.post("https://oauth.pipedrive.com/oauth/revoke", body="")

    message = client.unauthorize(user=user)

    forms = [
        parse_qs(c.request.body if isinstance(c.request.body, str) else c.request.body.decode())
        for c in mocked.calls
    ]
    assert [f["token"] for f in forms] == [["rt-1"], ["at-1"]]
    basic = "Basic " + base64.b64encode(b"pd-client:pd-secret").decode()
    assert all(c.request.headers["Authorization"] == basic for c in mocked.calls)
    assert message["messageType"] == "success"


@pytest.mark.django_db
def test_logging_out_an_api_token_user_revokes_nothing(client, mocked) -> None:
    user = pipedrive_user(api_token=True)

    message = client.unauthorize(user=user)

    assert len(mocked.calls) == 0 and "API token" in message["message"]


# --- contacts -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_lookup_searches_the_national_digits_and_reads_the_matches_times(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer((77, "Jane Roe", "+1 415 555 0100")))
    mocked.get(f"{HOST}/api/v2/persons", json=persons_answer(77))

    result = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="(***) ***-****", is_extension=False
    )

    search, persons = mocked.calls
    assert urlsplit(search.request.url).path == "/api/v2/persons/search"
    assert query(search) == {"term": ["4155550100"], "fields": ["phone"], "limit": ["100"]}
    assert search.request.headers["Authorization"] == "Bearer at-1"
    assert query(persons)["ids"] == ["77"]
    assert result.successful
    assert result.contacts == [
        {
            "id": "77",
            "name": "Jane Roe",
            "type": "contact",
            "phone": "+14155550100",
            "organization": "Roe Ltd",
            "createdDate": "2024-01-02T08:00:00Z",
            "mostRecentActivityDate": "2024-01-09T08:00:00Z",
            "additionalInfo": None,
        },
        NEW_CONTACT_OPTION,
    ]


@pytest.mark.django_db
def test_overriding_formats_are_tried_in_order_until_one_matches(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer())
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer((78, "Jim", "(415) 555-0100")))
    mocked.get(f"{HOST}/api/v2/persons", json=persons_answer(78))

    result = client.find_contact(
        user=user,
        phone_number="+14155550100",
        overriding_format="(***) ***-****,***-***-****,+44 ####",
        is_extension=False,
    )

    terms = [query(c)["term"][0] for c in mocked.calls if c.request.url.split("?")[0].endswith("/search")]
    assert terms == ["4155550100", "(415) 555-0100"]  # found with the first format: the rest is not asked
    assert [c["id"] for c in result.contacts] == ["78", "createNewContact"]


@pytest.mark.django_db
def test_a_number_nobody_has_offers_only_contact_creation(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer())

    result = client.find_contact(
        user=user, phone_number="+442071234567", overriding_format="", is_extension=False
    )

    assert query(mocked.calls[0])["term"] == ["2071234567"]  # the national significant number
    assert len(mocked.calls) == 1
    assert result.successful and result.contacts == [NEW_CONTACT_OPTION]


@pytest.mark.django_db
@pytest.mark.parametrize(("number", "extension"), [("+14155550100", True), ("101", False), ("", False)])
def test_extensions_and_numbers_without_a_country_are_not_looked_up(
    client, mocked, number, extension
) -> None:
    user = pipedrive_user()

    result = client.find_contact(user=user, phone_number=number, overriding_format="", is_extension=extension)

    assert len(mocked.calls) == 0
    assert result.successful is False and result.contacts == []


@pytest.mark.django_db
def test_a_name_search_asks_the_name_field(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/api/v2/persons/search", json=search_answer((77, "Jane Roe", "+14155550100")))
    mocked.get(f"{HOST}/api/v2/persons", json=persons_answer(77))

    result = client.find_contact_with_name(user=user, name="Jane")

    assert query(mocked.calls[0])["fields"] == ["name"] and query(mocked.calls[0])["term"] == ["Jane"]
    assert [(c["id"], c["phone"]) for c in result.contacts] == [("77", "+14155550100")]


@pytest.mark.django_db
def test_a_contact_is_created_as_a_person_with_one_phone(client, mocked) -> None:
    user = pipedrive_user()
    mocked.post(
        f"{HOST}/api/v2/persons",
        json={
            "success": True,
            "data": {"id": 91, "name": "Caller 0100", "phones": [], "add_time": "2024-05-01T10:00:00Z"},
        },
    )

    result = client.create_contact(
        user=user,
        phone_number="+14155550100",
        name="Caller 0100",
        contact_type="contact",
        additional_submission={},
    )

    assert sent_json(mocked.calls[0]) == {
        "name": "Caller 0100",
        "phones": [{"value": "+14155550100", "primary": True, "label": "work"}],
    }
    assert result.contact == {"id": "91", "name": "Caller 0100", "type": "contact"}


@pytest.mark.django_db
def test_a_contact_type_pipedrive_does_not_have_is_refused(client, mocked) -> None:
    user = pipedrive_user()

    with pytest.raises(CrmRejected):
        client.create_contact(
            user=user, phone_number="+14155550100", name="X", contact_type="company", additional_submission={}
        )
    assert len(mocked.calls) == 0


# --- call logs ----------------------------------------------------------------------------

COMPOSED = "- Note: Asked for <a quote> & more\n- Summary: Outbound Call to Jane Roe\n- Duration: 1 minute\n"


def call_input(**call: Any) -> CallLogInput:
    log = {
        "sessionId": "s-1",
        "direction": "Outbound",
        "startTime": 1714558530000,  # 2024-05-01T10:15:30Z
        "duration": 61,
        **call,
    }
    return CallLogInput(
        call_log=log, note="Asked for <a quote> & more", composed_log_details=COMPOSED, log_key="call:s-1:abc"
    )


@pytest.mark.django_db
def test_a_call_is_logged_as_a_done_call_activity_of_the_user(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(501, note="")})

    result = client.create_call_log(user=user, contact=JANE, data=call_input())

    body = sent_json(mocked.calls[1])
    assert body == {
        "subject": "Outbound Call to Jane Roe",
        "type": "call",  # the type keyed "call" wins over "callback", listed first
        "owner_id": 4242,
        "done": True,
        "participants": [{"person_id": 77, "primary": True}],
        "note": "- Note: Asked for &lt;a quote&gt; &amp; more<br>- Summary: Outbound Call to Jane Roe<br>"
        "- Duration: 1 minute<br>[RingCentral log key: call:s-1:abc]<br>",
        "due_date": "2024-05-01",
        "due_time": "10:15",
        "duration": "00:02",
    }
    assert "person_id" not in body  # read-only in v2
    assert result.log_id == "501"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("seconds", "expected"), [(0, "00:00"), (45, "00:01"), (60, "00:01"), (3600, "01:00"), (5430, "01:31")]
)
def test_call_durations_are_hours_and_minutes_rounded_up(client, mocked, seconds, expected) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(501, note="")})

    client.create_call_log(user=user, contact=JANE, data=call_input(duration=seconds))

    assert sent_json(mocked.calls[1])["duration"] == expected


@pytest.mark.django_db
def test_a_custom_subject_is_kept_and_a_pending_duration_left_out(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(501, note="")})

    client.create_call_log(
        user=user,
        contact=JANE,
        data=call_input(
            customSubject="Renewal talk",
            duration="pending",
            direction="Inbound",
            startTime="2024-05-01T23:59:00.000-02:00",
        ),
    )

    body = sent_json(mocked.calls[1])
    assert body["subject"] == "Renewal talk" and "duration" not in body
    assert (body["due_date"], body["due_time"]) == ("2024-05-02", "01:59")  # in UTC


@pytest.mark.django_db
def test_activity_types_are_read_once_per_company(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(501, note="")})
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(502, note="")})
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(503, note="")})

    client.create_call_log(user=user, contact=JANE, data=call_input())
    client.create_call_log(user=user, contact=JANE, data=call_input())
    user.platform_additional_info = {"authMode": "oauth", "companyId": 9999}  # another company
    client.create_call_log(user=user, contact=JANE, data=call_input())

    paths = [urlsplit(c.request.url).path for c in mocked.calls]
    assert paths.count("/v1/activityTypes") == 2


@pytest.mark.django_db
def test_without_a_call_activity_type_no_call_is_logged(client, mocked) -> None:
    user = pipedrive_user()
    no_call = {
        "success": True,
        "data": [{"id": 2, "name": "Meeting", "key_string": "meeting", "active_flag": True}],
    }
    mocked.get(f"{HOST}/v1/activityTypes", json=no_call)
    mocked.get(f"{HOST}/v1/activityTypes", json=no_call)

    first = client.create_call_log(user=user, contact=JANE, data=call_input())
    client.create_call_log(user=user, contact=JANE, data=call_input())  # asks again: an admin may add one

    assert first.log_id is None and first.return_message["messageType"] == "error"
    assert all(c.request.method == "GET" for c in mocked.calls)


@pytest.mark.django_db
def test_a_call_is_updated_with_what_changed(client, mocked) -> None:
    user = pipedrive_user()
    mocked.patch(f"{HOST}/api/v2/activities/501", json={"success": True, "data": activity(501, note="x")})

    result = client.update_call_log(
        user=user,
        data=CallLogUpdate(
            crm_log_id="501",
            contact_id="77",
            subject="Outbound Call to Jane Roe",
            duration=125,
            composed_log_details="- Summary: done\n[RingCentral log key: call:s-1:abc]\n",
        ),
    )

    assert urlsplit(mocked.calls[0].request.url).path == "/api/v2/activities/501"
    assert sent_json(mocked.calls[0]) == {
        "note": "- Summary: done<br>[RingCentral log key: call:s-1:abc]<br>",
        "subject": "Outbound Call to Jane Roe",
        "duration": "00:03",
    }
    assert result.updated_note == "- Summary: done\n[RingCentral log key: call:s-1:abc]\n"


@pytest.mark.django_db
def test_a_call_log_is_read_back_as_plain_text(client, mocked) -> None:
    user = pipedrive_user()
    note = "- Note: a &lt; b<br />- Summary: Outbound Call<br>[RingCentral log key: call:s-1:abc]<br>"
    mocked.get(f"{HOST}/api/v2/activities/501", json={"success": True, "data": activity(501, note=note)})

    details = client.get_call_log(user=user, crm_log_id="501", contact_id="77")

    assert details.info["subject"] == "Outbound Call to Jane Roe"
    assert details.info["note"] == "a < b"
    assert (
        details.info["fullBody"]
        == "- Note: a < b\n- Summary: Outbound Call\n[RingCentral log key: call:s-1:abc]\n"
    )
    assert details.info["fullLogResponse"]["id"] == 501


def test_plain_text_survives_the_trip_through_a_pipedrive_note() -> None:
    text = "- Note: <script>x</script> & 'q'\n- Transcript:\nline 1\nline 2\n--- END\n"

    assert html_to_plain(plain_to_html(text)) == text
    assert "<script>" not in plain_to_html(text)


@pytest.mark.django_db
def test_a_call_log_is_found_by_its_key_among_the_persons_activities(client, mocked) -> None:
    user = pipedrive_user()
    first_page = {
        "success": True,
        "data": [activity(600, note="<p>someone else's [RingCentral log key: call:s-1:abcd]</p>")],
        "additional_data": {"next_cursor": "c2"},
    }
    second_page = {
        "success": True,
        "data": [activity(501, note="- Summary: x<br>[RingCentral log key: call:s-1:abc]<br>")],
        "additional_data": {"next_cursor": None},
    }
    mocked.get(f"{HOST}/api/v2/activities", json=first_page)
    mocked.get(f"{HOST}/api/v2/activities", json=second_page)

    found = client.find_call_log(user=user, log_key="call:s-1:abc", contact_id="77")

    assert found == "501"
    assert query(mocked.calls[0]) == {
        "person_id": ["77"],
        "owner_id": ["4242"],
        "sort_by": ["add_time"],
        "sort_direction": ["desc"],
        "limit": ["100"],
    }
    assert query(mocked.calls[1])["cursor"] == ["c2"]


@pytest.mark.django_db
def test_a_call_log_pipedrive_does_not_hold_is_not_found(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(
        f"{HOST}/api/v2/activities",
        json={
            "success": True,
            "data": [activity(600, note="no key")],
            "additional_data": {"next_cursor": None},
        },
    )

    assert client.find_call_log(user=user, log_key="call:s-1:abc", contact_id="77") is None
    assert client.find_call_log(user=user, log_key="call:s-1:abc", contact_id="createNewContact") is None
    assert len(mocked.calls) == 1


# --- message logs -------------------------------------------------------------------------


def message_input(
    mid: str, text: str, *, direction: str = "Inbound", links: dict[str, str] | None = None
) -> MessageLogInput:
    return MessageLogInput(
        message={
            "id": mid,
            "type": "SMS",
            "direction": direction,
            "creationTime": "2024-05-01T22:30:00.000Z",
            "subject": text,
            "from": {"phoneNumber": "+14155550100"}
            if direction == "Inbound"
            else {"name": "Pat", "phoneNumber": "+16505550199"},
        },
        links=links or {},
        owner_name="Pat",
        log_key=f"message:{mid}",
    )


@pytest.mark.django_db
def test_a_message_is_logged_as_an_sms_activity_with_a_conversation_note(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)
    mocked.post(
        f"{HOST}/api/v2/activities", json={"success": True, "data": activity(700, note="", type_="text_sms")}
    )
    links = {
        "imageLink": "https://media.example/i.png",
        "imageDownloadLink": "https://platform.ringcentral.com/m?access_token=SECRET",
    }

    result = client.create_message_log(
        user=user, contact=JANE, data=message_input("m1", "Hi <b>there</b>", links=links)
    )

    body = sent_json(mocked.calls[1])
    assert body["type"] == "text_sms"  # the active type naming SMS (the inactive one is skipped)
    # the date in the user's offset (+03:00): 1 May 22:30 UTC is 2 May
    assert body["subject"] == "SMS conversation with Jane Roe - 24/05/02"
    assert (body["due_date"], body["due_time"]) == ("2024-05-01", "22:30")
    assert body["participants"] == [{"person_id": 77, "primary": True}] and body["done"] is True
    assert body["note"].startswith("<p><b>SMS conversation with Jane Roe - 24/05/02</b></p><ul><li>")
    assert "2024-05-02 01:30 Jane Roe: Hi &lt;b&gt;there&lt;/b&gt;" in body["note"]
    assert "Image: https://media.example/i.png" in body["note"]
    assert "SECRET" not in body["note"]  # download links carry a RingCentral token
    assert "[RingCentral log key: message:m1]" in body["note"]
    assert result.log_id == "700"


@pytest.mark.django_db
def test_without_an_sms_type_messages_use_the_call_type(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(
        f"{HOST}/v1/activityTypes",
        json={
            "success": True,
            "data": [{"id": 1, "name": "Call", "key_string": "call", "active_flag": True}],
        },
    )
    mocked.post(f"{HOST}/api/v2/activities", json={"success": True, "data": activity(700, note="")})

    client.create_message_log(user=user, contact=JANE, data=message_input("m1", "Hi"))

    assert sent_json(mocked.calls[1])["type"] == "call"


@pytest.mark.django_db
def test_a_next_message_is_added_to_the_conversations_list(client, mocked) -> None:
    user = pipedrive_user()
    note = "<p><b>SMS conversation</b></p><ul><li>a: Hi [RingCentral log key: message:m1]</li></ul>"
    mocked.get(f"{HOST}/api/v2/activities/700", json={"success": True, "data": activity(700, note=note)})
    mocked.patch(f"{HOST}/api/v2/activities/700", json={"success": True, "data": activity(700, note="")})

    client.update_message_log(
        user=user, contact=JANE, crm_log_id="700", data=message_input("m2", "Bye", direction="Outbound")
    )

    patched = sent_json(mocked.calls[1])["note"]
    assert patched.startswith(
        "<p><b>SMS conversation</b></p><ul><li>a: Hi [RingCentral log key: message:m1]</li><li>"
    )
    assert patched.endswith("Pat: Bye [RingCentral log key: message:m2]</li></ul>")


@pytest.mark.django_db
def test_a_message_already_in_the_conversation_is_not_added_again(client, mocked) -> None:
    user = pipedrive_user()
    note = "<ul><li>a: Hi [RingCentral log key: message:m1]</li></ul>"
    mocked.get(f"{HOST}/api/v2/activities/700", json={"success": True, "data": activity(700, note=note)})

    client.update_message_log(user=user, contact=JANE, crm_log_id="700", data=message_input("m1", "Hi"))

    assert [c.request.method for c in mocked.calls] == ["GET"]


@pytest.mark.django_db
def test_a_shared_conversation_is_replaced_keeping_the_earlier_keys(client, mocked) -> None:
    user = pipedrive_user()
    note = "Old body<br>[RingCentral log key: message:m1]<br>"
    mocked.get(f"{HOST}/api/v2/activities/700", json={"success": True, "data": activity(700, note=note)})
    mocked.patch(f"{HOST}/api/v2/activities/700", json={"success": True, "data": activity(700, note="")})
    data = message_input("m2", "x")
    data.shared_content = {"subject": "Shared SMS", "body": "Line 1\nLine 2\n"}

    client.update_message_log(user=user, contact=JANE, crm_log_id="700", data=data)

    assert sent_json(mocked.calls[1])["note"] == (
        "Line 1<br>Line 2<br>[RingCentral log key: message:m1]<br>[RingCentral log key: message:m2]<br>"
    )


@pytest.mark.django_db
def test_a_message_log_is_found_by_its_key_not_by_a_longer_one(client, mocked) -> None:
    user = pipedrive_user()
    page = {
        "success": True,
        "data": [activity(700, note="<ul><li>[RingCentral log key: message:12]</li></ul>", type_="sms")],
        "additional_data": {"next_cursor": None},
    }
    mocked.get(f"{HOST}/api/v2/activities", json=page)
    mocked.get(f"{HOST}/api/v2/activities", json=page)

    assert client.find_message_log(user=user, log_key="message:1", contact_id="77") is None
    assert client.find_message_log(user=user, log_key="message:12", contact_id="77") == "700"


# --- failures -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_429_with_a_long_retry_after_is_raised_with_the_rate_limit_headers(client, mocked) -> None:
    user = pipedrive_user()
    mocked.get(
        f"{HOST}/api/v2/persons/search",
        status=429,
        headers={
            "Retry-After": "60",
            "x-ratelimit-limit": "80",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": "2",
        },
        json={"success": False, "error": "Request over limit", "errorCode": 429},
    )

    with pytest.raises(CrmRateLimited) as raised:
        client.find_contact(user=user, phone_number="+14155550100", overriding_format="", is_extension=False)

    assert raised.value.retry_after == 60
    assert raised.value.limits["x-ratelimit-remaining"] == "0" and raised.value.limits["retry-after"] == "60"


@pytest.mark.django_db
def test_a_refused_access_token_is_an_auth_error(client, mocked) -> None:
    user = pipedrive_user()
    mocked.post(
        f"{HOST}/api/v2/activities",
        status=401,
        json={"success": False, "error": "unauthorized access", "errorCode": 401, "error_info": ""},
    )
    mocked.get(f"{HOST}/v1/activityTypes", json=ACTIVITY_TYPES)

    with pytest.raises(CrmAuthError):
        client.create_call_log(user=user, contact=JANE, data=call_input())


# --- against the fake, over loopback ------------------------------------------------------


@pytest.fixture
def fake(settings) -> Iterator[PipedriveFake]:
    pipedrive = PipedriveFake()
    with served(pipedrive, settings):
        yield pipedrive


@pytest.mark.django_db
def test_the_client_works_against_the_fake(fake: PipedriveFake) -> None:
    client = crm_registry.get("pipedrive")
    assert isinstance(client, PipedriveCrmClient)
    info = client.oauth_info()
    callback_uri = fake.callback_query()["callbackUri"]

    tokens = client.oauth_exchange_code(info=info, callback_uri=callback_uri)
    who = client.oauth_user_info(info=client.oauth_info(), tokens=tokens, hostname="", query={})
    assert who.user_id == fake.user_id and who.overriding_hostname == "fakeco.pipedrive.com"
    user = CrmUser.objects.create(
        id=who.user_id,
        platform="pipedrive",
        hostname=who.overriding_hostname,
        timezone_offset=who.timezone_offset,
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expiry=tokens.expires_at,
        platform_additional_info_json=json.dumps(who.platform_additional_info),
    )

    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )
    assert lookup.contacts == [NEW_CONTACT_OPTION]
    created = client.create_contact(
        user=user,
        phone_number="+14155550100",
        name="Caller 0100",
        contact_type="contact",
        additional_submission={},
    )
    assert [p["id"] for p in fake.contacts_with_phone("+14155550100")] == [int(created.contact["id"])]
    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )
    assert lookup.contacts[0]["id"] == created.contact["id"] and lookup.contacts[0]["createdDate"]

    contact = LogContact(id=created.contact["id"], phone_number="+14155550100", name="Caller 0100")
    logged = client.create_call_log(user=user, contact=contact, data=call_input())
    assert client.find_call_log(user=user, log_key="call:s-1:abc", contact_id=contact.id) == logged.log_id
    assert client.find_call_log(user=user, log_key="call:s-2:abc", contact_id=contact.id) is None
    body = client.get_call_log(user=user, crm_log_id=str(logged.log_id), contact_id=contact.id).info[
        "fullBody"
    ]
    client.update_call_log(
        user=user,
        data=CallLogUpdate(
            crm_log_id=str(logged.log_id),
            contact_id=contact.id,
            composed_log_details=body + "- Result: Call connected\n",
        ),
    )
    [call] = fake.call_logs()
    assert call["id"] == logged.log_id and call["contact_id"] == contact.id
    assert "Result: Call connected" in call["body"] and "[RingCentral log key: call:s-1:abc]" in call["body"]

    message = client.create_message_log(user=user, contact=contact, data=message_input("m1", "Hi"))
    client.update_message_log(
        user=user, contact=contact, crm_log_id=str(message.log_id), data=message_input("m2", "Bye")
    )
    assert client.find_message_log(user=user, log_key="message:m2", contact_id=contact.id) == message.log_id
    [sms] = fake.message_logs()
    assert sms["body"].count("<li>") == 2

    client.unauthorize(user=user)
    assert [r["token"] for r in fake.oauth.revocations] == [tokens.refresh_token, tokens.access_token]


@pytest.mark.django_db
def test_an_api_token_user_works_against_the_fake(fake: PipedriveFake) -> None:
    client = crm_registry.get("pipedrive")
    assert not client.get_user_info(api_key="wrong", hostname="", additional_info={}).successful

    who = client.get_user_info(api_key=fake.api_token, hostname="", additional_info={})
    user = CrmUser.objects.create(
        id=who.user_id,
        platform="pipedrive",
        hostname=who.overriding_hostname,
        access_token=fake.api_token,
        platform_additional_info_json=json.dumps(who.platform_additional_info),
    )
    fake.add_contact(name="Jane Roe", phone="+1 (415) 555-0100")

    lookup = client.find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert [c["name"] for c in lookup.contacts] == ["Jane Roe", "Create new contact..."]
    seen = fake.api.requests("GET", fake.routes["find_contact"][1])[0]
    assert seen.headers["x-api-token"] == fake.api_token and "authorization" not in seen.headers


@pytest.mark.django_db
def test_the_routes_connect_and_look_up_through_the_fake(fake: PipedriveFake) -> None:
    from tests.conftest import ApiClient

    fake.add_contact(name="Jane Roe", phone="+14155550100")

    login = ApiClient().get("/oauth-callback", fake.callback_query())
    assert login.status_code == 200, login.content
    user = CrmUser.objects.get(pk=fake.user_id)
    assert user.hostname == "fakeco.pipedrive.com" and user.platform_additional_info["authMode"] == "oauth"
    lookup = ApiClient(login.json()["jwtToken"]).get("/contact", {"phoneNumber": "+14155550100"})
    assert [c["name"] for c in lookup.json()["contact"]] == ["Jane Roe", "Create new contact..."]

    token_login = ApiClient().post("/apiKeyLogin", {"platform": "pipedrive", "apiKey": fake.api_token})
    assert token_login.status_code == 200, token_login.content
    user.refresh_from_db()
    assert user.platform_additional_info["authMode"] == "apiToken" and not user.refresh_token
    lookup = ApiClient(token_login.json()["jwtToken"]).get("/contact", {"phoneNumber": "+14155550100"})
    assert lookup.json()["contact"][0]["name"] == "Jane Roe"
    assert fake.api.requests("GET", r"/api/v2/persons/search")[-1].headers["x-api-token"] == fake.api_token
