"""A placeholder creation interrupted after the CRM created the contact is not made twice.

The request creating a number's placeholder can die (or lose the CRM's answer) after the
CRM created the contact. The next request for the number looks the number up first, as
every automatic decision does: the contact is there, and the call is logged against it.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import pytest

from connector.crm.base import CreateContactResult, CrmUnavailable
from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinActivity, BuiltinContact
from logs.models import CallLog
from rules.choices import PlaceholderStatus
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.conftest import call_body

LEASE = 0.3
UNKNOWN = "+14155550177"


class Died(BaseException):
    """The request's process died here."""


class InterruptedCrm(BuiltinCrmClient):
    """The built-in CRM; the next contact creation is interrupted after the CRM made it."""

    interrupt: ClassVar[type[BaseException] | None] = None

    def create_contact(self, **kwargs: Any) -> CreateContactResult:
        result = super().create_contact(**kwargs)
        interrupt, InterruptedCrm.interrupt = InterruptedCrm.interrupt, None
        if interrupt is Died:
            raise Died("after create_contact")
        if interrupt is CrmUnavailable:
            raise CrmUnavailable("interrupted did not answer in time", uncertain=True)
        return result


@pytest.fixture
def api(settings, login):
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {
            **settings.CONNECTOR["PLATFORMS"],
            "interrupted": "tests.rules.test_placeholder_recovery.InterruptedCrm",
        },
        "LOG_LEASE_SECONDS": LEASE,
    }
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder", customizable=False)
    rules_cache_clear()
    _, client = login("fay", platform="interrupted")
    return client


def test_a_placeholder_whose_creator_died_is_found_in_the_crm_not_created_again(api) -> None:
    InterruptedCrm.interrupt = Died
    with pytest.raises(Died):
        api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN))
    assert PlaceholderContact.objects.get().status == PlaceholderStatus.CREATING

    answer = api.post("/callLog", call_body(session_id="s-2", phone=UNKNOWN)).json()

    assert answer["successful"] is True
    contact = BuiltinContact.objects.get()
    assert CallLog.objects.get(session_id="s-2").contact_id == str(contact.pk)
    assert BuiltinActivity.objects.get().contact_id == contact.pk


def test_a_placeholder_whose_creation_answer_was_lost_is_found_by_the_retry(api) -> None:
    InterruptedCrm.interrupt = CrmUnavailable

    first = api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN)).json()
    second = api.post("/callLog", call_body(session_id="s-1", phone=UNKNOWN)).json()

    assert first["successful"] is False and second["successful"] is True
    assert BuiltinContact.objects.count() == 1
    assert CallLog.objects.get().contact_id == str(BuiltinContact.objects.get().pk)


# --- "Create new contact..." by hand ----------------------------------------------------------


def new_contact(name: str = "Jane Roe") -> dict[str, Any]:
    return {"phoneNumber": UNKNOWN, "newContactName": name, "newContactType": "Contact"}


def test_a_repeated_create_contact_gets_the_contact_the_first_made(api) -> None:
    first = api.post("/contact", new_contact()).json()
    again = api.post("/contact", new_contact()).json()
    other = api.post("/contact", new_contact("John Roe")).json()

    assert again["contact"]["id"] == first["contact"]["id"]
    assert other["contact"]["id"] != first["contact"]["id"]
    assert BuiltinContact.objects.count() == 2


def test_a_create_contact_whose_request_died_is_found_in_the_crm_by_its_retry(api, settings) -> None:
    InterruptedCrm.interrupt = Died
    with pytest.raises(Died):
        api.post("/contact", new_contact())
    time.sleep(LEASE + 0.05)

    answer = api.post("/contact", new_contact()).json()

    contact = BuiltinContact.objects.get()
    assert answer["successful"] is True and answer["contact"]["id"] == str(contact.pk)
    registry = PlaceholderContact.objects.get()
    assert (registry.status, registry.contact_id) == (PlaceholderStatus.READY, str(contact.pk))


def test_a_create_contact_whose_answer_was_lost_is_found_by_its_retry(api) -> None:
    InterruptedCrm.interrupt = CrmUnavailable

    first = api.post("/contact", new_contact()).json()
    second = api.post("/contact", new_contact()).json()

    assert first["successful"] is False and second["successful"] is True
    assert second["contact"]["id"] == str(BuiltinContact.objects.get().pk)
