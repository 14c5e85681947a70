"""Moving an activity to another contact (`relink_activity`): an optional capability of the
CRM contract, which the built-in CRM and Pipedrive have and the others say they lack.

Pipedrive's exchange follows developers.pipedrive.com/docs/api/v2/Activities#updateActivity:
its body is addActivity's (pipedrive/client-nodejs `ActivitiesApiUpdateActivityRequest`
carries an `AddActivityRequest`), `person_id` is read-only, and the primary participant
sets it; the answer is the updated activity.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import responses

from connector.choices import ActivityKind
from connector.crm.base import CrmRejected, LogContact, MessageLogInput
from connector.crm.builtin import BuiltinCrmClient
from connector.crm.pipedrive import PipedriveCrmClient
from connector.crm.registry import crm_registry
from connector.models import BuiltinActivity, BuiltinContact, CrmUser
from tests.connector.crm.test_pipedrive_client import (
    HOST,
    activity,
    call_input,
    client,  # noqa: F401 (a fixture)
    fake,  # noqa: F401 (a fixture)
    pipedrive_user,
)
from tests.crm_fakes.pipedrive import PipedriveFake
from tests.factories import BuiltinContactFactory


def test_which_connectors_can_move_activities() -> None:
    capable = {name: crm_registry.get(name).can_relink_activities() for name in crm_registry.platforms()}
    assert capable == {"builtin": True, "pipedrive": True, "hubspot": False, "clio": False}


# --- the built-in CRM ---


def contact_of(crm_log_id: str) -> BuiltinContact:
    return BuiltinActivity.objects.get(pk=crm_log_id).contact


def test_the_builtin_crm_moves_a_call_and_keeps_the_old_contact(crm_user: CrmUser) -> None:
    crm = BuiltinCrmClient("builtin")
    placeholder = BuiltinContactFactory(name="Caller 0199", phone_numbers=["+14155550199"])
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=["+14155550199"])
    old = LogContact(id=str(placeholder.pk), phone_number="+14155550199", name="Caller 0199")
    logged = crm.create_call_log(user=crm_user, contact=old, data=call_input())

    result = crm.relink_activity(
        user=crm_user,
        crm_log_id=str(logged.log_id),
        kind=ActivityKind.CALL,
        contact=LogContact(id=str(real.pk), phone_number="+14155550199"),
    )

    assert (result.crm_log_id, result.contact_id, result.contact_name) == (
        str(logged.log_id),
        str(real.pk),
        "Jane Real",
    )
    assert contact_of(str(logged.log_id)) == real
    assert BuiltinContact.objects.filter(pk=placeholder.pk).exists()  # nothing deleted


def test_the_builtin_crm_moves_a_message_conversation(crm_user: CrmUser) -> None:
    crm = BuiltinCrmClient("builtin")
    first, second = BuiltinContactFactory(), BuiltinContactFactory()
    message = {"id": "m1", "type": "SMS", "direction": "Inbound", "subject": "hi"}
    logged = crm.create_message_log(
        user=crm_user,
        contact=LogContact(id=str(first.pk), phone_number="+14155550199"),
        data=MessageLogInput(message=message),
    )

    crm.relink_activity(
        user=crm_user,
        crm_log_id=str(logged.log_id),
        kind=ActivityKind.MESSAGE,
        contact=LogContact(id=str(second.pk), phone_number="+14155550199"),
    )

    assert contact_of(str(logged.log_id)) == second


@pytest.mark.parametrize(
    ("crm_log_id", "kind", "contact_id", "error"),
    [
        ("999999", ActivityKind.CALL, "real", "No call activity 999999"),
        ("logged", ActivityKind.MESSAGE, "real", "No message activity"),  # a call is no message
        ("logged", ActivityKind.CALL, "424242", "No contact 424242"),
        ("logged", ActivityKind.CALL, "jane", "No contact jane"),
    ],
)
def test_the_builtin_crm_refuses_what_it_does_not_hold(
    crm_user: CrmUser, crm_log_id: str, kind: str, contact_id: str, error: str
) -> None:
    crm = BuiltinCrmClient("builtin")
    placeholder, real = BuiltinContactFactory(), BuiltinContactFactory()
    logged = crm.create_call_log(
        user=crm_user, contact=LogContact(id=str(placeholder.pk), phone_number="+1"), data=call_input()
    )
    ids = {"logged": str(logged.log_id), "real": str(real.pk)}

    with pytest.raises(CrmRejected, match=error):
        crm.relink_activity(
            user=crm_user,
            crm_log_id=ids.get(crm_log_id, crm_log_id),
            kind=kind,
            contact=LogContact(id=ids.get(contact_id, contact_id), phone_number="+1"),
        )
    assert contact_of(str(logged.log_id)) == placeholder


# --- Pipedrive ---


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.mark.django_db
def test_pipedrive_moves_an_activity_by_its_primary_participant(
    client: PipedriveCrmClient,  # noqa: F811
    mocked: responses.RequestsMock,
) -> None:
    user = pipedrive_user()
    moved = activity(501, note="x", person_id=88)
    mocked.patch(f"{HOST}/api/v2/activities/501", json={"success": True, "data": moved})

    result = client.relink_activity(
        user=user, crm_log_id="501", kind=ActivityKind.CALL, contact=LogContact(id="88", phone_number="+1")
    )

    assert json.loads(mocked.calls[0].request.body) == {"participants": [{"person_id": 88, "primary": True}]}
    assert (result.crm_log_id, result.contact_id) == ("501", "88")


@pytest.mark.django_db
def test_pipedrive_says_so_when_the_activity_stayed(
    client: PipedriveCrmClient,  # noqa: F811
    mocked: responses.RequestsMock,
) -> None:
    user = pipedrive_user()
    mocked.patch(f"{HOST}/api/v2/activities/501", json={"success": True, "data": activity(501, note="x")})

    with pytest.raises(CrmRejected, match="kept activity 501 on person 77"):
        client.relink_activity(
            user=user,
            crm_log_id="501",
            kind=ActivityKind.CALL,
            contact=LogContact(id="88", phone_number="+1"),
        )


@pytest.mark.django_db
def test_pipedrive_refuses_ids_that_are_not_its_own(client: PipedriveCrmClient) -> None:  # noqa: F811
    user = pipedrive_user()
    with pytest.raises(CrmRejected, match="not a Pipedrive person id"):
        client.relink_activity(
            user=user,
            crm_log_id="501",
            kind=ActivityKind.CALL,
            contact=LogContact(id="jane", phone_number="+1"),
        )
    with pytest.raises(CrmRejected, match="not a Pipedrive activity id"):
        client.relink_activity(
            user=user, crm_log_id="x1", kind=ActivityKind.CALL, contact=LogContact(id="88", phone_number="+1")
        )


@pytest.mark.django_db
def test_pipedrive_moves_an_activity_in_the_fake(fake: PipedriveFake) -> None:  # noqa: F811
    crm = crm_registry.get("pipedrive")
    tokens = crm.oauth_exchange_code(info=crm.oauth_info(), callback_uri=fake.callback_query()["callbackUri"])
    user = CrmUser.objects.create(
        id=f"{fake.user_id}",
        platform="pipedrive",
        hostname="fakeco.pipedrive.com",
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expiry=tokens.expires_at,
    )
    placeholder = fake.add_contact(name="Caller 0100", phone="+14155550100")
    real = fake.add_contact(name="Jane Real", phone="+14155550100")
    old = LogContact(id=placeholder, phone_number="+14155550100")
    logged = crm.create_call_log(user=user, contact=old, data=call_input())

    crm.relink_activity(
        user=user,
        crm_log_id=str(logged.log_id),
        kind=ActivityKind.CALL,
        contact=LogContact(id=real, phone_number="+14155550100"),
    )

    [call] = fake.call_logs()
    assert call["contact_id"] == real
    assert crm.find_call_log(user=user, log_key="call:s-1:abc", contact_id=real) == logged.log_id
    assert crm.find_call_log(user=user, log_key="call:s-1:abc", contact_id=placeholder) is None
    assert [p["id"] for p in fake.contacts_with_phone("+14155550100")] == [int(placeholder), int(real)]

    with pytest.raises(CrmRejected):  # a person the CRM does not have
        crm.relink_activity(
            user=user,
            crm_log_id=str(logged.log_id),
            kind=ActivityKind.CALL,
            contact=LogContact(id="999999", phone_number="+14155550100"),
        )
