#!/usr/bin/env python3
"""Profile the unknown-caller flow in-process: where the CPU goes, and SQL statements per route.

Runs `GET /contact` (no match) -> `POST /contact` -> `POST /callLog`, a new number and
session per flow, N times through Django's WSGI application (`config.wsgi`: the same
handler, middleware and connection handling gunicorn runs, without the network), with
production settings (DEBUG off), against the database in DATABASE_URL. The request
bodies come from ../shared/peer/load.py, imported as is, so they match the benchmark.

It prints:
  1. per route: SQL statements (from `CaptureQueriesContext`; Django records BEGIN,
     COMMIT and SAVEPOINTs too), plus the round trip it does not record: the connection
     health check (`SELECT 1` sent by CONN_HEALTH_CHECKS before the first query of a
     request on a reused connection); with --show-sql, the statements of one flow;
  2. per route: in-process CPU per request (time.process_time), no profiler attached;
  3. per route: a pyinstrument profile (call tree, then the top functions by own time),
     in wall-clock time (database waits included) or, with --cpu-time, in CPU time.

The statement count pass and the timed pass run separately from the profiled pass, so
neither the debug cursor nor the profiler skews the other figures.

Usage (from the project root):
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/appconnect_profile \\
        .venv/bin/python bench/profile.py --migrate -n 300
    DATABASE_URL=sqlite:////tmp/profile.sqlite3 .venv/bin/python bench/profile.py --migrate --show-sql
    .venv/bin/python bench/profile.py --html /tmp/profile   # writes one HTML profile per route
    .venv/bin/python bench/profile.py --crm memory --cpu-time   # our own work only (bench/memory_crm.py)

The database must exist (PostgreSQL: `createdb`); --migrate applies migrations first.
Rows are added to it (a built-in CRM user `profile`, contacts, call logs): use a scratch
database. Secrets are random for the run unless set in the environment.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = (ROOT.parent / "shared" / "peer").resolve()
ROUTES = ("GET /contact", "POST /contact", "POST /callLog")


def configure_environment() -> None:
    """Production settings for an in-process run: DEBUG off, real (random) secrets."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.setdefault("APP_SERVER_SECRET_KEY", secrets.token_urlsafe(48))
    os.environ.setdefault("HASH_KEY", secrets.token_hex(32))
    os.environ.setdefault("ALLOWED_HOSTS", "127.0.0.1")
    os.environ.setdefault("CONN_MAX_AGE", "600")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # This file is named profile.py: drop its folder from the path so that it does not
    # shadow the standard library's `profile` module (imported by cProfile).
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(ROOT))
    sys.path.insert(1, str(PEER_DIR))


# --- calling the WSGI application --------------------------------------------------------


class Wsgi:
    """Calls a WSGI application the way gunicorn's sync worker does, one request at a time."""

    def __init__(self, application: Callable) -> None:
        self.application = application

    def __call__(
        self, method: str, path: str, query: str = "", body: bytes | None = None
    ) -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_USER_AGENT": "bench-profile",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body or b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if body is not None:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(body))
        status: list[str] = []

        def start_response(s: str, headers: list, exc_info: Any = None) -> None:
            status.append(s)

        result = self.application(environ, start_response)
        try:
            payload = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()  # fires request_finished, as a WSGI server does
        return int(status[0].split()[0]), payload


# --- the flow ----------------------------------------------------------------------------


class Flow:
    """The unknown-caller flow, step by step, with load.py's request bodies."""

    def __init__(self, wsgi: Wsgi, jwt: str, seed: int) -> None:
        import load  # ../shared/peer/load.py

        self.load = load
        self.wsgi = wsgi
        self.jwt_q = f"jwtToken={jwt}"
        self.numbers = load.Numbers(seed)
        # load.py's numbers depend only on the seed (area 415 for 39); start this run at a
        # random point of the block (exchange 2xx-8xx) so reruns on the same database do
        # not find the contacts of an earlier run.
        self.numbers.offset = random.randint(2_000_000, 8_900_000)

    def steps(self) -> list[tuple[str, Callable[[dict], dict]]]:
        """The three steps; each takes the flow state and returns the parsed answer."""
        return [("GET /contact", self.find), ("POST /contact", self.create), ("POST /callLog", self.log)]

    def new_state(self) -> dict:
        phone, session_id = self.numbers.next()
        return {"phone": phone, "session_id": session_id, "name": f"Caller {session_id[-7:]}"}

    def _call(self, route: str, method: str, path: str, query: str, body: bytes | None, check) -> dict:
        import json

        status, raw = self.wsgi(method, path, query, body)
        payload = json.loads(raw) if raw else None
        problem = f"http_{status}" if status != 200 else check(payload)
        if problem:
            raise RuntimeError(f"{route}: {problem}: {raw[:300]!r}")
        return payload

    def find(self, st: dict) -> dict:
        query = f"{self.jwt_q}&phoneNumber=%2B{st['phone'][1:]}"
        return self._call("GET /contact", "GET", "/contact", query, None, self.load.check_find_unknown)

    def create(self, st: dict) -> dict:
        import json

        body = json.dumps(
            {"phoneNumber": st["phone"], "newContactName": st["name"], "newContactType": "Contact"}
        ).encode()
        answer = self._call(
            "POST /contact", "POST", "/contact", self.jwt_q, body, self.load.check_create_contact
        )
        st["contact_id"] = answer["contact"]["id"]
        return answer

    def log(self, st: dict) -> dict:
        body = self.load.call_log_body(st["phone"], st["session_id"], st["contact_id"], st["name"])
        return self._call("POST /callLog", "POST", "/callLog", self.jwt_q, body, self.load.check_call_log)


# `--crm memory`: bench/memory_crm.py, as bench/run.py registers it (here as a module of the
# `bench` namespace package, since this file keeps bench/ itself off the path).
MEMORY_CRM_EXTRA = "memory=bench.memory_crm.MemoryCrmClient"


def login(wsgi: Wsgi, user_name: str, crm: str = "builtin") -> str:
    """Log in through POST /apiKeyLogin: as the built-in CRM user `user_name` (created or
    reused), or on the in-memory CRM (`crm="memory"`, any key)."""
    import json

    from connector.services import builtin_api_key_create

    if crm == "memory":
        platform, key = "memory", "bench-memory-key"
    else:
        platform, (_, key) = "builtin", builtin_api_key_create(name=user_name)
    status, raw = wsgi("POST", "/apiKeyLogin", "", json.dumps({"platform": platform, "apiKey": key}).encode())
    if status != 200:
        raise RuntimeError(f"login failed: {status} {raw[:300]!r}")
    return json.loads(raw)["jwtToken"]


# --- the three passes --------------------------------------------------------------------


class RoundTripCounter:
    """Counts what CaptureQueriesContext does not show directly: health checks (is_usable,
    a round trip it does not record), COMMIT/ROLLBACK, and writes run in autocommit (each
    one its own transaction, so its own WAL flush on PostgreSQL with synchronous_commit)."""

    _WRITES = ("INSERT", "UPDATE", "DELETE")

    def __init__(self, connection: Any) -> None:
        self.counts = {"health_checks": 0, "commits": 0, "rollbacks": 0, "autocommit_writes": 0}

        def autocommit_writes(execute: Callable, sql: str, params: Any, many: bool, context: dict) -> Any:
            if not connection.in_atomic_block and self.is_write(sql):
                self.counts["autocommit_writes"] += 1
            return execute(sql, params, many, context)

        connection.execute_wrappers.append(autocommit_writes)
        for attr, key in (("is_usable", "health_checks"), ("_commit", "commits"), ("_rollback", "rollbacks")):
            original = getattr(connection, attr)

            def wrapper(*a: Any, _original: Callable = original, _key: str = key, **kw: Any) -> Any:
                self.counts[_key] += 1
                return _original(*a, **kw)

            setattr(connection, attr, wrapper)

    @classmethod
    def is_write(cls, sql: str) -> bool:
        """INSERT, UPDATE or DELETE, also inside a WITH (a data-modifying CTE writes too)."""
        words = sql.split(None, 1)
        if not words:
            return False
        if words[0].upper() == "WITH":
            return any(f"{write} " in sql.upper() for write in cls._WRITES)
        return words[0].upper() in cls._WRITES

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)


def count_statements(flow: Flow, flows: int, counter: RoundTripCounter) -> dict[str, dict]:
    """Statements and extra round trips per route over `flows` flows; SQL of the last flow."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    per_route: dict[str, dict] = {r: {"statements": [], "extra": [], "sql": []} for r in ROUTES}
    for _ in range(flows):
        st = flow.new_state()
        for route, step in flow.steps():
            before = counter.snapshot()
            with CaptureQueriesContext(connection) as ctx:
                step(st)
            after = counter.snapshot()
            per_route[route]["statements"].append(len(ctx.captured_queries))
            per_route[route]["extra"].append({k: after[k] - before[k] for k in after})
            per_route[route]["sql"] = [q["sql"] for q in ctx.captured_queries]
    return per_route


def _backend_cpu_reader() -> Callable[[], float] | None:
    """A function reading the CPU seconds (user + system) of this connection's PostgreSQL
    backend process from /proc, or None (SQLite, or a server on another machine)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")

    def read() -> float:
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    return read


def time_routes(flow: Flow, flows: int) -> tuple[dict[str, list[float]], dict[str, float] | None]:
    """In-process CPU seconds per request, per route (no profiler, no debug cursor), and
    the PostgreSQL backend's CPU seconds per request, per route (mean; /proc counts in
    clock ticks, so only the mean over many requests means anything)."""
    cpu: dict[str, list[float]] = {r: [] for r in ROUTES}
    backend_cpu = _backend_cpu_reader()
    db: dict[str, float] = dict.fromkeys(ROUTES, 0.0)
    for _ in range(flows):
        st = flow.new_state()
        for route, step in flow.steps():
            d0 = backend_cpu() if backend_cpu else 0.0
            t0 = time.process_time()
            step(st)
            cpu[route].append(time.process_time() - t0)
            if backend_cpu:
                db[route] += backend_cpu() - d0
    return cpu, ({r: db[r] / flows for r in ROUTES} if backend_cpu else None)


def profile_routes(flow: Flow, flows: int, interval: float, cpu_time: bool) -> dict[str, Any]:
    """One pyinstrument profiler per route, started and stopped around that route's requests.

    With `cpu_time`, samples are spaced in process CPU time instead of wall time (through
    pyinstrument's stack sampler `timer_func`), so waiting for the database weighs nothing
    and the profile shows only where the CPU goes.
    """
    from pyinstrument import Profiler

    if cpu_time:
        from pyinstrument.stack_sampler import get_stack_sampler

        get_stack_sampler().timer_func = time.process_time

    profilers = {r: Profiler(interval=interval) for r in ROUTES}
    for _ in range(flows):
        st = flow.new_state()
        for route, step in flow.steps():
            profilers[route].start()
            try:
                step(st)
            finally:
                profilers[route].stop()
    return profilers


# --- report ------------------------------------------------------------------------------


def _is_transaction_control(sql: str) -> bool:
    return sql.split(None, 1)[0].upper() in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def print_statements(per_route: dict[str, dict], show_sql: bool) -> None:
    """Statements per request as Django records them (BEGIN/COMMIT/SAVEPOINT included),
    plus the health-check `SELECT 1` it does not record: together, the round trips."""
    from django.db import connection

    print(f"== SQL per request ({connection.vendor}; last {len(per_route[ROUTES[0]]['statements'])} flows)")
    head = (("statements", 10), ("min..max", 9), ("of them txn ctl", 15), ("health SELECT 1", 15),
            ("round trips", 11), ("commits", 7))  # fmt: skip
    print(f"{'route':<15} " + " ".join(f"{h:>{w}}" for h, w in head))
    totals = [0.0, 0.0, 0.0, 0.0]
    for route in ROUTES:
        counts = per_route[route]["statements"]
        extra = per_route[route]["extra"]
        mean = statistics.mean(counts)
        txn = sum(_is_transaction_control(sql) for sql in per_route[route]["sql"])
        # SQLite's is_usable() answers without a query; PostgreSQL's sends SELECT 1.
        health = (
            statistics.mean(e["health_checks"] for e in extra) if connection.vendor == "postgresql" else 0
        )
        commits = statistics.mean(e["commits"] + e["autocommit_writes"] for e in extra)
        for i, v in enumerate((mean, health, mean + health, commits)):
            totals[i] += v
        print(
            f"{route:<15} {mean:>10.1f} {f'{min(counts)}..{max(counts)}':>9} {txn:>15} {health:>15.1f} "
            f"{mean + health:>11.1f} {commits:>7.1f}"
        )
    print(
        f"{'whole flow':<15} {totals[0]:>10.1f} {'':>9} {'':>15} {totals[1]:>15.1f} {totals[2]:>11.1f} "
        f"{totals[3]:>7.1f}"
    )
    print(
        "commits: write transactions per request (atomic blocks + writes in autocommit); on PostgreSQL\n"
        "each waits for its own WAL flush (synchronous_commit on)."
    )
    rollbacks = sum(e["rollbacks"] for r in ROUTES for e in per_route[r]["extra"])
    if rollbacks:
        print(f"(rollbacks seen: {rollbacks})")
    if show_sql:
        for route in ROUTES:
            print(f"\n-- {route}: statements of the last flow")
            for i, sql in enumerate(per_route[route]["sql"], 1):
                print(f"{i:>3}. {sql if len(sql) <= 400 else sql[:400] + ' ...'}")
    print()


def print_cpu(cpu: dict[str, list[float]], db: dict[str, float] | None) -> None:
    print("== in-process CPU per request (ms; no profiler attached)")
    print(f"{'route':<15} {'mean':>7} {'p50':>7} {'p95':>7} {'PostgreSQL backend mean':>24}")
    total = db_total = 0.0
    for route in ROUTES:
        ms = sorted(1000 * x for x in cpu[route])
        total += statistics.mean(ms)
        p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))]
        db_ms = f"{1000 * db[route]:.2f}" if db else "-"
        db_total += 1000 * db[route] if db else 0.0
        mean, p50 = statistics.mean(ms), statistics.median(ms)
        print(f"{route:<15} {mean:>7.2f} {p50:>7.2f} {p95:>7.2f} {db_ms:>24}")
    print(f"{'whole flow':<15} {total:>7.2f} {'':>7} {'':>7} {f'{db_total:.2f}' if db else '-':>24}")
    print()


def print_profiles(profilers: dict[str, Any], top: int, html_dir: Path | None) -> None:
    for route in ROUTES:
        profiler = profilers[route]
        print(f"== pyinstrument: {route}")
        print(profiler.output_text(unicode=True, color=False, show_all=False))
        flat = profiler.output_text(unicode=True, color=False, flat=True, flat_time="self")
        lines = [ln for ln in flat.splitlines() if ln.strip()]
        body = [ln for ln in lines if ln[:1].isdigit() or ln.lstrip()[:1].isdigit()]
        print(f"-- {route}: top {top} functions by own time")
        print("\n".join(body[:top]) if body else flat)
        print()
        if html_dir is not None:
            html_dir.mkdir(parents=True, exist_ok=True)
            out = html_dir / f"{route.replace(' /', '-').replace('/', '-').lower()}.html"
            out.write_text(profiler.output_html())
            print(f"   HTML profile: {out}")


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--flows", type=int, default=200, help="flows in the profiled pass [200]")
    ap.add_argument("--warmup", type=int, default=30, help="flows run first, unmeasured [30]")
    ap.add_argument("--count-flows", type=int, default=20, help="flows in the statement count pass [20]")
    ap.add_argument("--timed-flows", type=int, default=200, help="flows in the CPU timing pass [200]")
    ap.add_argument(
        "--interval", type=float, default=0.0005, help="pyinstrument sampling interval, s [0.0005]"
    )
    ap.add_argument("--top", type=int, default=25, help="functions listed by own time per route [25]")
    ap.add_argument("--migrate", action="store_true", help="apply migrations to DATABASE_URL first")
    ap.add_argument("--user", default="profile", help="built-in CRM user to create or reuse [profile]")
    ap.add_argument("--seed", type=int, default=39, help="phone-number block, as load.py --seed [39]")
    ap.add_argument(
        "--crm",
        choices=("builtin", "memory"),
        default="builtin",
        help="the built-in CRM (writes to our database) or bench/memory_crm.py (our own work only, "
        "as `bench/run.py --crm memory` measures it) [builtin]",
    )
    ap.add_argument(
        "--cpu-time",
        action="store_true",
        help="profile in CPU time (database waits drop out) instead of wall-clock time",
    )
    ap.add_argument("--show-sql", action="store_true", help="print the statements of one flow per route")
    ap.add_argument("--html", type=Path, metavar="DIR", help="also write one HTML profile per route to DIR")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        print("set DATABASE_URL to a scratch database (see --help)", file=sys.stderr)
        return 2
    configure_environment()
    if args.crm == "memory":
        os.environ["CRM_PLATFORMS_EXTRA"] = MEMORY_CRM_EXTRA
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    if args.migrate:
        call_command("migrate", interactive=False, verbosity=0)
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        print("the database has unapplied migrations; run with --migrate", file=sys.stderr)
        return 2

    from config.wsgi import application

    wsgi = Wsgi(application)
    flow = Flow(wsgi, login(wsgi, args.user, args.crm), args.seed)
    counter = RoundTripCounter(connection)
    for _ in range(args.warmup):
        st = flow.new_state()
        for _, step in flow.steps():
            step(st)
    print(f"database: {connection.vendor}; CRM: {args.crm}; flows: warm-up {args.warmup}, "
          f"count {args.count_flows}, timed {args.timed_flows}, profiled {args.flows}\n")  # fmt: skip
    print_statements(count_statements(flow, args.count_flows, counter), args.show_sql)
    print_cpu(*time_routes(flow, args.timed_flows))
    print(f"profiles in {'CPU' if args.cpu_time else 'wall-clock'} time\n")
    print_profiles(profile_routes(flow, args.flows, args.interval, args.cpu_time), args.top, args.html)
    return 0


if __name__ == "__main__":
    sys.exit(main())
