"""The admin of server-side logging: settings with the subscription's health, calls left to
a person resolved from their page, and no secret on any page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from connector.models import BuiltinActivity
from sscl.choices import SessionState
from sscl.models import CallSession, ServerLogging, WebhookSubscription
from tests.crm_fakes.ringcentral import ADMIN_JWT
from tests.factories import BuiltinContactFactory
from tests.sscl.conftest import CALLER, Pbx

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_settings_page_shows_the_subscriptions_health_and_no_secret(pbx: Pbx, admin_client) -> None:
    setting = ServerLogging.objects.get()
    token = WebhookSubscription.objects.get().verification_token

    page = admin_client.get(reverse("admin:sscl_serverlogging_change", args=[setting.pk]))
    listing = admin_client.get(reverse("admin:sscl_serverlogging_changelist"))

    assert page.status_code == listing.status_code == 200
    html = page.content.decode()
    assert "Status: <strong>Active</strong>" in html
    assert "/ringcentral/webhook" in html
    for text in (page.content.decode(), listing.content.decode()):
        assert token not in text
        assert ADMIN_JWT not in text


def test_saving_blocked_numbers_that_are_not_numbers_is_refused(pbx: Pbx, admin_client) -> None:
    setting = ServerLogging.objects.get()
    url = reverse("admin:sscl_serverlogging_change", args=[setting.pk])
    form = {
        "account": setting.account_id,
        "enabled": "on",
        "crm_user": setting.crm_user_id,
        "owner_mode": "admin",
        "blocked_numbers_text": "+14155550100\nnot a number",
        "mappings-TOTAL_FORMS": "0",
        "mappings-INITIAL_FORMS": "0",
    }

    response = admin_client.post(url, form)

    assert response.status_code == 200
    assert "neither a phone number nor an extension number" in response.content.decode()
    assert ServerLogging.objects.get().blocked_numbers == []


def test_a_call_left_to_a_person_is_resolved_from_its_page(pbx: Pbx, admin_client) -> None:
    pbx.call()
    session = CallSession.objects.get(state=SessionState.LEFT_TO_USER)
    contact = BuiltinContactFactory(name="Found Later", phone_numbers=[CALLER])
    url = reverse("admin:sscl_callsession_resolve", args=[session.pk])

    page = admin_client.get(url)
    assert "Found Later" in page.content.decode()
    response = admin_client.post(url, {"contact_id": str(contact.pk)})

    assert response.status_code == 302
    assert CallSession.objects.get().state == SessionState.LOGGED
    assert BuiltinActivity.objects.count() == 1
