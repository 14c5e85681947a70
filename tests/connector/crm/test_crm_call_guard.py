"""No CRM call runs inside a database transaction: every connector's calls are guarded.

A transaction open across a CRM round trip (100-500 ms for a real CRM) would hold its row
locks, and on SQLite the database-wide write lock, for that whole time. The guard makes
such a call fail loudly, in every test of the suite as in production.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from connector.crm.base import FindContactResult
from connector.crm.builtin import BuiltinCrmClient
from connector.db import CrmCallInTransaction
from connector.models import CrmUser
from connector.services import builtin_api_key_create, crm_user_login_with_api_key
from tests.fakes import FaultyCrmClient


class RecordingCrm(BuiltinCrmClient):
    """The built-in CRM, remembering that a call reached it."""

    reached: list[str] = []

    def find_contact(self, **kwargs: Any) -> FindContactResult:
        self.reached.append("find_contact")
        return super().find_contact(**kwargs)


def test_a_crm_call_inside_a_transaction_is_refused_before_it_reaches_the_crm(crm_user: CrmUser) -> None:
    client = RecordingCrm("builtin")
    RecordingCrm.reached = []

    with pytest.raises(CrmCallInTransaction, match="find_contact"), transaction.atomic():
        client.find_contact(
            user=crm_user, phone_number="+14155550100", overriding_format="", is_extension=False
        )

    assert RecordingCrm.reached == []


def test_the_same_call_outside_a_transaction_runs(crm_user: CrmUser) -> None:
    client = RecordingCrm("builtin")
    RecordingCrm.reached = []

    result = client.find_contact(
        user=crm_user, phone_number="+14155550100", overriding_format="", is_extension=False
    )

    assert result.successful and RecordingCrm.reached == ["find_contact"]


def test_a_subclass_overriding_a_call_is_guarded_too(crm_user: CrmUser) -> None:
    with pytest.raises(CrmCallInTransaction), transaction.atomic():
        FaultyCrmClient("faulty").create_contact(
            user=crm_user,
            phone_number="+14155550100",
            name="x",
            contact_type="Contact",
            additional_submission={},
        )


def test_login_asks_the_crm_before_its_transaction_begins(db) -> None:
    """Login used to call the CRM inside `transaction.atomic` (issue 12): now the guard
    would refuse that call, and the login goes through."""
    _, key = builtin_api_key_create(name="erin")

    outcome = crm_user_login_with_api_key(platform="builtin", api_key=key, hostname="", additional_info={})

    assert CrmUser.objects.filter(pk=outcome.user_id).exists()
