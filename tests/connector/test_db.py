"""connector.db's combined writes: several UPDATEs of one table recorded all or nothing,
in one round trip where the database allows it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext

from connector.db import RowUpdate, update_where_each
from connector.models import CrmUser
from rules.choices import DecidedBy, PlaceholderLife
from rules.models import PlaceholderContact
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db


def registry_row(user: CrmUser, number: str, decided_by: str) -> PlaceholderContact:
    return PlaceholderContact.objects.create(
        scope_key=f"user:{user.pk}",
        platform=user.platform,
        phone_number=number,
        created_by=user,
        decided_by=decided_by,
    )


def test_each_update_changes_its_own_rows_and_reports_how_many(crm_user: CrmUser) -> None:
    mine = registry_row(crm_user, "+14155550100", DecidedBy.USER)
    rules_1 = registry_row(crm_user, "+14155550101", DecidedBy.RULE)
    rules_2 = registry_row(crm_user, "+14155550102", DecidedBy.RULE)

    with CaptureQueriesContext(connection) as queries:
        counts = update_where_each(
            PlaceholderContact,
            [
                RowUpdate({"contact_name": "Walk-in Will"}, where={"id": mine.pk}, increment="attempts"),
                RowUpdate({"life": PlaceholderLife.NAMED}, where={"decided_by": DecidedBy.RULE}),
                RowUpdate({"named_as": "nobody"}, where={"phone_number": "+14155550199"}),
            ],
        )

    assert counts == [1, 2, 0]
    mine.refresh_from_db()
    assert (mine.contact_name, mine.attempts, mine.life) == ("Walk-in Will", 1, PlaceholderLife.OPEN)
    for row in (rules_1, rules_2):
        row.refresh_from_db()
        assert (row.life, row.contact_name, row.named_as) == (PlaceholderLife.NAMED, "", "")
    writes = [q["sql"] for q in queries.captured_queries if q["sql"].startswith(("UPDATE", "WITH"))]
    # PostgreSQL: one statement (one round trip, one commit); SQLite: three in a transaction
    assert len(writes) == (1 if on_postgres() else 3)


@pytest.mark.django_db(transaction=True)  # autocommit, as in production: no test transaction to undo it
def test_one_that_fails_leaves_the_others_unwritten(crm_user: CrmUser) -> None:
    mine = registry_row(crm_user, "+14155550100", DecidedBy.USER)
    other = registry_row(crm_user, "+14155550101", DecidedBy.RULE)

    with pytest.raises(IntegrityError):
        update_where_each(
            PlaceholderContact,
            [
                RowUpdate({"contact_name": "Walk-in Will"}, where={"id": mine.pk}),
                RowUpdate({"contact_name": None}, where={"id": other.pk}),  # NOT NULL
            ],
        )

    mine.refresh_from_db()
    assert mine.contact_name == ""


def test_a_single_update_is_a_plain_statement(crm_user: CrmUser) -> None:
    mine = registry_row(crm_user, "+14155550100", DecidedBy.USER)

    with CaptureQueriesContext(connection) as queries:
        counts = update_where_each(
            PlaceholderContact, [RowUpdate({"named_as": "Will"}, where={"id": mine.pk})]
        )

    assert counts == [1]
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["UPDATE"]
