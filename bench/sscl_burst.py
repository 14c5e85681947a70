#!/usr/bin/env python3
"""The 1,000-event burst of server-side call logging (issue 15, "Done when").

Measures, with production's components on PostgreSQL, what a burst of RingCentral
telephony-session deliveries does to our webhook and to the Celery worker behind it:
every delivery answered (and how fast), every call logged exactly once after the worker
drains (and how long that takes), redeliveries ignored.

The script, from the project root:
  1. creates a fresh PostgreSQL database (`--pg-name`, default `bench_sscl`, on
     127.0.0.1 as role `postgres`), runs `manage.py migrate`, creates the built-in CRM
     user `bench` (`manage.py builtin_apikey bench`) and logs it in with its key through
     the connector's service (`crm_user_login_with_api_key`, in `manage.py shell -c`),
     linked to the fake RingCentral account (its `rc_account_id`, from the admin
     extension); the account's rule unknownContactAction = createPlaceholder (a
     RuleSetting row, rules_cache_clear); the known callers' contacts in the built-in CRM;
  2. serves the fake RingCentral (tests/crm_fakes/ringcentral.py) on loopback, in this
     process;
  3. starts our server with production's command,
         gunicorn -c config/gunicorn.conf.py config.wsgi:application
     (bench/run.py's gunicorn_command; config/gunicorn.conf.py's workers and threads
     unless --workers/--threads), and a worker,
         celery -A config worker --pool threads --concurrency N
     both with DATABASE_URL, CELERY_BROKER_URL=redis://127.0.0.1:6379/13,
     PUBLIC_BASE_URL, RINGCENTRAL_SERVER/CLIENT_ID/CLIENT_SECRET (the fake's) and
     SSCL_FIRST_FETCH_DELAY_SECONDS=1. No beat: the measured path is the webhook's task
     and the tasks it queues (with their countdown); the sweep is never run, so a call
     that only the sweep would have logged shows as not logged;
  4. connects the account (`manage.py ringcentral_connect`, the JWT in RINGCENTRAL_JWT)
     and turns server-side logging on (`manage.py sscl_enable --account A --crm-user U`),
     which subscribes: the fake performs RingCentral's Validation-Token handshake against
     our server;
  5. plays the burst: C calls (--calls, 250) x 4 events (Setup, Proceeding, Answered,
     Disconnected) = 4C distinct deliveries, plus D redeliveries (--redeliveries, 100;
     the same notification, same uuid, sent again later), each call's record put in the
     fake's call log first; half the callers are known contacts, half unknown (a
     placeholder is created for each). K senders (--senders, 32) POST them concurrently
     as RingCentral does (`deliver`: one new connection per delivery), each answer's
     status and time recorded;
  6. waits for the worker to drain (every call settled, or --drain-timeout) and reads
     the outcome from the database.

It prints the deliveries sent, answered 200 and other statuses; the webhook's answer
time p50/p95/p99/max; the drain time (first delivery to the last call logged); the calls
per state (sscl_callsession); the CRM activities written (built-in activities) against
the calls expected (exactly C), and the sessions logged more than once; the events
stored (exactly 4C: redeliveries ignored) and the duplicates ignored; the peak resident
memory of the server (gunicorn master + workers) and of the worker. It exits 1 when
anything is lost or doubled. The figures go to --json-out (test-output/sscl_burst.json).

Everything it started is stopped, the database dropped and Redis db 13 flushed, also on
error or Ctrl-C. Only 127.0.0.1 is ever contacted.

Usage:
    .venv/bin/python bench/sscl_burst.py
    .venv/bin/python bench/sscl_burst.py --calls 250 --redeliveries 100 --senders 32 --concurrency 16
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import queue
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for tests.crm_fakes


def _load_bench_run() -> Any:
    """bench/run.py as a module (from its file: see tests/test_bench_run.py)."""
    name = "bench_run"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench_run = _load_bench_run()
HOST = bench_run.HOST
VENV_BIN = bench_run.VENV_BIN

BROKER_URL = "redis://127.0.0.1:6379/13"  # this benchmark's Redis database, flushed before and after
STATUSES = ("Setup", "Proceeding", "Answered", "Disconnected")
OUR_NUMBER = "+16505550100"
DEFAULT_JSON = ROOT / "test-output" / "sscl_burst.json"
# The calls' states that are final (sscl.choices.SessionState); the others are still moving.
SETTLED = ("logged", "left_to_user", "ignored", "failed")


# --- pure helpers (tests/test_bench_sscl_burst.py) ----------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) of `values`, nearest rank (an observed value: p99 of
    1,100 answers is the 1,089th fastest). None when there are none."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError("q must be within 0..100")
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def caller_number(index: int) -> str:
    """The outside number of call `index`: distinct, valid NANP numbers in the 555
    fictional range (+1 415 555 0000 onwards)."""
    if not 0 <= index < 10000:
        raise ValueError("at most 10,000 callers")
    return f"+1415555{index:04d}"


def is_known(index: int) -> bool:
    """Half the callers are contacts of the CRM (the even ones), half unknown."""
    return index % 2 == 0


def delivery_plan(calls: int, redeliveries: int, *, seed: int) -> list[tuple[int, int]]:
    """The order the deliveries are sent in, as (call, event) pairs, event 0..3 being
    Setup..Disconnected: the calls in a shuffled order, each call's events in order, and
    `redeliveries` distinct events each sent again at a random later point (RingCentral
    redelivers what it thinks was not received). Concurrent senders may still overtake
    one another, as real deliveries do."""
    if calls < 1 or redeliveries < 0 or redeliveries > calls * len(STATUSES):
        raise ValueError("need calls >= 1 and 0 <= redeliveries <= 4 x calls")
    rnd = random.Random(seed)
    order = list(range(calls))
    rnd.shuffle(order)
    plan = [(call, event) for call in order for event in range(len(STATUSES))]
    for item in rnd.sample(plan[:], redeliveries):
        at = plan.index(item)
        plan.insert(rnd.randint(at + 1, len(plan)), item)
    return plan


@dataclass(frozen=True)
class Answer:
    """One delivery's answer: HTTP status (0 when no answer came) and seconds taken."""

    status: int
    seconds: float
    redelivery: bool = False
    error: str = ""
    at: float = 0.0  # seconds from the burst's start to this delivery's start


def answer_figures(answers: list[Answer]) -> dict[str, Any]:
    """Deliveries sent, answered 200, other statuses, and the answer time's percentiles (ms)."""
    times = [a.seconds * 1000 for a in answers]
    others: dict[str, int] = {}
    for a in answers:
        if a.status != 200:
            key = str(a.status) if a.status else f"no answer ({a.error or 'error'})"
            others[key] = others.get(key, 0) + 1
    return {
        "sent": len(answers),
        "redeliveries_sent": sum(a.redelivery for a in answers),
        "answered_200": sum(a.status == 200 for a in answers),
        "other_statuses": others,
        "answer_ms": {
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "p99": percentile(times, 99),
            "max": max(times) if times else None,
        },
    }


def timeline(answers: list[Answer]) -> list[dict[str, Any]]:
    """Per second of the burst (by each delivery's start): deliveries, p50 and max answer ms."""
    seconds: dict[int, list[float]] = {}
    for a in answers:
        seconds.setdefault(int(a.at), []).append(a.seconds * 1000)
    return [
        {"second": s, "sent": len(ms), "p50_ms": percentile(ms, 50), "max_ms": max(ms)}
        for s, ms in sorted(seconds.items())
    ]


def verdict(figures: dict[str, Any]) -> list[str]:
    """What was lost or doubled (empty: nothing). Every delivery must be answered 200,
    every distinct event stored once, every call logged once (one CRM activity each, one
    placeholder per unknown caller), every redelivery ignored."""
    calls, events = figures["calls_expected"], figures["events_expected"]
    problems = []
    answers = figures["deliveries"]
    if answers["answered_200"] != answers["sent"]:
        problems.append(f"{answers['sent'] - answers['answered_200']} deliveries not answered 200")
    if figures["events_stored"] != events:
        problems.append(f"{figures['events_stored']} events stored, expected {events}")
    if figures["events_unprocessed"]:
        problems.append(f"{figures['events_unprocessed']} events stored but never folded")
    if figures["duplicates_ignored"] != answers["redeliveries_sent"]:
        problems.append(
            f"{figures['duplicates_ignored']} duplicates ignored, "
            f"{answers['redeliveries_sent']} redeliveries sent"
        )
    states = figures["call_states"]
    logged = states.get("logged", 0)
    if logged != calls or sum(states.values()) != calls:
        others = {k: v for k, v in states.items() if k != "logged"}
        problems.append(f"{logged} of {calls} calls logged (other states: {others or 'none'})")
    if figures["crm_activities"] != calls:
        problems.append(f"{figures['crm_activities']} CRM activities written, expected {calls}")
    if figures["sessions_logged_twice"]:
        problems.append(f"{figures['sessions_logged_twice']} sessions with more than one CRM activity")
    if figures["placeholders_created"] != figures["placeholders_expected"]:
        problems.append(
            f"{figures['placeholders_created']} placeholder contacts created, "
            f"expected {figures['placeholders_expected']}"
        )
    return problems


def assemble_figures(
    *,
    args: argparse.Namespace,
    answers: list[Answer],
    db: dict[str, Any],
    first_delivery_at: datetime,
    send_seconds: float,
    drained: bool,
    memory: dict[str, dict[str, Any]],
    run_seconds: float | None = None,
) -> dict[str, Any]:
    """The run's figures: the answers', the database's, the drain time, memory; and the
    verdict (`problems`, empty when nothing was lost or doubled)."""
    deliveries = answer_figures(answers)
    # The same without the burst's first second, when each server thread opens its first
    # database connection: the steady state.
    steady = [a.seconds * 1000 for a in answers if a.at >= 1.0]
    deliveries["answer_ms_after_first_second"] = {
        "sent": len(steady),
        "p50": percentile(steady, 50),
        "p99": percentile(steady, 99),
    }
    last = db.get("last_logged_at")
    figures: dict[str, Any] = {
        "settings": {
            "calls": args.calls,
            "redeliveries": args.redeliveries,
            "senders": args.senders,
            "worker_concurrency": args.concurrency,
            "web_workers": args.workers,
            "web_threads": args.threads,
            "first_fetch_delay_s": 1,
            "seed": args.seed,
        },
        "calls_expected": args.calls,
        "events_expected": args.calls * len(STATUSES),
        "placeholders_expected": sum(not is_known(i) for i in range(args.calls)),
        "deliveries": deliveries,
        "send_seconds": send_seconds,
        "drained": drained,
        "drain_seconds": (last - first_delivery_at).total_seconds() if last else None,
        "events_stored": db["events_stored"],
        "events_unprocessed": db["events_unprocessed"],
        # Every 200 either stored an event or acknowledged one already stored.
        "duplicates_ignored": deliveries["answered_200"] - db["events_stored"],
        "call_states": db["call_states"],
        "crm_activities": db["crm_activities"],
        "sessions_logged_twice": db["sessions_logged_twice"],
        "placeholders_created": db["placeholders_created"],
        "call_logs": db["call_logs"],
        "memory": memory,
        "run_seconds": run_seconds,
    }
    figures["problems"] = verdict(figures)
    return figures


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_figures(f: dict[str, Any]) -> str:
    d, a = f["deliveries"], f["deliveries"]["answer_ms"]
    steady = d["answer_ms_after_first_second"]
    states = ", ".join(f"{k} {v}" for k, v in sorted(f["call_states"].items())) or "none"
    mem = f["memory"]
    drain = "-" if f["drain_seconds"] is None else f"{f['drain_seconds']:.1f} s"
    lines = [
        f"deliveries sent: {d['sent']} ({f['events_expected']} distinct + "
        f"{d['redeliveries_sent']} redeliveries)"
        f" by {f['settings']['senders']} senders in {f['send_seconds']:.1f} s",
        f"answered 200: {d['answered_200']}; other statuses: {d['other_statuses'] or 'none'}",
        f"webhook answer time ms: p50 {_ms(a['p50'])}, p95 {_ms(a['p95'])}, "
        f"p99 {_ms(a['p99'])}, max {_ms(a['max'])}",
        f"  after the burst's first second ({steady['sent']} deliveries): "
        f"p50 {_ms(steady['p50'])}, p99 {_ms(steady['p99'])}",
        f"drain time (first delivery -> last call logged): {drain}"
        + ("" if f["drained"] else " (NOT drained before the timeout)"),
        f"calls: {states} (expected {f['calls_expected']} logged)",
        f"CRM activities written: {f['crm_activities']} vs calls expected {f['calls_expected']}; "
        f"sessions with more than one activity: {f['sessions_logged_twice']}",
        f"placeholder contacts created: {f['placeholders_created']} (expected {f['placeholders_expected']})",
        f"events stored: {f['events_stored']} (expected {f['events_expected']}); not folded: "
        f"{f['events_unprocessed']}; duplicates ignored: {f['duplicates_ignored']}",
        "peak resident memory: "
        + "; ".join(
            f"{name} {_ms(m.get('peak_rss_mib'))} MiB RSS ({_ms(m.get('peak_pss_mib'))} MiB PSS, "
            f"{m.get('peak_processes')} processes)"
            for name, m in mem.items()
        ),
    ]
    per_second = d.get("per_second") or []
    if per_second:
        lines.append(
            "answers by second of the burst (sent/p50/max ms): "
            + " ".join(f"{x['second']}:{x['sent']}/{x['p50_ms']:.0f}/{x['max_ms']:.0f}" for x in per_second)
        )
    for phase, cores in (f.get("cpu_cores") or {}).items():
        parts = ", ".join(f"{k} {v:.2f}" for k, v in cores.items() if k not in ("cores", "seconds"))
        lines.append(
            f"CPU cores while {phase} ({cores.get('seconds')} s, {cores.get('cores')} cores): {parts}"
        )
    for phase, waits in (f.get("pg_waits") or {}).items():
        parts = ", ".join(f"{k} {v}" for k, v in waits["active_backends_by_wait"].items()) or "none active"
        lines.append(
            f"PostgreSQL active backends while {phase}, by wait: {parts}; "
            f"peak waiting on a lock: {waits['peak_lock_waiters']}"
        )
        for query, n in waits.get("lock_waits_by_statement", {}).items():
            lines.append(f"  waiting on a lock ({n} on average): {query}")
    control = f.get("control_is_alive")
    if control:
        c = control["answer_ms"]
        lines.append(
            f"control, GET /isAlive x {control['sent']} by the same senders: "
            f"{control['answered_200']} x 200, "
            f"ms p50 {_ms(c['p50'])}, p95 {_ms(c['p95'])}, p99 {_ms(c['p99'])}, max {_ms(c['max'])}"
        )
    if f.get("run_seconds") is not None:
        lines.append(f"whole run (setup to cleanup excluded): {f['run_seconds']:.1f} s")
    lines.append("verdict: " + ("nothing lost or doubled" if not f["problems"] else "; ".join(f["problems"])))
    return "\n".join(lines)


# --- the parts of a run -----------------------------------------------------------------------------


def redis_flush() -> None:
    import redis  # requirements.txt (the broker's client)

    redis.Redis.from_url(BROKER_URL).flushdb()


# Run in `manage.py shell -c`: the CRM user logged in with its key through the connector's
# service, linked to the fake account; the rule; the known callers' contacts. Prints the
# CRM user's id on its last line.
SETUP_CODE = """
import json, os
from connector.models import BuiltinContact, BuiltinContactPhone, CrmUser
from connector.services import crm_user_login_with_api_key
from connector.utils import hash_value
from rules.models import RuleSetting
from rules.services import account_ensure, rules_cache_clear
data = json.loads(os.environ["BENCH_SETUP"])
outcome = crm_user_login_with_api_key(
    platform="builtin", api_key=os.environ["BENCH_API_KEY"], hostname="", additional_info={},
    hashed_rc_extension_id=hash_value(data["extension_id"]), rc_account_id=data["account_id"],
)
account = account_ensure(rc_account_id=data["account_id"])
user = CrmUser.objects.get(pk=outcome.user_id)
assert user.rc_account_id == data["account_id"], user.rc_account_id
RuleSetting.objects.update_or_create(
    account=account, key="unknownContactAction", defaults={"value": "createPlaceholder"}
)
rules_cache_clear()
for name, number in data["contacts"]:
    contact = BuiltinContact.objects.create(name=name)
    BuiltinContactPhone.objects.create(contact=contact, phone_number=number)
print(outcome.user_id)
"""


def our_env(db_url: str, fake_url: str, port: int, fake: Any) -> dict[str, str]:
    """Production's environment (bench/run.py's our_env) plus the broker, the public
    address, the fake RingCentral and a 1 s first fetch."""
    env = bench_run.our_env(
        db_url,
        SimpleNamespace(conn_max_age=600, cache_url="locmemcache://", log_level="INFO"),
        bench_run.random_secrets(),
    )
    env.update(
        {
            "CELERY_BROKER_URL": BROKER_URL,
            "PUBLIC_BASE_URL": f"http://{HOST}:{port}",
            "RINGCENTRAL_SERVER": fake_url,
            "RINGCENTRAL_CLIENT_ID": fake.client_id,
            "RINGCENTRAL_CLIENT_SECRET": fake.client_secret,
            "SSCL_FIRST_FETCH_DELAY_SECONDS": "1",
        }
    )
    return env


def wait_worker_ready(proc: Any, *, timeout: float = 60.0) -> None:
    """Until the Celery worker answers a ping on the broker."""
    from celery import Celery

    probe = Celery("bench-probe", broker=BROKER_URL)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the Celery worker exited with {proc.returncode}")
            if probe.control.ping(timeout=0.5):
                return
            time.sleep(0.2)
    finally:
        probe.close()
    raise RuntimeError(f"the Celery worker did not answer within {timeout:.0f} s")


def build_calls(fake_mod: Any, fake: Any, subscription_id: str, calls: int) -> list[list[dict[str, Any]]]:
    """Each call's four notifications, its record put in the fake's call log first."""
    start = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    events: list[list[dict[str, Any]]] = []
    for i in range(calls):
        tsid, number = f"bench-{i}", caller_number(i)
        inbound = i % 4 != 3  # one call in four outbound
        direction = "Inbound" if inbound else "Outbound"
        call_events = [
            fake_mod.telephony_session_event(
                subscription_id=subscription_id,
                telephony_session_id=tsid,
                session_id=f"{tsid}-rc",
                sequence=n + 1,
                parties=[
                    fake_mod.party(
                        extension_id=fake_mod.ADMIN_EXTENSION_ID,
                        direction=direction,
                        status=status,
                        from_number=number if inbound else OUR_NUMBER,
                        to_number=OUR_NUMBER if inbound else number,
                    )
                ],
            )
            for n, status in enumerate(STATUSES)
        ]
        fake.add_call_record(
            fake_mod.call_record(
                record_id=f"r-bench-{i}",
                telephony_session_id=tsid,
                session_id=f"{tsid}-rc",
                direction=direction,
                from_number=number if inbound else OUR_NUMBER,
                to_number=OUR_NUMBER if inbound else number,
                extension_id=fake_mod.ADMIN_EXTENSION_ID,
                start_time=start,
                duration=30 + i % 60,
            )
        )
        events.append(call_events)
    return events


def delivery_items(
    deliver: Any, address: str, token: str, plan: list[tuple[int, int]], events: list[list[dict[str, Any]]]
) -> list[tuple[Callable[[], Any], bool]]:
    """One sending per planned delivery (`deliver` as RingCentral does), and whether it
    is a redelivery."""
    seen: set[tuple[int, int]] = set()
    items = []
    for call, event in plan:
        body = events[call][event]
        items.append(
            (partial(deliver, address, body, verification_token=token, timeout=30), (call, event) in seen)
        )
        seen.add((call, event))
    return items


def send_all(
    items: list[tuple[Callable[[], Any], bool]], senders: int
) -> tuple[list[Answer], datetime, float]:
    """Send the items with `senders` threads, in order; every answer's status and time."""
    work: queue.Queue[tuple[Callable[[], Any], bool] | None] = queue.Queue()
    for item in items:
        work.put(item)
    for _ in range(senders):
        work.put(None)
    answers: list[Answer] = []
    guard = threading.Lock()

    def sender() -> None:
        mine: list[Answer] = []
        while (item := work.get()) is not None:
            send, again = item
            t0 = time.perf_counter()
            try:
                response = send()
                mine.append(Answer(response.status_code, time.perf_counter() - t0, again, at=t0 - start))
            except Exception as exc:  # requests' errors: counted, not raised
                error = type(exc).__name__
                mine.append(Answer(0, time.perf_counter() - t0, again, error, at=t0 - start))
        with guard:
            answers.extend(mine)

    threads = [threading.Thread(target=sender, name=f"sender-{n}") for n in range(senders)]
    first = datetime.now(UTC)
    t0, start = time.monotonic(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, first, time.monotonic() - t0


class PgWaits:
    """Samples, every `interval` seconds while a phase lasts, what the database's active
    backends wait on (pg_stat_activity's wait_event_type:wait_event; "cpu" when none):
    where the webhook's or the worker's time goes in PostgreSQL, e.g. row locks
    (`Lock:transactionid`) or commits (`IO:WALSync`). Keeps the count of sightings per
    wait and the most backends seen waiting on a lock at once."""

    def __init__(self, db_url: str, db_name: str, *, interval: float = 0.1) -> None:
        self.db_url, self.db_name, self.interval = db_url, db_name, interval
        self.sightings: dict[str, int] = {}
        self.peak_lock_waiters = 0
        self.lock_queries: dict[str, int] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pg-waits", daemon=True)

    def _loop(self) -> None:
        import psycopg

        sql = (
            "SELECT coalesce(wait_event_type || ':' || wait_event, 'cpu'), count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND state = 'active' AND pid <> pg_backend_pid() GROUP BY 1"
        )
        # the statements waiting on a lock (their first words: which table, which change)
        locked = (
            "SELECT left(regexp_replace(query, '\\s+', ' ', 'g'), 70), count(*) FROM pg_stat_activity "
            "WHERE datname = %s AND state = 'active' AND wait_event_type = 'Lock' GROUP BY 1"
        )
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval):
                rows = conn.execute(sql, (self.db_name,)).fetchall()
                self.samples += 1
                locks = 0
                for wait, n in rows:
                    self.sightings[wait] = self.sightings.get(wait, 0) + n
                    locks += n if wait.startswith("Lock:") else 0
                self.peak_lock_waiters = max(self.peak_lock_waiters, locks)
                if locks:
                    for query, n in conn.execute(locked, (self.db_name,)).fetchall():
                        self.lock_queries[query] = self.lock_queries.get(query, 0) + n

    def __enter__(self) -> PgWaits:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, Any]:
        top = sorted(self.sightings.items(), key=lambda kv: -kv[1])[:8]
        return {
            "samples": self.samples,
            "interval_s": self.interval,
            # average active backends per sample, by what they wait on
            "active_backends_by_wait": {k: round(v / max(self.samples, 1), 2) for k, v in top},
            "peak_lock_waiters": self.peak_lock_waiters,
            # average backends per sample waiting on a lock, by statement
            "lock_waits_by_statement": {
                k: round(v / max(self.samples, 1), 2)
                for k, v in sorted(self.lock_queries.items(), key=lambda kv: -kv[1])[:4]
            },
        }


def requests_get(url: str, *, timeout: float) -> Any:
    import requests

    return requests.get(url, timeout=timeout)


def cpu_snapshot(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each process tree, of PostgreSQL, of this process, and of
    the whole machine (busy and total jiffies of /proc/stat, in seconds), with the time."""
    snap = {name: bench_run.tree_cpu_seconds(pid) for name, pid in pids.items()}
    snap["postgres"] = bench_run.postgres_cpu_seconds()
    own = os.times()
    snap["bench (senders, fake RingCentral)"] = own.user + own.system
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:9]]
    parts += [0] * (8 - len(parts))
    snap["_machine_busy"] = (sum(parts) - parts[3] - parts[4] - parts[7]) / bench_run.CLK_TCK
    snap["_machine_total"] = sum(parts) / bench_run.CLK_TCK
    snap["_at"] = time.monotonic()
    return snap


def cpu_cores(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Cores each part kept busy between two snapshots; `other` is the rest of the
    machine (other sessions: noise), out of `cores`."""
    span = after["_at"] - before["_at"]
    if span <= 0:
        return {}
    cores = {k: round((after[k] - before[k]) / span, 2) for k in before if not k.startswith("_")}
    cpus = os.cpu_count() or 1
    total = after["_machine_total"] - before["_machine_total"]
    busy = (after["_machine_busy"] - before["_machine_busy"]) / total * cpus if total > 0 else 0.0
    cores["other"] = round(busy - sum(cores.values()), 2)
    cores["cores"] = cpus
    cores["seconds"] = round(span, 2)
    return cores


def pg_query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def call_states(db_url: str) -> dict[str, int]:
    return dict(pg_query(db_url, "SELECT state, count(*) FROM sscl_callsession GROUP BY state"))


def wait_drained(db_url: str, calls: int, *, timeout: float) -> bool:
    """Until every call is settled (or the timeout): C calls, none still moving."""
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        states = call_states(db_url)
        settled = sum(states.get(s, 0) for s in SETTLED)
        if settled >= calls and sum(states.values()) == settled:
            return True
        if time.monotonic() - last_report > 5:
            print(f"  draining: {states}", flush=True)
            last_report = time.monotonic()
        time.sleep(0.25)
    return False


def database_figures(db_url: str) -> dict[str, Any]:
    def one(sql: str) -> Any:
        return pg_query(db_url, sql)[0][0]

    return {
        "events_stored": one("SELECT count(*) FROM sscl_webhookevent"),
        "events_unprocessed": one("SELECT count(*) FROM sscl_webhookevent WHERE processed_at IS NULL"),
        "call_states": call_states(db_url),
        "last_logged_at": one("SELECT max(updated_at) FROM sscl_callsession WHERE state = 'logged'"),
        "crm_activities": one("SELECT count(*) FROM connector_builtinactivity WHERE kind = 'call'"),
        "sessions_logged_twice": one(
            "SELECT count(*) FROM (SELECT details->>'sessionId' FROM connector_builtinactivity "
            "WHERE kind = 'call' GROUP BY 1 HAVING count(*) > 1) AS doubled"
        ),
        "placeholders_created": one("SELECT count(*) FROM rules_placeholdercontact"),
        "call_logs": dict(pg_query(db_url, "SELECT status, count(*) FROM logs_calllog GROUP BY status")),
    }


def start_ours(
    stack: ExitStack, env: dict[str, str], port: int, args: argparse.Namespace, logdir: Path
) -> Any:
    """Our server, production's command, on `port`."""
    server_env = {
        **env,
        "WEB_BIND": f"{HOST}:{port}",
        "WEB_WORKERS": str(args.workers),
        "WEB_THREADS": str(args.threads),
        # production's pool for its gevent workers on PostgreSQL (our_env pins 0, for the
        # Celery worker and manage.py)
        "DB_POOL_MAX_SIZE": str(bench_run.DEFAULT_DB_POOL),
    }
    proc = bench_run.start_process(
        bench_run.gunicorn_command(bench_run.OUR_APP), env=server_env, log_path=logdir / "gunicorn.log"
    )
    stack.callback(bench_run.stop_process, proc)
    bench_run.wait_http_ok(f"http://{HOST}:{port}/isAlive", timeout=60, proc=proc)
    deadline = time.monotonic() + 30
    while bench_run.count_children(proc.pid) < args.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc


def start_worker(stack: ExitStack, env: dict[str, str], args: argparse.Namespace, logdir: Path) -> Any:
    cmd = [
        str(VENV_BIN / "celery"), "-A", "config", "worker",
        "--pool", "threads", "--concurrency", str(args.concurrency),
    ]  # fmt: skip
    proc = bench_run.start_process(cmd, env=env, log_path=logdir / "celery-worker.log")
    stack.callback(bench_run.stop_process, proc, timeout=20)
    wait_worker_ready(proc)
    return proc


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def problem_lines(path: Path, limit: int = 10) -> list[str]:
    """Warnings, errors and tracebacks a log holds (the first `limit`)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return []
    marks = ("ERROR", "WARNING", "Traceback", "CRITICAL", "Exception")
    return [ln for ln in text if any(m in ln for m in marks)][:limit]


def run(args: argparse.Namespace, logdir: Path) -> dict[str, Any]:
    from tests.crm_fakes import ringcentral as fake_mod
    from tests.crm_fakes.server import serve

    db_url = f"postgres://postgres@{HOST}:{args.pg_port}/{args.pg_name}"
    with ExitStack() as stack:
        redis_flush()
        stack.callback(redis_flush)
        drop = f'DROP DATABASE IF EXISTS "{args.pg_name}" WITH (FORCE)'
        bench_run.pg_admin(drop, port=args.pg_port)
        if not args.keep:
            stack.callback(bench_run.pg_admin, drop, port=args.pg_port)
        bench_run.pg_admin(f'CREATE DATABASE "{args.pg_name}"', port=args.pg_port)

        fake = fake_mod.RingCentralFake()
        fake_url = stack.enter_context(serve(fake.api))
        port = bench_run.free_port()
        env = our_env(db_url, fake_url, port, fake)

        t_setup = time.monotonic()
        bench_run.manage(env, "migrate", "--noinput", "-v0")
        api_key = bench_run.manage(env, "builtin_apikey", "bench").strip().splitlines()[-1].strip()
        contacts = [(f"Known caller {i}", caller_number(i)) for i in range(args.calls) if is_known(i)]
        setup = {
            "account_id": fake_mod.ACCOUNT_ID,
            "extension_id": fake_mod.ADMIN_EXTENSION_ID,
            "contacts": contacts,
        }
        setup_env = {**env, "BENCH_SETUP": json.dumps(setup), "BENCH_API_KEY": api_key}
        crm_user_id = bench_run.manage(setup_env, "shell", "-c", SETUP_CODE).strip().splitlines()[-1]
        connect_env = {**env, "RINGCENTRAL_JWT": fake_mod.ADMIN_JWT}
        account_id = bench_run.manage(connect_env, "ringcentral_connect").strip().splitlines()[-1]
        if account_id != fake_mod.ACCOUNT_ID:
            raise RuntimeError(f"ringcentral_connect connected {account_id!r}")

        server = start_ours(stack, env, port, args, logdir)
        worker = start_worker(stack, env, args, logdir)
        out = bench_run.manage(env, "sscl_enable", "--account", account_id, "--crm-user", crm_user_id)
        print(f"  {out.strip()}", flush=True)
        with fake.lock:
            subscriptions = list(fake.subscriptions.items())
        if len(subscriptions) != 1:
            raise RuntimeError(f"expected one subscription at the fake, found {len(subscriptions)}")
        subscription_id, subscription = subscriptions[0]
        address = subscription["deliveryMode"]["address"]
        with fake.lock:
            token = fake.verification_tokens[subscription_id]
        print(f"  setup took {time.monotonic() - t_setup:.1f} s; delivering to {address}", flush=True)

        events = build_calls(fake_mod, fake, subscription_id, args.calls)
        plan = delivery_plan(args.calls, args.redeliveries, seed=args.seed)
        sampler_ours = bench_run.ServerSampler(server.pid, db_name=args.pg_name)
        sampler_worker = bench_run.ServerSampler(worker.pid, db_name=None)
        items = delivery_items(fake_mod.deliver, address, token, plan, events)
        pids = {"server": server.pid, "worker": worker.pid}
        print(
            f"  machine busy before the burst: {bench_run.wait_quiet(args.quiet_wait):.2f} cores", flush=True
        )
        t_run = time.monotonic()
        with sampler_ours, sampler_worker:
            c0 = cpu_snapshot(pids)
            with PgWaits(db_url, args.pg_name) as send_waits:
                answers, first_at, send_seconds = send_all(items, args.senders)
            c1 = cpu_snapshot(pids)
            print(
                f"  {len(answers)} deliveries sent in {send_seconds:.1f} s; waiting for the worker",
                flush=True,
            )
            with PgWaits(db_url, args.pg_name) as drain_waits:
                drained = wait_drained(db_url, args.calls, timeout=args.drain_timeout)
            c2 = cpu_snapshot(pids)
        run_seconds = time.monotonic() - t_run
        time.sleep(1.0)  # anything queued twice would run now: counted below
        figures = assemble_figures(
            args=args,
            answers=answers,
            db=database_figures(db_url),
            first_delivery_at=first_at,
            send_seconds=send_seconds,
            drained=drained,
            memory={
                "server (gunicorn)": {**sampler_ours.result(), "pid": server.pid},
                "worker (celery)": {**sampler_worker.result(), "pid": worker.pid},
            },
            run_seconds=run_seconds,
        )
        figures["deliveries"]["per_second"] = timeline(answers)
        figures["cpu_cores"] = {"sending": cpu_cores(c0, c1), "draining": cpu_cores(c1, c2)}
        figures["pg_waits"] = {"sending": send_waits.result(), "draining": drain_waits.result()}
        # The same senders asking GET /isAlive as many times: what the stack and this
        # machine cost an answer with no work behind it, to read the webhook's times against.
        alive = f"http://{HOST}:{port}/isAlive"
        control, _, control_seconds = send_all(
            [(partial(requests_get, alive, timeout=30), False)] * len(items), args.senders
        )
        figures["control_is_alive"] = {**answer_figures(control), "seconds": control_seconds}
        figures["rc_fake_requests"] = _fake_request_counts(fake)
        figures["log_problems"] = {
            "gunicorn": problem_lines(logdir / "gunicorn.log"),
            "celery": problem_lines(logdir / "celery-worker.log"),
        }
        return figures


def _fake_request_counts(fake: Any) -> dict[str, int]:
    """The requests the fake RingCentral served, by method and path (call-log reads show
    how many fetches the calls took)."""
    counts: dict[str, int] = {}
    for request in fake.api.requests():
        key = f"{request.method} {request.path}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    conf_workers, conf_threads = bench_run.gunicorn_conf_defaults()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=250, help="calls C, 4 events each [250]")
    ap.add_argument("--redeliveries", type=int, default=100, help="redeliveries D (same uuid) [100]")
    ap.add_argument("--senders", type=int, default=32, help="concurrent senders K [32]")
    ap.add_argument("--concurrency", type=int, default=16, help="Celery worker threads N [16]")
    ap.add_argument("--workers", type=int, default=conf_workers, help=f"WEB_WORKERS [{conf_workers}]")
    ap.add_argument("--threads", type=int, default=conf_threads, help=f"WEB_THREADS [{conf_threads}]")
    ap.add_argument("--drain-timeout", type=float, default=300.0, help="seconds to wait for the worker [300]")
    ap.add_argument("--seed", type=int, default=15, help="order of the deliveries [15]")
    ap.add_argument("--pg-port", type=int, default=5432, help="local PostgreSQL port [5432]")
    ap.add_argument("--pg-name", default="bench_sscl", help="the run's database, dropped after [bench_sscl]")
    ap.add_argument(
        "--json-out", type=Path, default=DEFAULT_JSON, help=f"figures [{DEFAULT_JSON.relative_to(ROOT)}]"
    )
    ap.add_argument(
        "--quiet-wait", type=float, default=20.0, help="wait up to this long for an idle machine first [20]"
    )
    ap.add_argument("--keep", action="store_true", help="keep the database and the logs")
    args = ap.parse_args(argv)
    if min(args.calls, args.senders, args.concurrency, args.workers, args.threads) < 1:
        ap.error("--calls, --senders, --concurrency, --workers and --threads must be >= 1")
    if not 0 <= args.redeliveries <= 4 * args.calls:
        ap.error("--redeliveries must be within 0 .. 4 x --calls")
    if not args.pg_name.startswith("bench_sscl"):
        ap.error("--pg-name must start with bench_sscl")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench_run.install_signal_handlers()
    logdir = Path(tempfile.mkdtemp(prefix="sscl-burst-"))
    started = time.monotonic()
    print(
        f"burst: {args.calls} calls x 4 events + {args.redeliveries} redeliveries, {args.senders} senders; "
        f"gunicorn {args.workers} workers x {args.threads} threads; celery --pool threads "
        f"--concurrency {args.concurrency}; PostgreSQL {args.pg_name}",
        flush=True,
    )
    ok = False
    try:
        figures = run(args, logdir)
        ok = True
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    except Exception:
        for name in ("gunicorn.log", "celery-worker.log"):
            print(f"--- {name} (last lines)\n{log_tail(logdir / name)}", file=sys.stderr)
        raise
    finally:
        if args.keep or not ok:
            print(f"logs kept in {logdir}", file=sys.stderr)
        else:
            shutil.rmtree(logdir, ignore_errors=True)
    figures["wall_seconds_with_setup_and_cleanup"] = time.monotonic() - started
    figures["finished_utc"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    figures["machine"] = bench_run.machine_info()
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print()
    print(format_figures(figures))
    print(f"whole script, setup and cleanup included: {figures['wall_seconds_with_setup_and_cleanup']:.1f} s")
    for name, lines in figures["log_problems"].items():
        for line in lines:
            print(f"  {name} log | {line}")
    print(f"figures saved to {args.json_out}")
    return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
