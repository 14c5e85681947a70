"""The production server keeps many CRM calls in flight, on SQLite and on PostgreSQL.

Our server runs as in production (`gunicorn -c config/gunicorn.conf.py`: on PostgreSQL
gevent workers and the psycopg pool, on SQLite gthread workers) with a CRM that answers
each call after 50 ms. Many clients at once run the unknown-caller flow, a few sending
each call log twice at the same moment. Every request must be answered without an error:
no "database is locked" on SQLite, no connection beyond the pool's on PostgreSQL, each
call in the CRM once.

This is a correctness test under real concurrency; the speed of the same setup is the
benchmark's business (bench/run.py --crm-delay-ms).
"""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from django.db import connection

from tests.concurrency import ROOT, postgres_test_database_url, production_server, server_env
from tests.conftest import on_postgres

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]

CLIENTS = 64
FLOWS_PER_CLIENT = 3
WORKERS, THREADS, POOL = 2, 48, 8
SERVER_APP = "appconnect-serving-test"


@dataclass
class Served:
    url: str
    api_key: str
    log: Path
    sqlite_path: Path | None
    worker_classes: list[str]


def manage(env: dict[str, str], *argv: str) -> str:
    done = subprocess.run(
        [str(ROOT / ".venv/bin/python"), "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Our server on this pass's database engine: PostgreSQL, the test database (with the
    pool); SQLite, a database file of its own (the test database is in memory)."""
    sqlite_path = None if on_postgres() else tmp_path / "served.sqlite3"
    env = server_env(
        DATABASE_URL=(
            postgres_test_database_url(application_name=SERVER_APP)
            if sqlite_path is None
            else f"sqlite:///{sqlite_path}"
        ),
        DB_POOL_MAX_SIZE=str(POOL),
        WEB_WORKERS=str(WORKERS),
        WEB_THREADS=str(THREADS),
        CRM_PLATFORMS_EXTRA="slow=tests.fakes.SlowCrmClient",
        CRM_DELAY_MS="50",
    )
    if sqlite_path is not None:
        manage(env, "migrate", "--noinput", "-v0")
    api_key = manage(env, "builtin_apikey", "served").strip().splitlines()[-1]
    log = tmp_path / "server.log"
    with production_server(env, log=log) as (url, process):
        classes = worker_classes(process.pid)
        yield Served(url=url, api_key=api_key, log=log, sqlite_path=sqlite_path, worker_classes=classes)


def worker_classes(master: int) -> list[str]:
    """What each gunicorn worker runs: 'gevent' when gevent's compiled hub is loaded in it."""
    classes = []
    for worker in psutil.Process(master).children():
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        classes.append("gevent" if "/gevent/" in maps else "gthread")
    return classes


def flows(served: Served, token: str, client: int) -> list[tuple[str, int, dict[str, Any]]]:
    """FLOWS_PER_CLIENT unknown-caller flows; every third call log is sent twice at once."""
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token}"
    answers = []
    for n in range(FLOWS_PER_CLIENT):
        number = f"+1415{client + 200:03d}{n:04d}"
        looked_up = http.get(f"{served.url}/contact", params={"phoneNumber": number}, timeout=60)
        answers.append(("GET /contact", looked_up.status_code, looked_up.json()))
        created = http.post(
            f"{served.url}/contact",
            json={"phoneNumber": number, "newContactName": f"Caller {client}-{n}"},
            timeout=60,
        )
        answers.append(("POST /contact", created.status_code, created.json()))
        body = {
            "logInfo": {
                "sessionId": f"c{client}-{n}",
                "direction": "Inbound",
                "startTime": "2026-11-30T10:00:00.000Z",
                "duration": 30,
                "from": {"phoneNumber": number},
                "to": {"phoneNumber": "+16505550100"},
            },
            "contactId": created.json()["contact"]["id"],
        }
        if n % 3 == 2:
            twin = requests.Session()
            twin.headers["Authorization"] = f"Bearer {token}"
            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                sent = [
                    pool.submit(s.post, f"{served.url}/callLog", json=body, timeout=60) for s in (http, twin)
                ]
                sent = [future.result() for future in sent]
            answers.extend(("POST /callLog twice", r.status_code, r.json()) for r in sent)
        else:
            logged = http.post(f"{served.url}/callLog", json=body, timeout=60)
            answers.append(("POST /callLog", logged.status_code, logged.json()))
    return answers


def server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [SERVER_APP])
        return cursor.fetchone()[0]


def test_the_worker_class_follows_the_database(served: Served) -> None:
    expected = "gevent" if on_postgres() else "gthread"
    assert served.worker_classes == [expected] * WORKERS


def test_a_worker_freezes_what_it_loaded_and_collects_the_young_less_often() -> None:
    """gunicorn's post_worker_init hook, run as a worker runs it once the app is loaded."""
    script = (
        "import django, gc, json, runpy; django.setup();"
        " assert gc.get_freeze_count() == 0 and gc.get_threshold() == (700, 10, 10);"
        " conf = runpy.run_path('config/gunicorn.conf.py'); conf['post_worker_init'](None);"
        " print(json.dumps([gc.get_threshold(), gc.get_freeze_count(), conf['GC_THRESHOLD']]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=server_env(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    threshold, frozen, configured = json.loads(done.stdout)
    assert threshold == configured == [7000, 10, 10]
    assert frozen > 10_000  # Django, DRF and the views, now out of the collector's way


def test_many_flows_at_once_are_all_answered_and_logged_once(served: Served) -> None:
    login = requests.post(
        f"{served.url}/apiKeyLogin", json={"platform": "slow", "apiKey": served.api_key}, timeout=60
    )
    token = login.json()["jwtToken"]
    peak_connections = 0
    done = threading.Event()

    def watch_connections() -> None:
        nonlocal peak_connections
        try:
            while not done.wait(0.05):
                peak_connections = max(peak_connections, server_connections())
        finally:
            connection.close()

    watcher = threading.Thread(target=watch_connections)
    if on_postgres():
        watcher.start()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = [
            answer
            for answers in pool.map(lambda c: flows(served, token, c), range(CLIENTS))
            for answer in answers
        ]
    done.set()
    if watcher.is_alive():
        watcher.join()

    bad = [(route, status, body) for route, status, body in results if status != 200]
    assert bad == []
    singles = [body for route, _, body in results if route != "POST /callLog twice"]
    assert all(body.get("successful") for body in singles), [b for b in singles if not b.get("successful")]
    twins = [body for route, _, body in results if route == "POST /callLog twice"]
    assert sum(body["successful"] for body in twins) == len(twins) // 2  # one of each pair logs it
    log = served.log.read_text()
    assert "database is locked" not in log and "Traceback" not in log, log[-3000:]
    calls = CLIENTS * FLOWS_PER_CLIENT
    if served.sqlite_path is not None:
        with sqlite3.connect(served.sqlite_path) as db:
            activities = db.execute("SELECT count(*) FROM connector_builtinactivity").fetchone()[0]
    else:
        from connector.models import BuiltinActivity

        activities = BuiltinActivity.objects.count()
        assert 0 < peak_connections <= WORKERS * POOL
    assert activities == calls
