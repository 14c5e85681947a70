"""Statements per route on the hot path, held to a budget (bench/profile.py measures CPU).

Budgets count every statement Django sends, savepoints included (a test runs inside a
transaction, so each atomic block shows as SAVEPOINT/RELEASE). Raising one needs a reason.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import ApiClient, call_body

# route -> statements. Each transaction shows as a SAVEPOINT/RELEASE pair here (in
# production: one COMMIT). A log's outcome and its events are one statement on PostgreSQL
# (a data-modifying CTE), an UPDATE and an INSERT in a transaction on SQLite.
BUDGETS = {
    "GET /contact": 2,  # the user; the contacts with the number
    # user; the registry row claimed unless the same contact was asked for; the built-in
    # CRM's contact + number (a transaction); the registry row ready and the rule's open
    # placeholder of the number, if any, marked named (issue 16: the placeholder's life),
    # one statement on PostgreSQL, two UPDATEs in a transaction on SQLite
    "POST /contact": {"postgresql": 7, "sqlite": 10},
    # user; placeholder? (the named contact); the claim, with the decision and the write
    # mark; the built-in CRM's contact check, activity and its key (a transaction); the
    # outcome and events
    "POST /callLog": {"postgresql": 9, "sqlite": 12},
    # user; placeholder?; the day's activity?; claim; the write mark; the built-in CRM's
    # contact check, activity and key (a transaction); the outcome and events
    "POST /messageLog": {"postgresql": 11, "sqlite": 14},
}


def budget(route: str) -> int:
    value = BUDGETS[route]
    return value[connection.vendor] if isinstance(value, dict) else value


@pytest.mark.parametrize("index", [1, 2])
def test_unknown_caller_flow_stays_within_its_budget(
    api: ApiClient, django_assert_num_queries, index: int
) -> None:
    phone = f"+1415555{index:04d}"
    with django_assert_num_queries(budget("GET /contact")):
        assert api.get("/contact", {"phoneNumber": phone}).status_code == 200
    with django_assert_num_queries(budget("POST /contact")):
        created = api.post("/contact", {"phoneNumber": phone, "newContactName": "Jane"})
    contact_id = created.json()["contact"]["id"]
    with django_assert_num_queries(budget("POST /callLog")):
        logged = api.post("/callLog", call_body(session_id=f"s-{index}", phone=phone, contact_id=contact_id))
    assert logged.json()["successful"] is True
    body = {
        "logInfo": {
            "messages": [{"id": index, "type": "SMS", "direction": "Inbound", "subject": "hi"}],
            "correspondents": [{"phoneNumber": phone}],
            "conversationLogId": f"conv-{index}",
        },
        "contactId": contact_id,
    }
    with django_assert_num_queries(budget("POST /messageLog")):
        assert api.post("/messageLog", body).json()["successful"] is True
