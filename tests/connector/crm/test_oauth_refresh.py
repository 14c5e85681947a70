"""OAuth access tokens are refreshed before they expire, once however many calls need it.

The CRM here is tests/oauth_fake.py's: its token endpoint runs on 127.0.0.1 and counts
the refreshes it was asked for; its contact lookup answers with the access token the call
carried.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from connector import services
from connector.api.authentication import jwt_encode
from connector.crm.registry import crm_registry
from connector.models import CrmUser
from tests.concurrency import concurrently
from tests.conftest import ApiClient, on_postgres
from tests.oauth_fake import OAuthTestCrm, TokenEndpoint, token_endpoint

PLATFORM = "oauthtest"


@pytest.fixture
def endpoint(settings) -> Iterator[TokenEndpoint]:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], PLATFORM: "tests.oauth_fake.OAuthTestCrm"},
    }
    with token_endpoint() as (url, state):
        OAuthTestCrm.token_url = url
        yield state


def oauth_user(*, expires_in: timedelta) -> CrmUser:
    return CrmUser.objects.create(
        id=f"crm-user-1-{PLATFORM}",
        platform=PLATFORM,
        name="Olive OAuth",
        access_token="at-old",
        refresh_token="rt-old",
        token_expiry=timezone.now() + expires_in,
    )


def token_seen(user_id: str) -> str:
    """The access token a CRM call for this user carried (a fresh read of the user)."""
    user = CrmUser.objects.get(pk=user_id)
    result = crm_registry.get(PLATFORM).find_contact(
        user=user, phone_number="+14155550100", overriding_format="", is_extension=False
    )
    return result.contacts[0]["id"]


def test_a_token_far_from_expiry_is_used_as_it_is(endpoint: TokenEndpoint, db) -> None:
    user = oauth_user(expires_in=timedelta(hours=1))

    assert token_seen(user.pk) == "at-old"
    assert endpoint.refreshes == 0


def test_a_token_about_to_expire_is_refreshed_first_and_stored_encrypted(endpoint: TokenEndpoint, db) -> None:
    user = oauth_user(expires_in=timedelta(seconds=90))

    assert token_seen(user.pk) == "at-1"

    user.refresh_from_db()
    assert endpoint.refreshes == 1
    assert (user.access_token, user.refresh_token, user.token_version) == ("at-1", "rt-1", 1)
    assert user.token_expiry > timezone.now() + timedelta(minutes=55)
    assert user.token_refreshed_at is not None and user.auth_error == ""
    with connection.cursor() as cursor:
        cursor.execute("SELECT access_token, refresh_token FROM connector_crmuser WHERE id = %s", [user.pk])
        stored = cursor.fetchone()
    assert all(value.startswith("gAAAAA") for value in stored)  # Fernet tokens, not the secrets


def test_a_crm_that_sends_no_new_refresh_token_keeps_the_old_one(endpoint: TokenEndpoint, db) -> None:
    endpoint.rotate = False
    user = oauth_user(expires_in=timedelta(seconds=30))

    assert token_seen(user.pk) == "at-1"

    user.refresh_from_db()
    assert user.refresh_token == "rt-old"


def test_a_revoked_grant_answers_app_connects_session_revoked(endpoint: TokenEndpoint, db) -> None:
    endpoint.revoked.add("rt-old")
    user = oauth_user(expires_in=timedelta(seconds=30))
    api = ApiClient(jwt_encode(user_id=user.pk, platform=PLATFORM))

    response = api.get("/contact", {"phoneNumber": "+14155550100"})

    assert response.status_code == 401
    assert response.json() == {
        "successful": False,
        "returnMessage": {
            "message": "User session expired. Please connect again.",
            "messageType": "warning",
            "ttl": 5000,
        },
        "errorCode": "CRM_SESSION_REVOKED",
    }
    user.refresh_from_db()
    assert user.auth_error == f"{PLATFORM} revoked the grant"
    assert user.refresh_lease_until is None


@pytest.mark.django_db(transaction=True)  # the "other process" writes from the endpoint's thread
def test_a_grant_another_process_rotated_meanwhile_is_not_taken_for_revoked(endpoint: TokenEndpoint) -> None:
    user = oauth_user(expires_in=timedelta(seconds=30))

    def another_process_rotates(form: dict[str, str]) -> None:
        # While this refresh is in flight, another process refreshed with the same token:
        # the CRM has rotated it, and the other process stored its pair.
        endpoint.revoked.add("rt-old")
        CrmUser.objects.filter(pk=user.pk).update(access_token="at-other", refresh_token="rt-other")

    endpoint.on_refresh = another_process_rotates

    assert token_seen(user.pk) == "at-other"


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", ["one process", "separate processes"])
def test_twenty_calls_at_once_make_one_refresh_and_all_use_its_token(
    endpoint: TokenEndpoint, processes: str, monkeypatch
) -> None:
    """With "separate processes", each call gets a lock of its own (no lock shared in
    memory), as 20 calls in different processes would: the row's lease alone decides."""
    assert on_postgres()
    endpoint.delay = 0.3
    if processes == "separate processes":
        monkeypatch.setattr(services, "_token_lock", lambda row: __import__("threading").Lock())
    user = oauth_user(expires_in=timedelta(seconds=60))

    tokens = concurrently(20, lambda i: token_seen(user.pk))

    assert endpoint.refreshes == 1
    assert tokens == ["at-1"] * 20
    user.refresh_from_db()
    assert (user.token_version, user.refresh_token, user.refresh_lease_until) == (1, "rt-1", None)


def test_a_call_log_whose_grant_is_gone_fails_cleanly_and_answers_session_revoked(
    endpoint: TokenEndpoint, db
) -> None:
    """The call is not lost: its row says failed, for a retry once the user connected again."""
    from logs.choices import LogStatus
    from logs.models import CallLog
    from logs.services import call_logs_retry
    from tests.conftest import call_body

    endpoint.revoked.add("rt-old")
    user = oauth_user(expires_in=timedelta(seconds=30))
    api = ApiClient(jwt_encode(user_id=user.pk, platform=PLATFORM))

    response = api.post("/callLog", call_body(session_id="s-1", contact_id="42"))

    assert response.status_code == 401 and response.json()["errorCode"] == "CRM_SESSION_REVOKED"
    log = CallLog.objects.get()
    assert (log.status, log.last_error) == (
        LogStatus.FAILED,
        "The CRM session was revoked; the user must connect again.",
    )
    assert log.events.filter(kind="crm_failed", detail__status=401).exists()
    summary = call_logs_retry(log_ids=[log.pk])
    assert summary.errors == {"The CRM session was revoked; the user must connect again.": 1}
