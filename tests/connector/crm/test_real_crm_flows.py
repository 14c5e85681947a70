"""Pipedrive, HubSpot and Clio end to end, over loopback, against fakes of their APIs.

Each CRM's fake (tests/crm_fakes/) answers as the vendor's public API documentation shows
and is served on 127.0.0.1; OUTBOUND_HOST_MAP sends the connector's requests for the
CRM's real hosts there. Everything goes through our HTTP API as App Connect's client
calls it: the OAuth callback, the lookup, the placeholder, the log, then the faults a
real CRM has (429 with Retry-After, an expired token wanted by 20 requests at once, a
revoked grant, a CRM that hangs, a CRM that fails after the placeholder was made).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from connector.models import CrmUser
from logs.choices import LogStatus
from logs.models import CallLog
from rules.models import PlaceholderContact
from tests.concurrency import concurrently
from tests.conftest import ApiClient, call_body, on_postgres
from tests.crm_fakes.server import Reply, served
from tests.rules.test_automatic_flow import set_rules

UNKNOWN = "+14155550199"
CRMS = {
    "pipedrive": ("tests.crm_fakes.pipedrive", "PipedriveFake"),
    "hubspot": ("tests.crm_fakes.hubspot", "HubspotFake"),
    "clio": ("tests.crm_fakes.clio", "ClioFake"),
}


@dataclass
class Crm:
    """A CRM fake being served, and our settings pointed at it."""

    fake: Any
    platform: str

    def login(self) -> ApiClient:
        """Connect through GET /oauth-callback, as the client does after the CRM's consent page."""
        response = ApiClient().get("/oauth-callback", self.fake.callback_query())
        assert response.status_code == 200, response.content
        return ApiClient(response.json()["jwtToken"])

    def requests(self, operation: str) -> list[Any]:
        method, pattern = self.fake.routes[operation]
        return self.fake.api.requests(method, pattern)

    def fail(self, operation: str, reply: Reply, *, times: int = 1) -> None:
        method, pattern = self.fake.routes[operation]
        self.fake.api.fail(method, pattern, reply, times=times)

    def contact_type(self) -> str:
        from connector.crm.registry import crm_registry

        return crm_registry.get(self.platform).contact_type_values()[0]


@pytest.fixture(params=list(CRMS))
def crm(request, settings, db) -> Iterator[Crm]:
    module, name = CRMS[request.param]
    fake = getattr(importlib.import_module(module), name)()
    with served(fake, settings, OUTBOUND_TIMEOUT_SECONDS=3.0):
        yield Crm(fake=fake, platform=fake.platform)


def auto_body(session_id: str, *, phone: str = UNKNOWN) -> dict[str, Any]:
    body = call_body(session_id=session_id, phone=phone)
    body["logInfo"]["from"]["name"] = "Jane Caller"
    return body


def test_oauth_login_connects_the_crm_user_with_its_tokens(crm: Crm) -> None:
    crm.login()

    user = CrmUser.objects.get(pk=crm.fake.user_id)
    assert user.platform == crm.platform
    assert user.access_token and user.refresh_token and user.token_expiry is not None
    assert crm.fake.oauth.exchanges == 1


def test_unknown_caller_by_hand_lookup_create_then_log(crm: Crm) -> None:
    api = crm.login()

    lookup = api.get("/contact", {"phoneNumber": UNKNOWN}).json()
    assert [c["id"] for c in lookup["contact"]] == ["createNewContact"]
    assert crm.fake.contacts_with_phone(UNKNOWN) == []

    created = api.post(
        "/contact",
        {"phoneNumber": UNKNOWN, "newContactName": "Jane Caller", "newContactType": crm.contact_type()},
    ).json()
    assert created["successful"] is True, created
    contact_id = created["contact"]["id"]
    assert [str(c["id"]) for c in crm.fake.contacts_with_phone(UNKNOWN)] == [str(contact_id)]

    logged = api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN, contact_id=contact_id)).json()
    assert logged["successful"] is True, logged
    [activity] = crm.fake.call_logs()
    assert (str(activity["id"]), str(activity["contact_id"])) == (str(logged["logId"]), str(contact_id))
    assert CallLog.objects.get().status == LogStatus.LOGGED


def test_unknown_caller_by_rule_makes_one_placeholder_for_every_call(crm: Crm) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    api = crm.login()

    for session in ("s-1", "s-2"):
        body = api.post("/callLog", auto_body(session)).json()
        assert body["successful"] is True, body

    [contact] = crm.fake.contacts_with_phone(UNKNOWN)
    assert {str(log["contact_id"]) for log in crm.fake.call_logs()} == {str(contact["id"])}
    assert len(crm.fake.call_logs()) == 2
    assert PlaceholderContact.objects.get().contact_id == str(contact["id"])
    # What the flow asked of the CRM, for the record (pytest -s shows it).
    print(f"\n{crm.platform}:", *(request.summary() for request in crm.fake.api.seen), sep="\n  ")


def test_a_placeholder_is_reused_while_the_crms_search_does_not_see_it_yet(crm: Crm) -> None:
    """HubSpot's search shows a new contact only after a delay; every fake can lag so."""
    crm.fake.search_lag = 60.0
    set_rules(unknownContactAction="createPlaceholder")
    api = crm.login()

    for session in ("s-1", "s-2", "s-3"):
        assert api.post("/callLog", auto_body(session)).json()["successful"] is True

    assert len(crm.fake.contacts_with_phone(UNKNOWN)) == 1
    assert len(crm.fake.call_logs()) == 3


def test_a_429_is_waited_out_and_the_log_written_once(crm: Crm) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    api = crm.login()
    crm.fail("create_call_log", Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "1"}))

    body = api.post("/callLog", auto_body("s-1")).json()

    assert body["successful"] is True, body
    assert len(crm.requests("create_call_log")) == 2
    assert len(crm.fake.call_logs()) == 1


def test_a_long_retry_after_fails_the_log_visibly_and_the_retry_writes_it_once(crm: Crm) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    api = crm.login()
    crm.fail("create_call_log", Reply(429, {"message": "Too Many Requests"}, {"Retry-After": "30"}))

    first = api.post("/callLog", auto_body("s-1")).json()
    assert first["successful"] is False
    assert first["returnMessage"]["message"] == "Rate limit exceeded"
    assert CallLog.objects.get().status == LogStatus.FAILED

    again = api.post("/callLog", auto_body("s-1")).json()  # the client's retry
    assert again["successful"] is True, again
    assert len(crm.fake.contacts_with_phone(UNKNOWN)) == 1
    assert len(crm.fake.call_logs()) == 1


def test_a_crm_failing_after_the_placeholder_was_made_reuses_it_on_retry(crm: Crm) -> None:
    set_rules(unknownContactAction="createPlaceholder")
    api = crm.login()
    crm.fail("create_call_log", Reply(503, {"message": "Service Unavailable"}))

    assert api.post("/callLog", auto_body("s-1")).json()["successful"] is False
    assert len(crm.fake.contacts_with_phone(UNKNOWN)) == 1 and crm.fake.call_logs() == []

    assert api.post("/callLog", auto_body("s-1")).json()["successful"] is True
    assert len(crm.requests("create_contact")) == 1
    assert len(crm.fake.call_logs()) == 1


def test_a_crm_that_hangs_is_given_up_on_with_a_message(crm: Crm, settings) -> None:
    api = crm.login()
    settings.CONNECTOR = {**settings.CONNECTOR, "OUTBOUND_TIMEOUT_SECONDS": 0.3}
    api = ApiClient(api.token)  # the same user, clients rebuilt with the short timeout
    crm.fake.api.delay = 1.0

    body = api.get("/contact", {"phoneNumber": UNKNOWN}).json()

    assert body["successful"] is False
    assert body["returnMessage"]["message"] == "Error finding contact"


def test_a_revoked_grant_is_crm_session_revoked(crm: Crm) -> None:
    api = crm.login()
    user = CrmUser.objects.get(pk=crm.fake.user_id)
    crm.fake.oauth.revoked.add(user.refresh_token)
    CrmUser.objects.filter(pk=user.pk).update(token_expiry=timezone.now() + timedelta(seconds=30))

    response = api.get("/contact", {"phoneNumber": UNKNOWN})

    assert response.status_code == 401
    assert response.json()["errorCode"] == "CRM_SESSION_REVOKED"
    assert crm.requests("find_contact") == []


def test_unauthorize_revokes_at_the_crm(crm: Crm) -> None:
    api = crm.login()

    assert api.post("/unAuthorize").status_code == 200

    user = CrmUser.objects.get(pk=crm.fake.user_id)
    assert not user.access_token and not user.refresh_token
    # Pipedrive: POST /oauth/revoke; HubSpot: DELETE the refresh token; Clio: /oauth/deauthorize
    revocations = crm.fake.api.requests(pattern=r".*(revoke|deauthorize|refresh-tokens).*")
    assert revocations, [r.line() for r in crm.fake.api.seen]


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_an_expired_token_is_refreshed_once_for_twenty_requests_at_once(crm: Crm) -> None:
    assert on_postgres()
    api = crm.login()
    CrmUser.objects.filter(pk=crm.fake.user_id).update(token_expiry=timezone.now() + timedelta(seconds=30))
    crm.fake.oauth.refresh_delay = 0.3

    started = time.monotonic()
    statuses = concurrently(
        20, lambda _: ApiClient(api.token).get("/contact", {"phoneNumber": UNKNOWN}).status_code
    )
    elapsed = time.monotonic() - started

    assert statuses == [200] * 20
    assert crm.fake.oauth.refreshes == 1
    new_token = CrmUser.objects.get(pk=crm.fake.user_id).access_token
    lookups = crm.requests("find_contact")
    assert len(lookups) >= 20
    assert {r.headers["authorization"] for r in lookups} == {f"Bearer {new_token}"}
    refresh_calls = [r for r in crm.fake.api.requests("POST") if r.form.get("grant_type") == "refresh_token"]
    print(
        f"\n{crm.platform}: 20 lookups at once on an expiring token: {statuses.count(200)} answered 200,"
        f" {len(refresh_calls)} refresh request(s) at the token endpoint, {len(lookups)} lookups all"
        f" with the new token, {elapsed:.2f} s in all (the refresh takes 0.3 s)"
    )
