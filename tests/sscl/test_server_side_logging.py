"""Server-side call logging: RingCentral tells the server of every call of the account, and
the server logs each one itself, once, with the account's rules, no browser involved."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from connector.utils import hash_value
from logs.choices import LogStatus
from logs.models import CallLog
from rules.models import Account, PlaceholderContact
from sscl.choices import OwnerMode, SessionState, SubscriptionStatus
from sscl.models import CallSession, UserMapping, WebhookEvent, WebhookSubscription
from sscl.services import (
    ServerLoggingError,
    call_session_resolve,
    call_session_retry,
    server_logging_enable,
    sscl_sweep,
    subscriptions_maintain,
)
from tests.crm_fakes.ringcentral import ACCOUNT_ID, ADMIN_EXTENSION_ID, USER_EXTENSION_ID, deliver
from tests.factories import BuiltinContactFactory
from tests.rules.test_automatic_flow import set_rules
from tests.sscl.conftest import CALLER, Pbx, logging_settings

pytestmark = pytest.mark.django_db(transaction=True)


def activities() -> list[BuiltinActivity]:
    return list(BuiltinActivity.objects.order_by("id"))


# --- the subscription and the webhook's door ------------------------------------------------


def test_enabling_subscribes_the_webhook_after_ringcentrals_handshake(pbx: Pbx, live_server) -> None:
    subscription = WebhookSubscription.objects.get()
    at_rc = pbx.fake.subscriptions[subscription.rc_subscription_id]

    assert at_rc["deliveryMode"]["address"] == f"{live_server.url}/ringcentral/webhook"
    assert at_rc["eventFilters"] == ["/restapi/v1.0/account/~/telephony/sessions"]
    assert subscription.status == SubscriptionStatus.ACTIVE
    assert subscription.verification_token == pbx.fake.verification_tokens[subscription.rc_subscription_id]
    assert subscription.expires_at is not None and subscription.expires_at > timezone.now() + timedelta(
        days=6
    )


def test_the_handshake_echoes_the_validation_token(client) -> None:
    response = client.post("/ringcentral/webhook", HTTP_VALIDATION_TOKEN="abc-123")

    assert response.status_code == 200
    assert response["Validation-Token"] == "abc-123"


def test_a_delivery_with_a_wrong_token_or_unknown_subscription_is_refused_and_not_stored(
    pbx: Pbx, live_server
) -> None:
    event = pbx.events()[0]
    address = f"{live_server.url}/ringcentral/webhook"

    wrong = deliver(address, event, verification_token="not-the-token")
    unknown = deliver(address, {**event, "subscriptionId": "nope"}, verification_token="x")
    garbage = deliver(address, {"hello": "world"}, verification_token="x")

    assert (wrong.status_code, unknown.status_code, garbage.status_code) == (403, 403, 400)
    assert WebhookEvent.objects.count() == 0


def test_the_subscription_shows_when_deliveries_last_came_without_a_write_per_delivery(pbx: Pbx) -> None:
    setup, proceeding, answered = pbx.events(statuses=("Setup", "Proceeding", "Answered"))
    pbx.deliver(setup)
    first = WebhookSubscription.objects.get().last_delivery_at
    assert first is not None and timezone.now() - first < timedelta(seconds=5)

    pbx.deliver(proceeding)  # within the minute: the stamp is recent enough, left alone
    assert WebhookSubscription.objects.get().last_delivery_at == first

    WebhookSubscription.objects.update(last_delivery_at=first - timedelta(minutes=2))
    pbx.deliver(answered)
    assert WebhookSubscription.objects.get().last_delivery_at > first

    WebhookSubscription.objects.update(last_delivery_at=first - timedelta(minutes=2))
    pbx.deliver(answered)  # a redelivery is not a new delivery
    assert WebhookSubscription.objects.get().last_delivery_at == first - timedelta(minutes=2)


# --- calls logged once -----------------------------------------------------------------------


def test_an_answered_call_from_a_known_contact_is_logged_once_against_it(pbx: Pbx) -> None:
    contact = BuiltinContactFactory(name="Jane Roe", phone_numbers=[CALLER])

    pbx.call()

    log = CallLog.objects.get()
    assert log.status == LogStatus.LOGGED
    assert log.contact_id == str(contact.pk)
    assert log.hashed_extension_id == hash_value(ADMIN_EXTENSION_ID)
    assert log.payload["isFromSSCL"] is True
    assert log.duration_seconds == 42
    assert len(activities()) == 1
    session = CallSession.objects.get()
    assert (session.state, session.call_log_id) == (SessionState.LOGGED, log.pk)
    assert WebhookEvent.objects.filter(processed_at=None).count() == 0


def test_redelivered_and_repeated_events_log_the_call_once(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    events = pbx.events()
    pbx.record(events)
    for event in events + events:  # RingCentral redelivers every event (same uuid)
        pbx.deliver(event)
    again = {**events[-1], "uuid": "another-uuid", "body": {**events[-1]["body"], "sequence": 9}}
    pbx.deliver(again)  # a second Disconnected of the same party

    assert WebhookEvent.objects.count() == len(events) + 1
    assert CallLog.objects.count() == 1
    assert len(activities()) == 1


def test_events_out_of_order_log_the_call_once_and_late_ones_change_nothing(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    setup, proceeding, answered, disconnected = pbx.events()
    pbx.record([disconnected])

    for event in (disconnected, answered, setup, proceeding):
        pbx.deliver(event)

    session = CallSession.objects.get()
    assert session.state == SessionState.LOGGED
    assert session.party_status == "Disconnected"
    assert len(activities()) == 1


def test_an_outbound_call_is_logged_against_the_called_number(pbx: Pbx) -> None:
    contact = BuiltinContactFactory(phone_numbers=[CALLER])

    pbx.call(direction="Outbound")

    log = CallLog.objects.get()
    assert (log.direction, log.phone_number, log.contact_id) == ("Outbound", CALLER, str(contact.pk))


def test_a_transferred_call_is_logged_once_for_each_extension_that_took_part(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    first = pbx.events(statuses=("Answered", "Gone"))
    tsid = first[0]["body"]["telephonySessionId"]
    second = pbx.events(
        tsid=tsid, extension_id=USER_EXTENSION_ID, statuses=("Answered", "Disconnected"), first_sequence=3
    )
    pbx.record(first)
    pbx.record(second, extension_id=USER_EXTENSION_ID)

    for event in first + second:
        pbx.deliver(event)

    assert CallSession.objects.filter(state=SessionState.LOGGED).count() == 2
    assert sorted(CallLog.objects.values_list("hashed_extension_id", flat=True)) == sorted(
        [hash_value(ADMIN_EXTENSION_ID), hash_value(USER_EXTENSION_ID)]
    )
    assert len(activities()) == 2


# --- the rules, the blocked numbers ------------------------------------------------------------


def test_a_missed_call_from_an_unknown_number_gets_a_placeholder_when_the_rule_says_so(pbx: Pbx) -> None:
    set_rules(unknownContactAction="createPlaceholder")

    pbx.call(
        statuses=("Setup", "Proceeding", "Disconnected"), result="Missed", duration=0, caller_name="Jane Doe"
    )

    log = CallLog.objects.get()
    assert log.status == LogStatus.LOGGED
    assert log.contact_is_placeholder
    assert PlaceholderContact.objects.get().contact_name == "Jane Doe"
    assert BuiltinContact.objects.get().name == "Jane Doe"


def test_an_unknown_caller_the_rules_leave_to_a_person_waits_in_the_admin_then_is_logged(pbx: Pbx) -> None:
    pbx.call()

    session = CallSession.objects.get()
    assert session.state == SessionState.LEFT_TO_USER
    assert activities() == []

    contact = BuiltinContactFactory(name="Found Later", phone_numbers=[CALLER])
    assert call_session_resolve(row=session, contact_id=str(contact.pk)) == SessionState.LOGGED

    log = CallLog.objects.get()
    assert (log.status, log.contact_id) == (LogStatus.LOGGED, str(contact.pk))
    assert len(activities()) == 1


def test_a_call_left_to_a_person_can_get_its_placeholder_from_the_admin(pbx: Pbx) -> None:
    pbx.call(caller_name="Sam Spade")
    session = CallSession.objects.get()

    assert call_session_resolve(row=session, create_placeholder=True) == SessionState.LOGGED

    log = CallLog.objects.get()
    assert log.status == LogStatus.LOGGED
    assert BuiltinContact.objects.get().name == "Sam Spade"
    assert PlaceholderContact.objects.get().phone_number == CALLER
    with pytest.raises(ServerLoggingError):
        call_session_resolve(row=CallSession.objects.get(), create_placeholder=True)  # logged: not again
    assert len(activities()) == 1


def test_several_matches_follow_the_multiple_match_policy(pbx: Pbx) -> None:
    BuiltinContactFactory(name="Zed Zulu", phone_numbers=[CALLER])
    first = BuiltinContactFactory(name="Amy Alpha", phone_numbers=[CALLER])
    set_rules(multipleMatchPolicy="alphabetical")

    pbx.call()

    assert CallLog.objects.get().contact_id == str(first.pk)
    assert CallSession.objects.get().state == SessionState.LOGGED


def test_several_matches_with_the_prompt_policy_are_left_to_a_person(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    chosen = BuiltinContactFactory(phone_numbers=[CALLER])

    pbx.call()

    session = CallSession.objects.get()
    assert session.state == SessionState.LEFT_TO_USER
    assert call_session_resolve(row=session, contact_id=str(chosen.pk)) == SessionState.LOGGED
    assert CallLog.objects.get().contact_id == str(chosen.pk)


def test_blocked_numbers_are_never_logged(pbx: Pbx, logging_user: CrmUser) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    server_logging_enable(
        account=Account.objects.get(rc_account_id=ACCOUNT_ID),
        crm_user=logging_user,
        blocked_numbers=f"{CALLER}, 105",
    )

    pbx.call()

    session = CallSession.objects.get()
    assert session.state == SessionState.IGNORED
    assert CALLER in session.reason
    assert CallLog.objects.count() == 0


def test_blocked_numbers_are_validated(pbx: Pbx, logging_user: CrmUser) -> None:
    with pytest.raises(ServerLoggingError, match="neither a phone number nor an extension"):
        server_logging_enable(
            account=Account.objects.get(rc_account_id=ACCOUNT_ID),
            crm_user=logging_user,
            blocked_numbers="call me",
        )
    assert logging_settings().blocked_numbers == []


def test_owner_mode_agent_logs_with_the_agents_own_crm_user(pbx: Pbx, logging_user: CrmUser, login) -> None:
    agent, _ = login("uma")
    agent.rc_account_id = ACCOUNT_ID
    agent.hashed_rc_extension_id = hash_value(USER_EXTENSION_ID)
    agent.save()
    BuiltinContactFactory(phone_numbers=[CALLER])
    server_logging_enable(
        account=Account.objects.get(rc_account_id=ACCOUNT_ID),
        crm_user=logging_user,
        owner_mode=OwnerMode.AGENT,
    )
    assert UserMapping.objects.get(rc_extension_id=USER_EXTENSION_ID).crm_user_id == agent.pk

    pbx.call(extension_id=USER_EXTENSION_ID)
    pbx.call(extension_id=ADMIN_EXTENSION_ID)

    assert sorted(CallLog.objects.values_list("user_id", flat=True)) == sorted([agent.pk, logging_user.pk])


# --- RingCentral's call log lags, RingCentral throttles ---------------------------------------


def test_a_record_not_yet_in_the_call_log_is_fetched_again_until_it_is(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])

    pbx.call(appear_after_reads=2)

    session = CallSession.objects.get()
    assert session.state == SessionState.LOGGED
    assert session.attempts == 2
    assert len(pbx.fake.api.requests("GET", r"/restapi/v1\.0/account/~/call-log")) == 3


def test_a_record_that_never_appears_fails_visibly_and_a_retry_logs_it(pbx: Pbx, settings) -> None:
    settings.SSCL_MAX_ATTEMPTS = 3
    BuiltinContactFactory(phone_numbers=[CALLER])

    pbx.call(appear_after_reads=3)

    session = CallSession.objects.get()
    assert session.state == SessionState.FAILED
    assert "not in RingCentral's call log" in session.reason
    call_session_retry(row=session)
    assert CallSession.objects.get().state == SessionState.LOGGED
    assert len(activities()) == 1


def test_ringcentral_throttling_the_call_log_read_waits_its_retry_after(pbx: Pbx) -> None:
    pbx.fake.rate_limit("GET", r"/restapi/v1\.0/account/~/call-log", retry_after=30)
    BuiltinContactFactory(phone_numbers=[CALLER])

    pbx.call()

    session = CallSession.objects.get()
    assert session.state == SessionState.ENDED
    assert session.next_attempt_at >= timezone.now() + timedelta(seconds=25)
    assert sscl_sweep().calls == 0  # not due yet

    CallSession.objects.update(next_attempt_at=timezone.now())
    sscl_sweep()
    assert CallSession.objects.get().state == SessionState.LOGGED


# --- the subscription's upkeep ------------------------------------------------------------------


def test_a_blacklisted_subscription_is_deleted_and_recreated(pbx: Pbx) -> None:
    old = WebhookSubscription.objects.get().rc_subscription_id
    pbx.fake.blacklist(old)

    assert subscriptions_maintain() == {"checked": 1, "failed": 0, "pruned": 0}

    row = WebhookSubscription.objects.get()
    assert row.rc_subscription_id != old
    assert old not in pbx.fake.subscriptions
    assert (row.status, row.recreated) == (SubscriptionStatus.ACTIVE, 1)


def test_a_subscription_expiring_soon_is_renewed(pbx: Pbx, settings) -> None:
    settings.SSCL_RENEW_BEFORE_SECONDS = 8 * 24 * 3600  # everything expires "soon"
    row = WebhookSubscription.objects.get()

    subscriptions_maintain()

    renewed = WebhookSubscription.objects.get()
    assert renewed.rc_subscription_id == row.rc_subscription_id
    assert renewed.renewed_at is not None
    assert len(pbx.fake.api.requests("POST", r"/restapi/v1\.0/subscription/([^/]+)/renew")) == 1


def test_a_subscription_ringcentral_lost_is_recreated(pbx: Pbx) -> None:
    old = WebhookSubscription.objects.get().rc_subscription_id
    del pbx.fake.subscriptions[old]

    subscriptions_maintain()

    assert WebhookSubscription.objects.get().rc_subscription_id in pbx.fake.subscriptions


def test_old_deliveries_are_pruned_by_the_upkeep(pbx: Pbx) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    pbx.call()
    WebhookEvent.objects.update(processed_at=timezone.now() - timedelta(days=31))
    pbx.call()  # a newer call's events stay

    assert subscriptions_maintain()["pruned"] == 4
    assert WebhookEvent.objects.count() == 4
    assert CallSession.objects.filter(state=SessionState.LOGGED).count() == 2


def test_turning_logging_off_deletes_the_subscription(pbx: Pbx, logging_user: CrmUser) -> None:
    server_logging_enable(
        account=Account.objects.get(rc_account_id=ACCOUNT_ID), crm_user=logging_user, enabled=False
    )

    assert pbx.fake.subscriptions == {}
    assert WebhookSubscription.objects.get().rc_subscription_id == ""


# --- the commands -----------------------------------------------------------------------------


def test_sscl_enable_turns_logging_on_from_a_shell(
    rc, logging_user: CrmUser, live_server, settings, capsys
) -> None:
    from connector.services import ringcentral_connect
    from tests.crm_fakes.ringcentral import ADMIN_JWT

    settings.PUBLIC_BASE_URL = live_server.url
    ringcentral_connect(jwt=ADMIN_JWT)

    call_command(
        "sscl_enable", "--account", ACCOUNT_ID, "--crm-user", logging_user.pk, "--blocked", "+14155550100"
    )

    assert logging_settings().enabled
    assert logging_settings().blocked_numbers == ["+14155550100"]
    assert len(rc.subscriptions) == 1
    assert "Server-side logging is on" in capsys.readouterr().out


def test_sscl_replay_feeds_recorded_deliveries(pbx: Pbx, tmp_path, capsys) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    events = pbx.events()
    pbx.record(events)
    recorded = tmp_path / "deliveries.json"
    recorded.write_text(json.dumps(events + events[-1:]))

    call_command("sscl_replay", str(recorded), "--account", ACCOUNT_ID, "--wait", "5")

    out = capsys.readouterr().out
    assert "5 deliveries: 4 stored, 1 already seen; 1 call(s) ended." in out
    assert "logged: 1" in out
    assert len(activities()) == 1
