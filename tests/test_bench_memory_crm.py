"""The benchmark's in-memory CRM (bench/memory_crm.py) serves the unknown-caller flow.

`bench/run.py --crm memory` measures our server with it, beside the peer's in-memory
`peercrm`; these tests keep that fixture working and show what it leaves out: every
statement the flow sends then is our server's own, none the CRM's.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ApiClient, call_body

BENCH = Path(__file__).resolve().parent.parent / "bench"
# route -> statements with the in-memory CRM (tests/connector/api/test_query_budgets.py
# has the built-in CRM's): the same minus the CRM's own writes and reads.
OWN_STATEMENTS = {
    "GET /contact": 1,  # the user
    # the user; the registry row claimed (unless the same contact was asked for within 10
    # minutes) before the CRM call; its outcome after it and the rule's open placeholder of
    # the number, if any, marked named (one statement on PostgreSQL; two UPDATEs in a
    # savepoint on SQLite)
    "POST /contact": {"postgresql": 3, "sqlite": 6},
    # user; placeholder? (the named contact); the claim with the write mark (before the CRM
    # call); the outcome and the events (one statement on PostgreSQL; an UPDATE and an
    # INSERT in a savepoint on SQLite)
    "POST /callLog": {"postgresql": 4, "sqlite": 7},
}


@pytest.fixture
def memory_platform(settings, monkeypatch, db) -> None:
    """The `memory` platform registered, as bench/run.py does with CRM_PLATFORMS_EXTRA."""
    monkeypatch.syspath_prepend(str(BENCH))
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], "memory": "memory_crm.MemoryCrmClient"},
    }


@pytest.fixture
def memory_api(memory_platform) -> ApiClient:
    login = ApiClient().post("/apiKeyLogin", {"platform": "memory", "apiKey": "bench-memory-key"})
    assert login.status_code == 200, login.content
    return ApiClient(login.json()["jwtToken"])


def statements(route: str) -> int:
    from django.db import connection

    value = OWN_STATEMENTS[route]
    return value[connection.vendor] if isinstance(value, dict) else value


def test_unknown_caller_flow_on_the_memory_crm(memory_api: ApiClient, django_assert_num_queries) -> None:
    phone = "+14155550177"
    with django_assert_num_queries(statements("GET /contact")):
        unknown = memory_api.get("/contact", {"phoneNumber": phone}).json()
    assert unknown["successful"] is True
    assert [c["id"] for c in unknown["contact"]] == ["createNewContact"]

    with django_assert_num_queries(statements("POST /contact")):
        created = memory_api.post("/contact", {"phoneNumber": phone, "newContactName": "Jane"}).json()
    assert created["successful"] is True
    contact_id = created["contact"]["id"]
    assert contact_id.startswith("contact-")

    with django_assert_num_queries(statements("POST /callLog")):
        logged = memory_api.post("/callLog", call_body(session_id="m-1", phone=phone, contact_id=contact_id))
    assert logged.json()["successful"] is True
    assert logged.json()["logId"].startswith("log-")

    found = memory_api.get("/contact", {"phoneNumber": phone}).json()
    assert [c["id"] for c in found["contact"]] == [contact_id, "createNewContact"]


def test_the_memory_crm_refuses_an_empty_api_key(memory_platform) -> None:
    refused = ApiClient().post("/apiKeyLogin", {"platform": "memory", "apiKey": ""})
    assert refused.status_code == 400
    assert refused.json()["returnMessage"]["message"] == "An API key is required."
