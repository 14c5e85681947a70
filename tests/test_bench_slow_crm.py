"""The benchmark's delayed in-memory CRM (bench/slow_crm.py): a CRM's round trip, then the memory CRM.

`bench/run.py --crm-delay-ms N` serves ours with it beside the peer's PEER_CRM_DELAY_MS=N;
these tests keep it honest: every CRM call waits the configured delay first, after the
base class's wrapper has run (no open transaction, a pooled connection given back), and
otherwise answers exactly as the memory CRM does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from connector.crm.base import CRM_CALLS, CallLogInput, LogContact
from connector.db import CrmCallInTransaction
from tests.conftest import ApiClient, call_body

BENCH = Path(__file__).resolve().parent.parent / "bench"
DELAY_MS = 40


@pytest.fixture
def slow_crm(monkeypatch):
    """bench/slow_crm.py, imported as bench/run.py's servers import it (bench on the path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import slow_crm

    return slow_crm


@pytest.fixture
def platforms(slow_crm, settings, monkeypatch, transactional_db) -> None:
    """`slow` and `memory` registered as bench/run.py registers them (CRM_PLATFORMS_EXTRA,
    BENCH_CRM_DELAY_MS). Without a test transaction around, so that the flow also runs
    with DB_POOL_MAX_SIZE set (a pooled connection cannot go back inside one)."""
    monkeypatch.setenv("BENCH_CRM_DELAY_MS", str(DELAY_MS))
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {
            **settings.CONNECTOR["PLATFORMS"],
            "slow": "slow_crm.SlowMemoryCrmClient",
            "memory": "memory_crm.MemoryCrmClient",
        },
    }


def logged_in(platform: str) -> ApiClient:
    login = ApiClient().post("/apiKeyLogin", {"platform": platform, "apiKey": "bench-memory-key"})
    assert login.status_code == 200, login.content
    return ApiClient(login.json()["jwtToken"])


def test_every_crm_call_of_the_memory_crm_is_overridden_on_the_class_and_wrapped(slow_crm) -> None:
    # CrmClient.__init_subclass__ wraps only what a class defines itself: an inherited
    # method would run the sleep outside the wrapper, holding a pooled connection.
    memory_calls = CRM_CALLS & vars(slow_crm.MemoryCrmClient).keys()
    assert memory_calls >= {"get_user_info", "find_contact", "create_contact", "create_call_log"}
    for name in memory_calls:
        method = vars(slow_crm.SlowMemoryCrmClient).get(name)
        assert method is not None, f"{name} is not overridden"
        assert getattr(method, "__crm_call__", False), f"{name} is not wrapped"


def test_the_delay_comes_from_bench_crm_delay_ms(slow_crm, monkeypatch) -> None:
    monkeypatch.setenv("BENCH_CRM_DELAY_MS", "250")
    assert slow_crm.SlowMemoryCrmClient("slow").delay_s == pytest.approx(0.25)
    monkeypatch.delenv("BENCH_CRM_DELAY_MS")
    assert slow_crm.SlowMemoryCrmClient("slow").delay_s == 0
    for bad in ("fast", "-1"):
        monkeypatch.setenv("BENCH_CRM_DELAY_MS", bad)
        with pytest.raises(ValueError, match="BENCH_CRM_DELAY_MS"):
            slow_crm.SlowMemoryCrmClient("slow")


def test_each_crm_call_waits_the_delay_once_then_answers_as_the_memory_crm(slow_crm, monkeypatch, db) -> None:
    waits: list[float] = []
    monkeypatch.setattr(slow_crm, "sleep", waits.append)
    slow = slow_crm.SlowMemoryCrmClient("slow", delay_s=0.1)
    memory = slow_crm.MemoryCrmClient("memory")
    user = None  # the in-memory CRM reads nothing of the user

    for client in (slow, memory):
        info = client.get_user_info(api_key="k", hostname="", additional_info={})
        assert info.successful and info.user_id.startswith("memory-")
        unknown = client.find_contact(
            user=user, phone_number="+14155550177", overriding_format="", is_extension=False
        )
        assert [c["id"] for c in unknown.contacts] == ["createNewContact"]
        created = client.create_contact(
            user=user,
            phone_number="+14155550177",
            name="Jane",
            contact_type="Contact",
            additional_submission={},
        )
        contact = LogContact(
            id=created.contact["id"], phone_number="+14155550177", type="Contact", name="Jane"
        )
        logged = client.create_call_log(
            user=user, contact=contact, data=CallLogInput(call_log={"sessionId": "s-1"}, note="n")
        )
        found = client.find_contact(
            user=user, phone_number="+14155550177", overriding_format="", is_extension=False
        )
        assert [created.contact["id"], logged.log_id, [c["id"] for c in found.contacts]] == [
            "contact-1",
            "log-2",
            ["contact-1", "createNewContact"],
        ]
    assert waits == [0.1] * 5  # the slow client's five calls; the memory CRM's none


def test_no_delay_waits_nothing(slow_crm, monkeypatch, db) -> None:
    waits: list[float] = []
    monkeypatch.setattr(slow_crm, "sleep", waits.append)
    client = slow_crm.SlowMemoryCrmClient("slow", delay_s=0)
    client.find_contact(user=None, phone_number="+14155550177", overriding_format="", is_extension=False)
    assert waits == []


def test_the_wrapper_runs_before_the_wait(slow_crm, monkeypatch, db) -> None:
    # Inside a transaction the base class's wrapper refuses the call before any waiting.
    waits: list[float] = []
    monkeypatch.setattr(slow_crm, "sleep", waits.append)
    client = slow_crm.SlowMemoryCrmClient("slow", delay_s=0.1)
    with transaction.atomic(), pytest.raises(CrmCallInTransaction):
        client.find_contact(user=None, phone_number="+14155550177", overriding_format="", is_extension=False)
    assert waits == []


def unknown_caller_flow(api: ApiClient, phone: str, session_id: str, on_route) -> list[dict]:
    """GET /contact -> POST /contact -> POST /callLog as load.py sends them; `on_route(route,
    call)` runs each request and returns its response."""
    unknown = on_route("GET /contact", lambda: api.get("/contact", {"phoneNumber": phone}))
    created = on_route(
        "POST /contact", lambda: api.post("/contact", {"phoneNumber": phone, "newContactName": "J"})
    )
    contact_id = created.json()["contact"]["id"]
    body = call_body(session_id=session_id, phone=phone, contact_id=contact_id)
    logged = on_route("POST /callLog", lambda: api.post("/callLog", body))
    return [unknown.json(), created.json(), logged.json()]


def test_unknown_caller_flow_waits_once_per_route_and_does_what_the_memory_crm_does(
    slow_crm, platforms, monkeypatch
) -> None:
    waits: list[float] = []
    held_while_waiting: list[bool] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        held_while_waiting.append(connection.connection is not None)
        time.sleep(seconds)

    monkeypatch.setattr(slow_crm, "sleep", sleep)
    figures: dict[str, dict[str, tuple[int, float, int]]] = {"memory": {}, "slow": {}}

    def measured(platform: str):
        def on_route(route: str, call):
            waits.clear()
            started = time.perf_counter()
            with CaptureQueriesContext(connection) as queries:
                response = call()
            ms = (time.perf_counter() - started) * 1000
            figures[platform][route] = (len(queries), ms, len(waits))
            return response

        return on_route

    answers = {
        platform: unknown_caller_flow(
            logged_in(platform), "+14155550188", f"{platform}-1", measured(platform)
        )
        for platform in ("memory", "slow")
    }

    # One CRM call per route (findContact, createContact, createCallLog: the request
    # names its contact, so no lookup first), each waiting the delay.
    for route, (_, ms, calls) in figures["slow"].items():
        assert calls == 1, route
        assert ms >= DELAY_MS, route
    assert all(calls == 0 for _, _, calls in figures["memory"].values())
    if getattr(connection, "pool", None) is not None:  # DB_POOL_MAX_SIZE on PostgreSQL
        # (the login's getUserInfo and the flow's three calls)
        assert held_while_waiting == [False] * 4, "a pooled connection was held during a CRM wait"
    # Otherwise the same: the same statements, and the same answers.
    assert {r: f[0] for r, f in figures["slow"].items()} == {r: f[0] for r, f in figures["memory"].items()}
    memory, slow = answers["memory"], answers["slow"]
    assert (
        [c["id"] for c in slow[0]["contact"]]
        == [c["id"] for c in memory[0]["contact"]]
        == ["createNewContact"]
    )
    assert slow[1]["contact"]["id"] == memory[1]["contact"]["id"] == "contact-1"
    assert slow[2]["successful"] is memory[2]["successful"] is True
    assert slow[2]["logId"] == memory[2]["logId"] == "log-2"
