"""Statements per route on the hot path, held to a budget (bench/profile.py measures CPU).

Budgets count every statement Django sends, savepoints included (a test runs inside a
transaction, so each atomic block shows as SAVEPOINT/RELEASE). Raising one needs a reason.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.conftest import ApiClient, call_body

# route -> statements. Some differ by engine: PostgreSQL writes a contact and its number, or
# a log's outcome and its events, in one statement (a data-modifying CTE), where SQLite
# needs two in a savepoint.
BUDGETS = {
    "GET /contact": 2,  # the user; the contacts with the number
    "POST /contact": {"postgresql": 3, "sqlite": 6},  # user; contact + number; placeholder record
    # user; claim; placeholder?; CRM activity; outcome and events
    "POST /callLog": {"postgresql": 5, "sqlite": 8},
    # user; placeholder?; the day's activity?; claim; CRM activity; outcome and events
    "POST /messageLog": {"postgresql": 6, "sqlite": 9},
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
