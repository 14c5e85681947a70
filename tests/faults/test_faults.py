"""Nothing lost, nothing doubled: the production server under real faults, on PostgreSQL.

Our server runs as in production (`gunicorn -c config/gunicorn.conf.py`, gevent workers,
the psycopg pool) on the test database, with the `crashy` CRM of tests/faults/crm.py: the
built-in CRM, killing its own worker at the worst moments (after the claim, before and
after the CRM write, after a contact was created) and dropping its database connection
between the CRM write and the outcome. Meanwhile a worker is killed every few seconds
from outside, and every server connection to the database is terminated twice.

Clients run the unknown-caller flow, by hand (GET /contact, POST /contact, POST /callLog
with the contact) and automatically (POST /callLog alone, the rule creating placeholders,
a few numbers shared by many calls), and log text messages (POST /messageLog, two
messages of a conversation); they retry as App Connect's client would: a dropped
connection, a 5xx or "still being written" is tried again after a pause. An admin retries
failed and abandoned logs every two seconds meanwhile. When the faults stop, the clients
finish their retries and the recovery task runs once. Then every call session and every
message is counted: in the CRM exactly once, or on a row that says it failed (retryable)
or waits for an admin. The figures go to test-output/faults.json.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from django.db import DatabaseError, connection, connections
from django.db.models import Q
from django.utils import timezone

from connector.choices import ActivityKind
from connector.models import BuiltinActivity, BuiltinContactPhone
from connector.services import builtin_api_key_create
from logs.choices import LogStatus
from logs.models import CallLog, MessageLog
from logs.services import (
    IN_FLIGHT_TEXT,
    UNCONFIRMED_TEXT,
    RetrySummary,
    call_logs_retry,
    logs_recover,
    message_logs_retry,
)
from rules.models import RuleSetting
from tests.concurrency import ROOT, postgres_test_database_url, production_server, server_env

pytestmark = [
    pytest.mark.requires_postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

OUTPUT = ROOT / "test-output"
CLIENTS = 8
FAULT_SECONDS = 24
EXTERNAL_KILL_EVERY = 5.0  # seconds between two workers killed from outside
DB_DROPS_AT = (8.0, 16.0)  # seconds into the run when every server connection is terminated
LEASE_SECONDS = 2.0
SERVER_APP = "appconnect-fault-suite"  # the server's PostgreSQL application_name
SHARED_NUMBERS = [f"+1415555{7000 + i:04d}" for i in range(12)]  # unknown callers of the automatic flows
FAULTS = {
    "FAULT_KILL_IN_LOOKUP": "0.01",
    "FAULT_KILL_BEFORE_WRITE": "0.006",
    "FAULT_KILL_AFTER_WRITE": "0.01",
    "FAULT_DROP_DB_AFTER_WRITE": "0.01",
    "FAULT_KILL_AFTER_CONTACT": "0.006",
    "FAULT_KILL_AFTER_MESSAGE": "0.02",
}


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    switch: Path  # faults happen while this file exists
    fault_log: Path
    pids_seen: set[int] = field(default_factory=set)

    def workers(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def faults_logged(self) -> Counter[str]:
        if not self.fault_log.exists():
            return Counter()
        return Counter(line for line in self.fault_log.read_text().splitlines() if line)


@pytest.fixture
def server(tmp_path: Path, settings) -> Iterator[Server]:
    """Our server, as in production, on the test database, with the `crashy` CRM."""
    switch, fault_log = tmp_path / "faults-on", tmp_path / "faults.log"
    env = server_env(
        DATABASE_URL=postgres_test_database_url(application_name=SERVER_APP),
        DB_POOL_MAX_SIZE="6",
        WEB_WORKERS="2",
        WEB_THREADS="8",
        LOG_LEASE_SECONDS=str(LEASE_SECONDS),
        OUTBOUND_TIMEOUT_SECONDS="2",
        CRM_PLATFORMS_EXTRA="crashy=tests.faults.crm.KillingCrm",
        FAULT_SWITCH=str(switch),
        FAULT_LOG=str(fault_log),
        **FAULTS,
    )
    OUTPUT.mkdir(exist_ok=True)
    # The test process logs in to the same CRM for the recovery run, with the same lease.
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "PLATFORMS": {**settings.CONNECTOR["PLATFORMS"], "crashy": "tests.faults.crm.KillingCrm"},
        "LOG_LEASE_SECONDS": LEASE_SECONDS,
    }
    with production_server(env, log=OUTPUT / "faults-server.log") as (url, process):
        yield Server(url=url, process=process, switch=switch, fault_log=fault_log)


# --- the clients --------------------------------------------------------------------------


@dataclass
class Flow:
    session_id: str  # a call's session, or the conversation of a message flow
    number: str
    automatic: bool
    messages: bool = False
    outcome: str = "not finished"  # logged | existing | unconfirmed | gave up | refused: <message>
    attempts: int = 0


class Client:
    """One App Connect client: a JWT, a keep-alive session, App Connect's retries."""

    RETRY_FOR_SECONDS = 25.0

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.failed_requests = Counter[str]()  # dropped connections and 5xx, by route

    def send(self, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """The JSON answer of the first attempt that got one (not a 5xx), or None."""
        deadline = time.monotonic() + self.RETRY_FOR_SECONDS
        pause = 0.1
        while time.monotonic() < deadline:
            try:
                response = self.http.request(method, f"{self.url}{path}", timeout=20, **kwargs)
                if response.status_code < 500:
                    return response.json()
                self.failed_requests[f"{method} {path}: HTTP {response.status_code}"] += 1
            except (requests.RequestException, ValueError) as exc:
                self.failed_requests[f"{method} {path}: {type(exc).__name__}"] += 1
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        return None

    def log_call(self, flow: Flow, body: dict[str, Any]) -> None:
        deadline = time.monotonic() + self.RETRY_FOR_SECONDS
        while time.monotonic() < deadline:
            flow.attempts += 1
            answer = self.send("POST", "/callLog", json=body)
            if answer is None:
                break
            message = (answer.get("returnMessage") or {}).get("message", "")
            if answer.get("successful"):
                flow.outcome = "logged"
                return
            if message.startswith("Existing log for session"):
                flow.outcome = "existing"
                return
            if message == UNCONFIRMED_TEXT:
                flow.outcome = "unconfirmed"
                return
            if message.startswith("Contact not found"):
                flow.outcome = f"refused: {message}"
                return
            # In flight, a database failure, a CRM failure: App Connect's user tries again.
            time.sleep(0.3 if message == IN_FLIGHT_TEXT else 0.2)
        flow.outcome = "gave up"

    def run_flow(self, flow: Flow) -> None:
        body: dict[str, Any] = {
            "logInfo": {
                "sessionId": flow.session_id,
                "telephonySessionId": f"t-{flow.session_id}",
                "startTime": "2026-11-30T10:00:00.000Z",
                "duration": 42,
                "direction": "Inbound",
                "result": "Accepted",
                "from": {"phoneNumber": flow.number, "name": "WIRELESS CALLER"},
                "to": {"phoneNumber": "+16505550100", "extensionNumber": "101"},
            },
            "note": "fault suite",
            "additionalSubmission": {},
        }
        if not flow.automatic:
            looked_up = self.send("GET", "/contact", params={"phoneNumber": flow.number})
            created = looked_up and self.send(
                "POST", "/contact", json={"phoneNumber": flow.number, "newContactName": "Jane Roe"}
            )
            contact = (created or {}).get("contact") or {}
            if not contact.get("id"):
                flow.outcome = "gave up"
                return
            body.update(contactId=str(contact["id"]), contactName="Jane Roe", contactType="Contact")
        if flow.messages:
            self.log_messages(flow, body)
        else:
            self.log_call(flow, body)

    def log_messages(self, flow: Flow, call: dict[str, Any]) -> None:
        """Two messages of the conversation `flow.session_id` against the flow's contact."""
        messages = [
            {
                "id": f"{flow.session_id}-{n}",
                "type": "SMS",
                "direction": "Inbound",
                "subject": f"text {flow.session_id}-{n}.",
                "creationTime": f"2026-11-30T10:0{n}:00.000Z",
                "from": {"phoneNumber": flow.number},
                "conversationId": flow.session_id,
            }
            for n in (2, 1)  # newest first, as the client sends them
        ]
        body = {
            "logInfo": {
                "messages": messages,
                "correspondents": [{"phoneNumber": flow.number}],
                "conversationId": flow.session_id,
                "conversationLogId": f"{flow.session_id}-day",
            },
            **{key: call[key] for key in ("contactId", "contactName", "contactType")},
        }
        deadline = time.monotonic() + self.RETRY_FOR_SECONDS
        while time.monotonic() < deadline:
            flow.attempts += 1
            answer = self.send("POST", "/messageLog", json=body)
            if answer is None:
                break
            if answer.get("successful"):
                flow.outcome = "logged"
                return
            if (answer.get("returnMessage") or {}).get("message") == UNCONFIRMED_TEXT:
                flow.outcome = "unconfirmed"
                return
            time.sleep(0.2)
        flow.outcome = "gave up"


def login(url: str) -> str:
    _, key = builtin_api_key_create(name="fault-agent")
    answer = requests.post(f"{url}/apiKeyLogin", json={"platform": "crashy", "apiKey": key}, timeout=20)
    return answer.json()["jwtToken"]


# --- the faults from outside --------------------------------------------------------------


def kill_a_worker(server: Server) -> bool:
    workers = server.workers()
    if not workers:
        return False
    random.choice(workers).send_signal(signal.SIGKILL)
    return True


def drop_server_connections() -> int:
    """Terminate every connection the server holds to the database (waiting up to 3 s for
    it to hold some: its workers may be restarting)."""
    deadline = time.monotonic() + 3
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                [SERVER_APP],
            )
            terminated = cursor.fetchone()[0]
            if terminated or time.monotonic() > deadline:
                return terminated
            time.sleep(0.05)


# --- the run ------------------------------------------------------------------------------


def test_every_call_and_message_reaches_the_crm_once_through_kills_and_dropped_connections(
    server: Server,
) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder", customizable=False)
    token = login(server.url)
    server.switch.touch()
    started = time.monotonic()
    stop = threading.Event()
    flows: list[Flow] = []
    flows_lock = threading.Lock()
    external_kills = 0
    dropped: list[int] = []
    tallies: list[Counter[str]] = []

    def client_loop(index: int) -> None:
        client = Client(server.url, token)
        tallies.append(client.failed_requests)
        serial = 0
        while not stop.is_set():
            serial += 1
            automatic, messages = serial % 2 == 0, serial % 4 == 1
            number = random.choice(SHARED_NUMBERS) if automatic else f"+1650{index + 2}{serial:06d}"
            flow = Flow(
                session_id=f"c{index}-{serial}", number=number, automatic=automatic, messages=messages
            )
            with flows_lock:
                flows.append(flow)
            client.run_flow(flow)

    admin_retries: list[RetrySummary] = []
    admin_rounds_broken: list[int] = []

    def admin_loop() -> None:
        """An admin selecting failed and abandoned logs and pressing Retry, every 2 s (a
        round the dropped connections break is counted and the admin presses again)."""
        try:
            while not stop.wait(2.0):
                stuck = Q(status=LogStatus.FAILED) | Q(
                    status=LogStatus.PENDING, lease_until__lt=timezone.now()
                )
                try:
                    calls = list(CallLog.objects.filter(stuck).values_list("id", flat=True))
                    admin_retries.append(call_logs_retry(log_ids=calls))
                    messages = list(MessageLog.objects.filter(stuck).values_list("id", flat=True))
                    admin_retries.append(message_logs_retry(log_ids=messages))
                except DatabaseError:
                    admin_rounds_broken.append(1)
                    connection.close()
        finally:
            connections.close_all()

    clients = [threading.Thread(target=client_loop, args=(i,), daemon=True) for i in range(CLIENTS)]
    clients.append(threading.Thread(target=admin_loop, daemon=True))
    for thread in clients:
        thread.start()
    next_kill = EXTERNAL_KILL_EVERY
    drops = list(DB_DROPS_AT)
    while (elapsed := time.monotonic() - started) < FAULT_SECONDS:
        server.pids_seen.update(p.pid for p in server.workers())
        if elapsed >= next_kill:
            external_kills += kill_a_worker(server)
            next_kill += EXTERNAL_KILL_EVERY
        if drops and elapsed >= drops[0]:
            drops.pop(0)
            dropped.append(drop_server_connections())
        time.sleep(0.1)
    server.switch.unlink()  # faults stop; clients finish their flows and retries
    stop.set()
    for thread in clients:
        thread.join(timeout=Client.RETRY_FOR_SECONDS * 4)
    assert not any(thread.is_alive() for thread in clients), "a client never finished"
    time.sleep(LEASE_SECONDS + 0.5)
    recovery = logs_recover()

    figures = count(flows)
    figures["flows"]["message_flows"] = sum(flow.messages for flow in flows)
    internal = server.faults_logged()
    figures["faults"] = {
        "workers_killed_from_outside": external_kills,
        "server_connections_terminated": dropped,
        **{name.removeprefix("FAULT_").lower(): internal[name] for name in FAULTS},
        "worker_processes_seen": len(server.pids_seen),
    }
    figures["recovery_task"] = {"logged": recovery.logged, "not_logged": recovery.not_logged}
    figures["admin_retries"] = {
        "rounds": len(admin_retries) // 2,
        "rounds_broken_by_dropped_connections": len(admin_rounds_broken),
        "logged": sum(r.logged for r in admin_retries),
        "not_logged": sum(r.not_logged for r in admin_retries),
        "left_alone": sum(r.left_alone for r in admin_retries),
    }
    figures["requests_failed_and_retried"] = dict(sum(tallies, Counter()))
    (OUTPUT / "faults.json").write_text(json.dumps(figures, indent=2, sort_keys=True))
    print(json.dumps(figures, indent=2, sort_keys=True))

    assert figures["flows"]["tried"] >= 50
    assert external_kills >= 3 and len(dropped) == len(DB_DROPS_AT) and all(dropped)
    assert sum(internal.values()) >= 3, internal  # faults happened inside requests too
    assert figures["doubled"] == [], figures["doubled"]
    assert figures["lost"] == [], figures["lost"]
    assert figures["messages"]["doubled"] == [], figures["messages"]
    assert figures["messages"]["lost"] == [], figures["messages"]
    assert figures["placeholders_doubled"] == [], figures["placeholders_doubled"]
    assert figures["manual_contacts_doubled"] == [], figures["manual_contacts_doubled"]
    assert figures["flows"]["succeeded"] >= figures["flows"]["tried"] * 0.8


def count_messages(flows: list[Flow]) -> dict[str, Any]:
    """Per message: how often its text is in a CRM activity, its row's status."""
    bodies = "\n".join(
        BuiltinActivity.objects.filter(kind=ActivityKind.MESSAGE).values_list("body", flat=True)
    )
    rows = dict(MessageLog.objects.values_list("message_id", "status"))
    doubled, lost, once = [], [], 0
    for flow in (f for f in flows if f.messages):
        for n in (1, 2):
            message_id = f"{flow.session_id}-{n}"
            times, status = bodies.count(f"text {message_id}."), rows.get(message_id)
            if times == 1:
                once += 1
            elif times > 1:
                doubled.append(message_id)
            elif status not in (LogStatus.FAILED, LogStatus.UNCONFIRMED) and (
                status is not None or flow.outcome == "logged"
            ):
                lost.append({"message": message_id, "status": status, "told": flow.outcome})
    return {"in_the_crm_once": once, "doubled": doubled, "lost": lost}


def count(flows: list[Flow]) -> dict[str, Any]:
    """Per session: CRM activities, the row's status, what the client was told."""
    messages = count_messages(flows)
    flows = [flow for flow in flows if not flow.messages]
    activities = Counter(
        BuiltinActivity.objects.filter(kind=ActivityKind.CALL).values_list("details__sessionId", flat=True)
    )
    rows = dict(CallLog.objects.values_list("session_id", "status"))
    doubled = sorted(session for session, n in activities.items() if n > 1)
    lost, left_for_admin, failed = [], [], []
    for flow in flows:
        n, status = activities.get(flow.session_id, 0), rows.get(flow.session_id)
        if n == 1:
            continue
        if status == LogStatus.UNCONFIRMED:
            left_for_admin.append(flow.session_id)
        elif status == LogStatus.FAILED:
            failed.append(flow.session_id)
        elif n == 0 and (status is not None or flow.outcome in ("logged", "existing")):
            lost.append({"session": flow.session_id, "status": status, "told": flow.outcome})
    automatic = {flow.number for flow in flows if flow.automatic}
    contacts_per_number = Counter(
        BuiltinContactPhone.objects.filter(phone_number__in=automatic).values_list("phone_number", flat=True)
    )
    manual = {flow.number for flow in flows if not flow.automatic}
    manual_contacts = Counter(
        BuiltinContactPhone.objects.filter(phone_number__in=manual).values_list("phone_number", flat=True)
    )
    outcomes = Counter(flow.outcome for flow in flows)
    return {
        "messages": messages,
        "flows": {
            "tried": len(flows),
            "succeeded": outcomes["logged"] + outcomes["existing"],
            "automatic": sum(flow.automatic for flow in flows),
            "client_outcomes": dict(outcomes),
            "call_log_answers_retried": sum(max(0, flow.attempts - 1) for flow in flows),
        },
        "sessions_with_one_activity": sum(1 for flow in flows if activities.get(flow.session_id) == 1),
        "doubled": doubled,
        "lost": lost,
        "left_for_admin": left_for_admin,
        "failed_retryable": failed,
        "never_logged_no_row": [f.session_id for f in flows if f.session_id not in rows],
        "placeholders_doubled": sorted(number for number, n in contacts_per_number.items() if n > 1),
        "manual_contacts_doubled": sorted(number for number, n in manual_contacts.items() if n > 1),
    }
