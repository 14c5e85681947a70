"""GET|POST /admin/serverLoggingSettings: App Connect's route, here turning server-side
logging on and off for the caller's account."""

from __future__ import annotations

import pytest

from connector.models import CrmUser
from connector.ringcentral import rc_token_from_jwt
from connector.services import ringcentral_connect
from sscl.models import ServerLogging, WebhookSubscription
from tests.conftest import ApiClient
from tests.crm_fakes.ringcentral import ADMIN_JWT, USER_JWT, RingCentralFake

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def connected(rc: RingCentralFake, logging_user: CrmUser, live_server, settings) -> None:
    settings.PUBLIC_BASE_URL = live_server.url
    ringcentral_connect(jwt=ADMIN_JWT)


def test_get_answers_the_accounts_state_without_secrets(api: ApiClient, logging_user: CrmUser) -> None:
    body = api.get("/admin/serverLoggingSettings").json()

    assert body == {
        "additionalFields": [],
        "additionalFieldValues": {},
        "serverSideLogging": {"enabled": False},
    }


def test_an_admin_turns_logging_on_with_options(api: ApiClient, connected: None, rc: RingCentralFake) -> None:
    token = rc_token_from_jwt(jwt=ADMIN_JWT).access_token
    payload = {
        "additionalFieldValues": {},
        "serverSideLogging": {
            "enabled": True,
            "ownerMode": "agent",
            "blockedNumbers": ["+1 (415) 555-0100", "105"],
        },
    }

    body = api.post("/admin/serverLoggingSettings", payload, headers={"X-RC-Access-Token": token}).json()

    state = body["serverSideLogging"]
    assert state["enabled"] is True
    assert state["ownerMode"] == "agent"
    assert state["blockedNumbers"] == ["+14155550100", "105"]
    assert state["subscription"]["status"] == "Active"
    assert WebhookSubscription.objects.get().verification_token not in str(body)
    assert len(rc.subscriptions) == 1


def test_a_non_admin_cannot_change_it(api: ApiClient, connected: None) -> None:
    token = rc_token_from_jwt(jwt=USER_JWT).access_token
    payload = {"additionalFieldValues": {}, "serverSideLogging": {"enabled": True}}

    response = api.post("/admin/serverLoggingSettings", payload, headers={"X-RC-Access-Token": token})

    assert (response.status_code, response.content) == (403, b"Admin validation failed")
    assert ServerLogging.objects.count() == 0


def test_unknown_additional_fields_are_refused_before_anything_is_written(
    api: ApiClient, connected: None
) -> None:
    token = rc_token_from_jwt(jwt=ADMIN_JWT).access_token
    payload = {"additionalFieldValues": {"apiPassword": "x"}, "serverSideLogging": {"enabled": True}}

    response = api.post("/admin/serverLoggingSettings", payload, headers={"X-RC-Access-Token": token})

    assert response.status_code == 400
    assert "additionalFieldValues" in response.json()["errors"]
    assert ServerLogging.objects.count() == 0


def test_additional_field_values_are_required(api: ApiClient, logging_user: CrmUser) -> None:
    response = api.post("/admin/serverLoggingSettings", {"serverSideLogging": {"enabled": False}})

    assert response.status_code == 400
    assert "additionalFieldValues" in response.json()["errors"]
