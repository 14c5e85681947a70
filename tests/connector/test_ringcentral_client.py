"""The RingCentral calls server-side logging makes for a connected account: subscriptions
(with the real Validation-Token handshake), the call log, extensions; and the account's
access token, refreshed before it expires and after a 401, once however many calls need
it. RingCentral is the loopback fake of tests/crm_fakes/ringcentral.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from connector import ringcentral, services
from connector.db import CrmCallInTransaction
from connector.models import RingCentralConnection
from connector.ringcentral import (
    RcExtensionInfo,
    RingCentralRateLimited,
    RingCentralRefused,
    RingCentralUnavailable,
    rc_call_records_by_session,
    rc_extension_info,
    rc_extensions_list,
    rc_subscription_create,
    rc_subscription_delete,
    rc_subscription_get,
    rc_subscription_renew,
)
from connector.services import ringcentral_connect
from tests.concurrency import concurrently
from tests.conftest import on_postgres
from tests.crm_fakes.ringcentral import (
    ACCOUNT_ID,
    ADMIN_EXTENSION_ID,
    ADMIN_JWT,
    JWT_BEARER,
    USER_EXTENSION_ID,
    RingCentralFake,
    WebhookReceiver,
    call_record,
    party,
    telephony_session_event,
)
from tests.crm_fakes.server import serve

TELEPHONY_FILTER = "/restapi/v1.0/account/~/telephony/sessions"


@pytest.fixture
def connection(rc: RingCentralFake, db) -> RingCentralConnection:
    return ringcentral_connect(jwt=ADMIN_JWT)


@pytest.fixture
def webhook() -> Iterator[tuple[WebhookReceiver, str]]:
    receiver = WebhookReceiver()
    with serve(receiver.api) as base_url:
        yield receiver, f"{base_url}/rc/webhook"


def subscribe(connection: RingCentralConnection, address: str, *, expires_in: int = 604800):
    return rc_subscription_create(
        connection=connection,
        address=address,
        verification_token="verify-me",
        event_filters=[TELEPHONY_FILTER],
        expires_in=expires_in,
    )


# --- subscriptions ------------------------------------------------------------------------


def test_a_subscription_is_created_after_the_webhook_echoes_the_validation_token(
    rc: RingCentralFake, connection: RingCentralConnection, webhook
) -> None:
    receiver, address = webhook
    before = timezone.now()

    subscription = subscribe(connection, address)

    assert subscription.status == "Active" and subscription.blacklisted_reason == ""
    assert (subscription.address, subscription.event_filters) == (address, (TELEPHONY_FILTER,))
    assert (
        timedelta(days=7) - timedelta(seconds=5)
        < subscription.expires_at - before
        <= timedelta(days=7, seconds=5)
    )
    sent = rc.api.requests("POST", r"/restapi/v1\.0/subscription")[0]
    assert sent.headers["authorization"] == f"Bearer {connection.access_token}"
    assert sent.json == {
        "eventFilters": [TELEPHONY_FILTER],
        "deliveryMode": {"transportType": "WebHook", "address": address, "verificationToken": "verify-me"},
        "expiresIn": 604800,
    }
    handshake = receiver.api.requests("POST")[0]
    assert handshake.headers["validation-token"] and handshake.headers["user-agent"].startswith("RingCentral")


@pytest.mark.parametrize("fault", ["no echo", "too slow"])
def test_a_webhook_that_fails_the_handshake_gets_no_subscription(
    rc: RingCentralFake, connection: RingCentralConnection, webhook, fault: str
) -> None:
    receiver, address = webhook
    if fault == "no echo":
        receiver.echo = False
    else:
        rc.validation_timeout, receiver.delay = 0.3, 0.8

    with pytest.raises(RingCentralRefused) as refused:
        subscribe(connection, address)

    assert refused.value.status_code == 400
    assert rc.subscriptions == {}


def test_a_subscription_is_read_back_and_shows_when_ringcentral_blacklists_it(
    rc: RingCentralFake, connection: RingCentralConnection, webhook
) -> None:
    created = subscribe(connection, webhook[1])
    assert rc_subscription_get(connection=connection, subscription_id=created.id) == created

    rc.blacklist(created.id, reason="Webhook responses are too slow")

    seen = rc_subscription_get(connection=connection, subscription_id=created.id)
    assert (seen.status, seen.blacklisted_reason) == ("Blacklisted", "Webhook responses are too slow")


def test_renewing_a_subscription_pushes_its_expiry_out(
    rc: RingCentralFake, connection: RingCentralConnection, webhook
) -> None:
    created = subscribe(connection, webhook[1], expires_in=3600)
    rc.subscriptions[created.id]["expirationTime"] = "2026-01-01T00:00:00.000Z"  # about to lapse

    renewed = rc_subscription_renew(connection=connection, subscription_id=created.id)

    assert renewed.id == created.id
    assert renewed.expires_at > timezone.now() + timedelta(minutes=59)
    assert [r.path for r in rc.api.requests("POST", r".*/renew")] == [
        f"/restapi/v1.0/subscription/{created.id}/renew"
    ]


def test_a_deleted_subscription_is_gone_and_deleting_it_again_is_no_error(
    rc: RingCentralFake, connection: RingCentralConnection, webhook
) -> None:
    created = subscribe(connection, webhook[1])

    rc_subscription_delete(connection=connection, subscription_id=created.id)
    rc_subscription_delete(connection=connection, subscription_id=created.id)

    assert rc.subscriptions == {}
    with pytest.raises(RingCentralRefused) as gone:
        rc_subscription_get(connection=connection, subscription_id=created.id)
    assert gone.value.status_code == 404


def test_deliveries_carry_the_verification_token_and_the_event_shape(
    rc: RingCentralFake, connection: RingCentralConnection, webhook
) -> None:
    receiver, address = webhook
    created = subscribe(connection, address)
    event = telephony_session_event(
        subscription_id=created.id,
        telephony_session_id="s-abc",
        sequence=3,
        parties=[
            party(
                extension_id=USER_EXTENSION_ID,
                direction="Inbound",
                status="Disconnected",
                from_number="+14155550100",
                to_number="+16505550101",
                to_extension_id=USER_EXTENSION_ID,
            )
        ],
    )

    assert rc.deliver(created.id, event).status_code == 200

    delivery = receiver.deliveries[0]
    assert delivery.headers["verification-token"] == "verify-me"
    assert delivery.json["body"]["telephonySessionId"] == "s-abc"
    assert delivery.json["body"]["parties"][0]["status"]["code"] == "Disconnected"
    assert delivery.json["event"] == f"/restapi/v1.0/account/{ACCOUNT_ID}/telephony/sessions"


# --- the call log ---------------------------------------------------------------------------


def test_a_sessions_call_record_is_empty_until_ringcentral_has_written_it(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    record = call_record(
        record_id="rec-1",
        telephony_session_id="s-abc",
        session_id="123",
        direction="Inbound",
        from_number="+14155550100",
        to_number="+16505550101",
        extension_id=USER_EXTENSION_ID,
        start_time=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        duration=42,
    )
    rc.add_call_record(record, appear_after_reads=2)
    rc.add_call_record({**record, "id": "rec-other", "telephonySessionId": "s-other"})

    reads = [
        rc_call_records_by_session(connection=connection, telephony_session_id="s-abc") for _ in range(3)
    ]

    assert reads[:2] == [[], []]
    assert reads[2] == [record] and reads[2][0]["legs"]  # the Detailed view
    assert rc.api.requests("GET", r".*/call-log")[0].query == {
        "telephonySessionId": "s-abc",
        "view": "Detailed",
        "perPage": "100",
    }


def test_a_429_is_raised_with_ringcentrals_retry_after(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc.rate_limit("GET", r".*/call-log", retry_after=30)

    with pytest.raises(RingCentralRateLimited) as limited:
        rc_call_records_by_session(connection=connection, telephony_session_id="s-abc")

    assert limited.value.retry_after == 30.0
    assert isinstance(limited.value, RingCentralUnavailable)
    # Not retried here: the caller (a task) waits it out.
    assert len(rc.api.requests("GET", r".*/call-log")) == 1


def test_a_429_without_retry_after_waits_ringcentrals_penalty_interval(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc.rate_limit("GET", r".*/call-log", retry_after=None)

    with pytest.raises(RingCentralRateLimited) as limited:
        rc_call_records_by_session(connection=connection, telephony_session_id="s-abc")

    assert limited.value.retry_after == 60.0


# --- extensions -------------------------------------------------------------------------------


def test_an_extension_is_read_with_what_user_mapping_needs(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    info = rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert info == RcExtensionInfo(
        id=USER_EXTENSION_ID,
        extension_number="102",
        name="Uma User",
        email="uma.user@example.com",
        first_name="Uma",
        last_name="User",
        status="Enabled",
    )
    with pytest.raises(RingCentralRefused) as unknown:
        rc_extension_info(connection=connection, extension_id="999")
    assert unknown.value.status_code == 404


def test_every_page_of_extensions_is_read(
    rc: RingCentralFake, connection: RingCentralConnection, monkeypatch
) -> None:
    monkeypatch.setattr(ringcentral, "EXTENSIONS_PER_PAGE", 2)
    for n in range(3):
        rc.add_extension(f"7000{n}", f"2{n:02d}", f"First{n}", f"Last{n}")

    extensions = rc_extensions_list(connection=connection)

    assert [e.extension_number for e in extensions] == ["101", "102", "200", "201", "202"]
    assert [r.query["page"] for r in rc.api.requests("GET", r"/restapi/v1\.0/account/~/extension")] == [
        "1",
        "2",
        "3",
    ]


# --- the access token -------------------------------------------------------------------------


def test_a_token_far_from_expiry_is_used_as_it_is(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert rc.token_requests == [JWT_BEARER]


def test_a_token_expiring_within_two_minutes_is_refreshed_first(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    RingCentralConnection.objects.filter(pk=connection.pk).update(
        token_expiry=timezone.now() + timedelta(seconds=100)
    )
    connection.refresh_from_db()

    rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert rc.token_requests == [JWT_BEARER, "refresh_token"]
    assert rc.api.requests("GET", r".*/extension/\d+")[0].headers["authorization"] == "Bearer rc-at-2"
    stored = RingCentralConnection.objects.get()
    assert (stored.access_token, stored.refresh_token, stored.token_version) == ("rc-at-2", "rc-rt-2", 2)
    assert stored.token_refreshed_at > stored.connected_at and stored.refresh_lease_until is None


def test_a_401_refreshes_the_token_once_and_sends_the_call_again(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc.expire_access_tokens()  # RingCentral no longer takes the stored token

    info = rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert info.id == USER_EXTENSION_ID
    assert rc.token_requests == [JWT_BEARER, "refresh_token"]
    assert [r.headers["authorization"] for r in rc.api.requests("GET", r".*/extension/\d+")] == [
        "Bearer rc-at-1",
        "Bearer rc-at-2",
    ]


def test_a_second_401_after_the_refresh_is_not_retried_again(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    from tests.crm_fakes.server import Reply

    rc.api.fail("GET", r".*/extension/\d+", Reply(401, {"errorCode": "TokenInvalid"}), times=5)

    with pytest.raises(RingCentralRefused) as refused:
        rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert refused.value.status_code == 401
    assert len(rc.api.requests("GET", r".*/extension/\d+")) == 2
    assert rc.token_requests == [JWT_BEARER, "refresh_token"]


def test_a_refused_refresh_token_is_replaced_through_the_stored_jwt(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc.revoke_refresh_tokens()
    rc.expire_access_tokens()

    rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert rc.token_requests == [JWT_BEARER, JWT_BEARER]
    stored = RingCentralConnection.objects.get()
    assert (stored.access_token, stored.last_error) == ("rc-at-2", "")


def test_when_ringcentral_refuses_the_jwt_too_the_account_must_be_connected_again(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    rc.revoke_refresh_tokens()
    rc.expire_access_tokens()
    rc.jwts.clear()  # the admin revoked the JWT credential

    with pytest.raises(RingCentralRefused) as refused:
        rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert refused.value.status_code == 401
    stored = RingCentralConnection.objects.get()
    assert "refused the JWT" in stored.last_error and "Connect the account again" in stored.last_error
    assert stored.refresh_lease_until is None and stored.token_version == connection.token_version


def test_a_token_endpoint_that_cannot_be_reached_leaves_the_lease_free(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    from tests.crm_fakes.server import Reply

    rc.expire_access_tokens()
    rc.api.fail("POST", r"/restapi/oauth/token", Reply(503, {"errorCode": "CMN-211"}))

    with pytest.raises(RingCentralUnavailable):
        rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    stored = RingCentralConnection.objects.get()
    assert stored.refresh_lease_until is None and "HTTP 503" in stored.last_error


def test_no_ringcentral_call_runs_inside_a_database_transaction(
    rc: RingCentralFake, connection: RingCentralConnection
) -> None:
    with pytest.raises(CrmCallInTransaction), transaction.atomic():
        rc_extension_info(connection=connection, extension_id=USER_EXTENSION_ID)

    assert rc.api.requests("GET", r".*/extension/\d+") == []


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("processes", ["one process", "separate processes"])
def test_twenty_calls_at_once_make_one_refresh_and_all_use_its_token(
    rc: RingCentralFake, processes: str, monkeypatch
) -> None:
    """With "separate processes" each call gets a lock of its own, as calls in different
    processes would: the row's lease alone decides who refreshes."""
    assert on_postgres()
    if processes == "separate processes":
        monkeypatch.setattr(services, "_token_lock", lambda row: threading.Lock())
    connection = ringcentral_connect(jwt=ADMIN_JWT)
    RingCentralConnection.objects.filter(pk=connection.pk).update(
        token_expiry=timezone.now() + timedelta(seconds=60)
    )
    rc.refresh_delay = 0.3

    def call(i: int) -> str:
        own = RingCentralConnection.objects.get(pk=connection.pk)  # each request reads the row
        rc_extension_info(connection=own, extension_id=ADMIN_EXTENSION_ID)
        return own.access_token or ""

    tokens = concurrently(20, call)

    assert rc.token_requests_of("refresh_token") == 1
    assert tokens == ["rc-at-2"] * 20
    seen = {r.headers["authorization"] for r in rc.api.requests("GET", r".*/extension/\d+")}
    assert seen == {"Bearer rc-at-2"}
    stored = RingCentralConnection.objects.get()
    assert (stored.token_version, stored.refresh_token, stored.refresh_lease_until) == (2, "rc-rt-2", None)
