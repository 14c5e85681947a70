#!/usr/bin/env python3
"""Side-by-side benchmark: our server against App Connect's Node.js server (the peer).

Measures the unknown-caller flow (GET /contact -> POST /contact -> POST /callLog, a new
number and session per flow) on each database engine, with the same load client
(../shared/peer/load.py) and the same settings for both servers, and prints one table
with our/peer ratios. Only ratios measured in one run on one machine mean anything
(../shared/perf.md), so the peer is always measured in the same run.

A real CRM answers in 100-500 ms, and that wait decides throughput (../shared/perf.md).
With --crm-delay-ms N every CRM call waits N ms first, on both sides: the peer runs with
PEER_CRM_DELAY_MS=N, ours with the in-memory CRM of bench/slow_crm.py (BENCH_CRM_DELAY_MS=N,
registered through CRM_PLATFORMS_EXTRA). Each flow makes 3 CRM calls, one per route, on
both servers (ours: findContact in connector/services.py's contact_find, createContact in
contact_create, createCallLog in logs/services.py's _call_log_process, where a request that
names its contactId skips the lookup; the peer's @app-connect/core handlers do the same),
so at concurrency c the CRM alone allows at most c / (3 x N ms) flows/s: the CRM floor,
printed with every run together with ours/floor.

For each engine (PostgreSQL, SQLite) the script:
  1. builds a template database for our server (PostgreSQL: `appconnect_bench_template`
     on 127.0.0.1:5432 as role `postgres`; SQLite: a file in a temporary folder), runs
     `manage.py migrate` on it and creates a built-in CRM user and API key
     (`manage.py builtin_apikey bench`);
  2. for every concurrency (-c) and server, in alternating order, on fresh data:
     - ours: copies the template to `appconnect_bench` (or a fresh SQLite file) and starts
       our server with exactly production's command,
           gunicorn -c config/gunicorn.conf.py config.wsgi:application
       (gevent workers on PostgreSQL, gthread on SQLite, no access log, no control
       socket), its settings given as production gives them, through the environment:
       WEB_BIND (a free loopback port), WEB_WORKERS (--workers), WEB_THREADS (--threads,
       gthread), DB_POOL_MAX_SIZE (--db-pool, PostgreSQL), DEBUG off, random secrets,
       ALLOWED_HOSTS=127.0.0.1, CONN_MAX_AGE=600 (without a pool); PYTHONPATH=bench only
       to find the benchmark's CRM connectors;
     - the peer: `PEER_DB=<engine> PEER_FRESH_DB=1 [PEER_CRM_DELAY_MS=N]
       ../shared/peer/start.sh <port>` (the first run installs it with `npm ci`, about
       2.5 minutes, cached in PEER_HOME);
     then runs load.py (-c, -d, -w, --seed 39) against it and measures, over the loaded
     window, the CPU of the server's whole process tree (gunicorn master plus live
     workers: load.py's own figure only sees the master and reaped children), of
     PostgreSQL and of load.py, and samples with psutil (every 0.5 s, whole run) the
     resident memory of all the server's processes (gunicorn master + workers; node)
     and the connections open to its database, keeping the peaks; then it stops it and
     keeps the server log's lines written during the run. Fresh data per run is
     required: load.py's numbers depend only on --seed, so a second run on the same data
     would find the first run's contacts;
  3. drops its databases; everything it started is stopped also on Ctrl-C or error.

Our server's CRM (--crm): `memory` (row `ours-mem`), the in-memory CRM of
bench/memory_crm.py (bench/slow_crm.py with a delay), the counterpart of the peer's
in-memory `peercrm`, so that both servers do only their own work; `builtin` (row `ours`),
the built-in CRM, whose contacts and activities are written to our database; `both`.
The default is `memory` with a delay (the built-in CRM cannot wait), `both` without.

With --reference, another server runs beside them on the same engine: the minimal Django
of bench/minimal (PyJWT in the view, one ORM statement per step, no middleware, no DRF,
nothing of the product), served by the same gunicorn settings (config/gunicorn.conf.py:
the same worker class, workers, threads and pool) and waiting the same CRM delay once per
step. Its ratio to the peer is the ceiling of the stack on this machine today, measured
rather than remembered (../shared/perf.md). --reference-env runs it once per value of one
environment variable: BENCH_EXTRA_WORK (bench/minimal/wsgi.py) adds CPU and round trips
to each step, to see what our server's own work per request costs on the same stack.

The machines are shared and noisy. Before each run the script waits (--quiet-wait) for
the machine to be idle; both servers and load.py run with a raised priority (--nice,
process and autogroup nice; PostgreSQL is left alone); the `other` column shows the CPU
used by everything else during the run; --passes N repeats every run and reports medians.

The bar (issue 12, "keep hundreds of CRM calls in flight"), on PostgreSQL, same run,
zero errors:
  (a) CRM 100 ms, c=32: ours >= 0.85 x the CRM floor (>= 91 flows/s) and >= 1.3 x the
      peer; our p50 per route within 30 ms of the CRM's own time for that route (one
      call of 100 ms per route);
  (b) CRM 100 ms, c=256: ours >= 1.0 x the peer; the memory of all our server processes
      reported (goal: under 1 GiB);
  (c) CRM 0 ms (in-memory), c=8 and c=32: ours >= 1.0 x the peer.
On SQLite, at c=32: zero errors. The table flags the clause judged on each of our rows
(with another delay, (a) and (b) are judged against that delay's floor and CRM time);
the verdict that counts is PostgreSQL's at 100 ms and 0 ms.

Figures are saved as JSON (default bench/results/<UTC timestamp>.json, git-ignored):
every run with load.py's full output plus the CPU and memory figures, the server's
command and environment settings, machine and git commit.

Usage (from the project root):
    .venv/bin/python bench/run.py --db postgres --crm-delay-ms 100 -c 32,256 -d 15   # bar (a), (b)
    .venv/bin/python bench/run.py --db postgres --crm memory -c 8,32                 # bar (c)
    .venv/bin/python bench/run.py --db sqlite --crm-delay-ms 100 -c 32 -d 15
    .venv/bin/python bench/run.py --db postgres --crm-delay-ms 100 -c 256 \\
        --sweep-threads 64,128 --sweep-workers 2,3 --sweep-pool 8,16   # choose the settings
    .venv/bin/python bench/run.py --db postgres -c 8,32 --reference     # + the stack's ceiling
    .venv/bin/python bench/run.py --db postgres --crm-delay-ms 100 -c 256 --passes 2 \\
        --sweep-env CONN_HEALTH_CHECKS=true,false   # A/B one environment variable in one run
    .venv/bin/python bench/run.py --db postgres --crm-delay-ms 100 -c 32 --reference \\
        --reference-env BENCH_EXTRA_WORK=none,cpu:0.8/1.6/1.6+sql:0/2/0   # the minimal + our work

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import runpy
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # requirements-dev.txt

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PEER_DIR = (ROOT.parent / "shared" / "peer").resolve()
LOAD_PY = PEER_DIR / "load.py"
BENCH_DIR = ROOT / "bench"
MINIMAL_DIR = BENCH_DIR / "minimal"
RESULTS_DIR = BENCH_DIR / "results"
# Production's command is `gunicorn -c config/gunicorn.conf.py config.wsgi:application`.
GUNICORN_CONF = "config/gunicorn.conf.py"  # relative to ROOT, the servers' working folder
OUR_APP = "config.wsgi:application"
MINIMAL_APP = "minimal.wsgi:application"

HOST = "127.0.0.1"
ROUTES = ("GET /contact", "POST /contact", "POST /callLog")
# CRM calls of the unknown-caller flow, on both servers: findContact, createContact,
# createCallLog (the request names its contactId, so no lookup before the log).
CRM_CALLS_PER_ROUTE = {"GET /contact": 1, "POST /contact": 1, "POST /callLog": 1}
CRM_CALLS_PER_FLOW = sum(CRM_CALLS_PER_ROUTE.values())
PEER_PLATFORM, PEER_API_KEY = "peercrm", "demo-api-key-1"
OUR_PLATFORM = "builtin"
MEMORY_PLATFORM = "memory"  # bench/memory_crm.py (or slow_crm.py), like the peer's peercrm
MEMORY_CRM = "memory_crm.MemoryCrmClient"
SLOW_CRM = "slow_crm.SlowMemoryCrmClient"
# psycopg pool per worker process on PostgreSQL: production's default there
# (DB_POOL_MAX_SIZE in config/settings.py, for its gevent workers). A request holds a
# connection only for its SQL: it gives it back before every CRM call (connector/db.py).
# 0 (gthread workers only, WEB_WORKER_CLASS=gthread): one persistent connection per thread.
DEFAULT_DB_POOL = 40
MIB = 1024 * 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def gunicorn_conf(env: dict[str, str]) -> dict[str, Any]:
    """config/gunicorn.conf.py's values with `env` as the environment, read from the file
    itself, as a server started with `env` would read them. The file also reads `.env` and
    exports its worker class: our own environment is put back as it was."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return runpy.run_path(str(ROOT / GUNICORN_CONF))
    finally:
        os.environ.clear()
        os.environ.update(saved)


def gunicorn_conf_defaults() -> tuple[int, int]:
    """(workers, threads) of config/gunicorn.conf.py when WEB_WORKERS and WEB_THREADS are
    unset: production's defaults."""
    conf = gunicorn_conf({k: v for k, v in os.environ.items() if k not in ("WEB_WORKERS", "WEB_THREADS")})
    return int(conf["workers"]), int(conf["threads"])


def crm_floor(concurrency: int, delay_ms: float) -> float | None:
    """Flows/s the CRM alone allows: each of `concurrency` clients waits delay_ms per CRM
    call, CRM_CALLS_PER_FLOW calls per flow, one after another. None without a delay."""
    if delay_ms <= 0:
        return None
    return concurrency / (CRM_CALLS_PER_FLOW * delay_ms / 1000)


# --- processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def niceness(nice: int) -> Callable[[], None] | None:
    """A preexec_fn that changes the child's priority by `nice` (inherited by its children).

    The child runs in a new session, hence (Linux with sched_autogroup) in a new autogroup,
    and the scheduler shares the CPU between autogroups first: a process nice value only
    counts inside its group. So the group's nice is set too (/proc/self/autogroup).
    """
    if not nice:
        return None

    def preexec() -> None:
        os.nice(nice)
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(nice))
        except OSError:
            pass  # no autogroups (or not allowed): the process nice value still applies

    return preexec


def start_process(
    cmd: list[str], *, env: dict[str, str], log_path: Path, nice: int = 0, cwd: Path = ROOT
) -> subprocess.Popen:
    """Start `cmd` in its own process group (so it and its children can be stopped together)."""
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=niceness(nice),
        )
    finally:
        log.close()


def stop_process(proc: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def flags(options: dict[str, Any]) -> list[str]:
    """{"--opt": value} -> ["--opt", "value", ...]"""
    return [str(x) for pair in options.items() for x in pair]


def wait_http_ok(url: str, *, timeout: float, proc: subprocess.Popen | None = None) -> None:
    """Poll `url` (loopback only) until it answers 200; fail early if `proc` exits."""
    assert url.startswith(f"http://{HOST}:"), url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def base_env() -> dict[str, str]:
    """The few variables every child needs; nothing else leaks in from our environment."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "LOGNAME")
    return {k: os.environ[k] for k in keep if k in os.environ}


# --- CPU accounting from /proc ------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    return [comm, *text.rsplit(")", 1)[1].split()]  # [comm, state(3), ppid(4), ...]


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return kids
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user+system, all threads) of `pid` and all its live descendants, plus
    what the root has reaped from exited children (cutime+cstime)."""
    total, stack, root = 0.0, [pid], True
    while stack:
        p = stack.pop()
        f = _stat_fields(p)
        if f is None:
            continue
        # 1-based stat fields: utime 14, stime 15, cutime 16, cstime 17 -> f[12], f[13], f[14], f[15]
        ticks = int(f[12]) + int(f[13]) + ((int(f[14]) + int(f[15])) if root else 0)
        total += ticks / CLK_TCK
        root = False
        stack.extend(_children(p))
    return total


def postgres_cpu_seconds() -> float:
    """CPU seconds of every `postgres` process (the postmaster also counts its reaped backends)."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        f = _stat_fields(int(name))
        if f is None or f[0] != "postgres":
            continue
        ticks = int(f[12]) + int(f[13])
        parent = _stat_fields(int(f[2]))
        if parent is None or parent[0] != "postgres":  # the postmaster
            ticks += int(f[14]) + int(f[15])
        total += ticks / CLK_TCK
    return total


def machine_busy_cores(seconds: float = 1.0) -> float:
    """Cores the whole machine keeps busy over `seconds` (from /proc/stat; idle, iowait and
    steal excluded), to see whether something else is running before a run starts."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            parts = [int(x) for x in f.readline().split()[1:9]]
        parts += [0] * (8 - len(parts))
        return sum(parts) - parts[3] - parts[4] - parts[7], sum(parts)

    b0, t0 = sample()
    time.sleep(seconds)
    b1, t1 = sample()
    return (b1 - b0) / (t1 - t0) * (os.cpu_count() or 1) if t1 > t0 else 0.0


def wait_quiet(limit_s: float, *, threshold: float = 0.3) -> float:
    """Wait (at most `limit_s`) until the machine is nearly idle; return the last busy figure.

    These machines are shared: another session's test run can take a whole core, which
    would fall on whichever server happens to be measured. The figure goes into the JSON.
    """
    deadline = time.monotonic() + limit_s
    busy = machine_busy_cores(0.5)
    while busy > threshold and time.monotonic() < deadline:
        busy = machine_busy_cores(1.0)
    return busy


def count_children(pid: int) -> int:
    return len(_children(pid))


# --- memory and database connections, sampled with psutil -----------------------------------


def server_processes(pid: int) -> list[psutil.Process]:
    """The server's processes: `pid` (gunicorn master; node) and all its descendants."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def process_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each process of the server's tree, by pid."""
    cpu: dict[int, float] = {}
    for proc in server_processes(pid):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        cpu[proc.pid] = times.user + times.system
    return cpu


def db_backends(db_name: str) -> int:
    """PostgreSQL backends connected to `db_name` (their process titles name the database:
    `postgres: <cluster>: <user> <db> <host(port)> <state>`)."""
    count = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and cmdline and db_name in cmdline[0].split():
            count += 1
    return count


class ServerSampler:
    """Samples a server every `interval` seconds in a thread while a run lasts: the
    resident memory (RSS, and PSS, which counts pages shared by the forked workers once)
    summed over all its processes, its threads, and the PostgreSQL connections open to
    its database. Keeps the peaks."""

    def __init__(self, pid: int, *, db_name: str | None, interval: float = 0.5) -> None:
        self.pid, self.db_name, self.interval = pid, db_name, interval
        self.peak: dict[str, float] = {"rss": 0.0, "pss": 0.0, "processes": 0, "threads": 0, "db_conns": 0}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="server-sampler", daemon=True)

    def _sample(self) -> None:
        rss = pss = threads = 0
        procs = server_processes(self.pid)
        for proc in procs:
            try:
                mem = proc.memory_full_info()  # /proc/<pid>/smaps_rollup: rss and pss
                threads += proc.num_threads()
            except psutil.Error:
                continue
            rss += mem.rss
            pss += getattr(mem, "pss", 0)
        now = {"rss": rss / MIB, "pss": pss / MIB, "processes": len(procs), "threads": threads}
        if self.db_name:
            now["db_conns"] = db_backends(self.db_name)
        for key, value in now.items():
            self.peak[key] = max(self.peak[key], value)
        self.samples += 1

    def _loop(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> ServerSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def result(self) -> dict[str, Any]:
        return {
            "peak_rss_mib": self.peak["rss"] if self.samples else None,
            "peak_pss_mib": self.peak["pss"] if self.samples else None,
            "peak_processes": self.peak["processes"],
            "peak_threads": self.peak["threads"],
            "peak_db_connections": self.peak["db_conns"] if self.db_name else None,
            "samples": self.samples,
            "interval_s": self.interval,
        }


# --- databases ---------------------------------------------------------------------------


def pg_admin(sql: str, *, port: int) -> None:
    """Run one statement as role `postgres` (trust auth) on 127.0.0.1, in autocommit."""
    import psycopg  # installed in .venv (the app's driver)

    with psycopg.connect(host=HOST, port=port, user="postgres", dbname="postgres", autocommit=True) as conn:
        conn.execute(sql)


@dataclass
class OurDatabase:
    """Our server's database: migrated once into a template (with the `bench` user and its
    API key), then copied fresh before every run, so each run starts from the same state.

    Fresh per run matters: load.py's numbers depend only on --seed, so a second run on the
    same data would find the first run's contacts and count them as errors.
    """

    engine: str
    workdir: Path
    pg_port: int
    pg_name: str

    def _url(self, name: str) -> str:
        if self.engine == "postgres":
            return f"postgres://postgres@{HOST}:{self.pg_port}/{name}"
        return f"sqlite:///{self.workdir / (name + '.sqlite3')}"

    @property
    def template_url(self) -> str:
        return self._url(f"{self.pg_name}_template")

    @property
    def url(self) -> str:
        return self._url(self.pg_name)

    def create_template(self) -> None:
        """An empty template database (dropped first if left over)."""
        self.drop()
        if self.engine == "postgres":
            pg_admin(f'CREATE DATABASE "{self.pg_name}_template"', port=self.pg_port)

    def fresh_copy(self) -> None:
        """Replace the run database with a copy of the template."""
        if self.engine == "postgres":
            pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)', port=self.pg_port)
            pg_admin(
                f'CREATE DATABASE "{self.pg_name}" TEMPLATE "{self.pg_name}_template"', port=self.pg_port
            )
            return
        target = self.workdir / f"{self.pg_name}.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        src = sqlite3.connect(self.workdir / f"{self.pg_name}_template.sqlite3")
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            src.close()
            dst.close()

    def drop(self) -> None:
        """Drop the run and template databases (SQLite: the work folder goes with them)."""
        if self.engine == "postgres":
            for name in (self.pg_name, f"{self.pg_name}_template"):
                pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port=self.pg_port)


# --- the servers -------------------------------------------------------------------------


@dataclass
class Target:
    """One server under load: its label, URL, credentials, the pid whose tree is measured,
    its log file and the PostgreSQL database it uses (for counting its connections)."""

    label: str
    kind: str  # "ours", "peer" or "minimal"
    port: int
    pid: int
    platform: str
    api_key: str
    log_path: Path | None = None
    db_name: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def our_env(database_url: str, args: argparse.Namespace, secrets_: dict[str, str]) -> dict[str, str]:
    """Production-like environment for manage.py and gunicorn."""
    env = base_env()
    env.update(secrets_)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "DATABASE_URL": database_url,
            "ALLOWED_HOSTS": HOST,
            "CONN_MAX_AGE": str(args.conn_max_age),
            "CACHE_URL": args.cache_url,
            "LOG_LEVEL": args.log_level,
            # Pinned so that a developer's .env (read by settings) cannot change the run.
            "CELERY_BROKER_URL": "",
            "DEFAULT_PHONE_REGION": "US",
            "DB_POOL_MAX_SIZE": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def random_secrets() -> dict[str, str]:
    return {
        "SECRET_KEY": secrets.token_urlsafe(48),
        "APP_SERVER_SECRET_KEY": secrets.token_urlsafe(48),
        "HASH_KEY": secrets.token_hex(32),
    }


def manage(env: dict[str, str], *argv: str) -> str:
    """Run `manage.py argv...` with our python; return stdout, raise with output on failure."""
    cmd = [str(VENV_BIN / "python"), "manage.py", *argv]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done.stdout


def prepare_our_database(env: dict[str, str]) -> str:
    """Migrate, create the built-in CRM user `bench` and return a fresh API key for it."""
    manage(env, "migrate", "--noinput", "-v0")
    out = manage(env, "builtin_apikey", "bench").strip().splitlines()
    if not out:
        raise RuntimeError("builtin_apikey printed nothing")
    return out[-1].strip()


def memory_crm_env(delay_ms: float) -> dict[str, str]:
    """The environment that registers the benchmark's in-memory CRM as platform `memory`:
    bench/slow_crm.py waiting `delay_ms` before every call, or bench/memory_crm.py."""
    if delay_ms > 0:
        return {
            "CRM_PLATFORMS_EXTRA": f"{MEMORY_PLATFORM}={SLOW_CRM}",
            "BENCH_CRM_DELAY_MS": f"{delay_ms:g}",
        }
    return {"CRM_PLATFORMS_EXTRA": f"{MEMORY_PLATFORM}={MEMORY_CRM}"}


def start_ours(
    stack: ExitStack, spec: Spec, *, env: dict[str, str], args: argparse.Namespace, api_key: str, logdir: Path
) -> Target:
    """Start our server with production's command on a free port; register its stop on `stack`.

    With `spec.crm == "memory"` the server also has the benchmark's in-memory connector
    (platform `memory`; with a delay, bench/slow_crm.py), and the load logs in to that
    platform instead of the built-in CRM.
    """
    platform, env = OUR_PLATFORM, {**env, "DB_POOL_MAX_SIZE": str(spec.pool)}
    if spec.crm == "memory":
        env.update(memory_crm_env(args.crm_delay_ms))
        platform, api_key = MEMORY_PLATFORM, "bench-memory-key"
    port, proc, info, log_path = start_gunicorn(
        stack, OUR_APP, spec, env=env, args=args, log_name=f"ours-{spec.crm}", logdir=logdir
    )
    return Target(
        label="ours",
        kind="ours",
        port=port,
        pid=proc.pid,
        platform=platform,
        api_key=api_key,
        log_path=log_path,
        db_name=args.pg_name if env["DATABASE_URL"].startswith("postgres") else None,
        info={**info, "crm": spec.crm, "crm_delay_ms": args.crm_delay_ms if spec.crm == "memory" else 0},
    )


def gunicorn_command(app: str) -> list[str]:
    """Production's command (README, config/gunicorn.conf.py), for `app`; its settings
    come from the environment."""
    return [str(VENV_BIN / "gunicorn"), "-c", GUNICORN_CONF, app]


def start_gunicorn(
    stack: ExitStack,
    app: str,
    spec: Spec,
    *,
    env: dict[str, str],
    args: argparse.Namespace,
    log_name: str,
    logdir: Path,
) -> tuple[int, subprocess.Popen, dict[str, Any], Path]:
    """Serve the WSGI `app` with production's gunicorn command and settings file, its
    bind, workers and threads given as production gives them (WEB_BIND, WEB_WORKERS,
    WEB_THREADS); register its stop on `stack`; return once it answers and all its
    workers are up. The settings file sends gunicorn's error log to stderr (our log
    file), writes no access log and opens no control socket."""
    port = free_port()
    # --server-env, then this run's --sweep-env value
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    if spec.env:
        extra_env[spec.env[0]] = spec.env[1]
    server_env = {
        **env,
        "WEB_BIND": f"{HOST}:{port}",
        "WEB_WORKERS": str(spec.workers),
        "WEB_THREADS": str(spec.threads),
        # Where the benchmark's CRM connectors and the minimal reference live.
        "PYTHONPATH": str(BENCH_DIR),
        **extra_env,
    }
    cmd = gunicorn_command(app)
    log_path = logdir / f"{log_name}-{port}.log"
    proc = start_process(cmd, env=server_env, log_path=log_path, nice=args.nice)
    stack.callback(stop_process, proc)
    wait_http_ok(f"http://{HOST}:{port}/isAlive", timeout=60, proc=proc)
    deadline = time.monotonic() + 30
    while count_children(proc.pid) < spec.workers and time.monotonic() < deadline:
        time.sleep(0.1)
    settings = {
        k: server_env[k] for k in ("WEB_WORKERS", "WEB_THREADS", "DB_POOL_MAX_SIZE") if k in server_env
    }
    settings.update(extra_env)
    info = {
        "workers": spec.workers,
        "threads": spec.threads,
        "db_pool": spec.pool,
        # config/gunicorn.conf.py's choice (gevent on PostgreSQL, gthread on SQLite)
        "worker_class": gunicorn_conf(server_env)["worker_class"],
        "cmd": [Path(cmd[0]).name, *cmd[1:]],
        "env": settings,
    }
    return port, proc, info, log_path


def start_peer(stack: ExitStack, *, engine: str, args: argparse.Namespace, logdir: Path) -> Target:
    """Start the Node.js peer on a fresh database of `engine`; register its stop on `stack`."""
    port = free_port()
    env = base_env()
    env.update(
        {
            "PEER_DB": engine,
            "PEER_FRESH_DB": "1",
            "PEER_HOME": str(args.peer_home),
            "PGPORT": str(args.pg_port),
        }
    )
    if args.crm_delay_ms > 0:
        env["PEER_CRM_DELAY_MS"] = f"{args.crm_delay_ms:g}"
    start_sh = str(PEER_DIR / "start.sh")
    log_path = args.peer_home / "logs" / f"peer-{port}.log"

    def stop() -> None:
        subprocess.run([start_sh, "stop", str(port)], env=env, capture_output=True, timeout=60)
        if not args.keep:
            log_path.unlink(missing_ok=True)
        if engine == "sqlite" and not args.keep:
            (args.peer_home / "data" / f"peer-{port}.sqlite").unlink(missing_ok=True)
        if engine == "postgres" and not args.keep:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "appconnect_peer_{port}" WITH (FORCE)', port=args.pg_port)
            except Exception as exc:  # cleanup must not hide the real error
                print(f"warning: could not drop the peer database: {exc}", file=sys.stderr)

    stack.callback(stop)
    start_log = logdir / f"peer-start-{port}.log"
    if not (args.peer_home / "node_modules" / "@app-connect" / "core").exists():
        print("  installing the peer (npm ci, first run only: ~2.5 min) ...", flush=True)
    with open(start_log, "wb") as log:
        done = subprocess.run(
            [start_sh, str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=1200,
            start_new_session=True,
            preexec_fn=niceness(args.nice),
        )
    if done.returncode != 0:
        raise RuntimeError(f"peer failed to start; see {start_log}:\n{start_log.read_text()[-2000:]}")
    pid = int((args.peer_home / "run" / f"peer-{port}.pid").read_text().strip())
    wait_http_ok(f"http://{HOST}:{port}/isAlive", timeout=30)
    return Target(
        label="peer",
        kind="peer",
        port=port,
        pid=pid,
        platform=PEER_PLATFORM,
        api_key=PEER_API_KEY,
        log_path=log_path,
        db_name=f"appconnect_peer_{port}" if engine == "postgres" else None,
        info={"crm_delay_ms": args.crm_delay_ms, "cmd": ["node", "app.js"]},
    )


def start_minimal(
    stack: ExitStack, spec: Spec, *, engine: str, db: OurDatabase, args: argparse.Namespace, logdir: Path
) -> Target:
    """Start the minimal reference (bench/minimal) on a fresh database of `engine`, with
    production's gunicorn settings file and our workers, threads, pool and CRM delay;
    register its stop on `stack`."""
    name = f"{args.pg_name}_minimal"
    if engine == "postgres":
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port=args.pg_port)
        pg_admin(f'CREATE DATABASE "{name}"', port=args.pg_port)
        if not args.keep:
            stack.callback(pg_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port=args.pg_port)
        url = f"postgres://postgres@{HOST}:{args.pg_port}/{name}"
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db.workdir / name}.sqlite3{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{db.workdir / name}.sqlite3"
    env = {
        **base_env(),
        "DATABASE_URL": url,
        "APP_SERVER_SECRET_KEY": secrets.token_urlsafe(48),
        "DB_POOL_MAX_SIZE": str(spec.pool),
        "BENCH_CRM_DELAY_MS": f"{args.crm_delay_ms:g}",
        "PYTHONUNBUFFERED": "1",
    }
    done = subprocess.run(
        [str(VENV_BIN / "python"), str(MINIMAL_DIR / "wsgi.py"), "migrate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"minimal reference: migrate failed:\n{done.stdout}\n{done.stderr}")
    port, proc, info, log_path = start_gunicorn(
        stack, MINIMAL_APP, spec, env=env, args=args, log_name="minimal", logdir=logdir
    )
    return Target(
        label="minimal",
        kind="minimal",
        port=port,
        pid=proc.pid,
        platform="minimal",
        api_key="unused",
        log_path=log_path,
        db_name=name if engine == "postgres" else None,
        info={**info, "crm_delay_ms": args.crm_delay_ms},
    )


# --- one load run ------------------------------------------------------------------------


def log_offset(path: Path | None) -> int:
    try:
        return path.stat().st_size if path is not None else 0
    except OSError:
        return 0


def log_lines_since(path: Path | None, offset: int, *, limit: int = 40) -> dict[str, Any]:
    """The server log's lines written since `offset` (our server logs warnings and errors
    only: 5xx with their tracebacks, pool timeouts, worker timeouts), the first `limit`."""
    if path is None:
        return {"lines": [], "total": 0}
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return {"lines": [], "total": 0}
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return {"lines": lines[:limit], "total": len(lines)}


def run_load(
    target: Target, *, concurrency: int, args: argparse.Namespace, workdir: Path, engine: str
) -> dict:
    """Drive `target` with load.py at `concurrency`; return load.py's figures plus our CPU,
    memory and database-connection figures and the server log's lines of the run.

    The CPU of the server tree and of PostgreSQL is sampled over [start + warmup + 0.5 s,
    start + warmup + duration], a window that lies inside load.py's loaded period whatever
    its start-up time (< warmup + 0.5 s), so the rates match load.py's measured window.
    Memory and connections are sampled over the whole run (warm-up included): their peaks.
    """
    # A label holds --sweep-env's value, which may hold a slash.
    file_stem = f"load-{engine}-{target.label.replace('/', '_')}-c{concurrency}"
    out = workdir / f"{file_stem}.jsonl"
    out.unlink(missing_ok=True)
    options = {
        "--base-url": target.base_url,
        "--platform": target.platform,
        "--api-key": target.api_key,
        "-c": concurrency,
        "-d": args.duration,
        "-w": args.warmup,
        "--seed": args.seed,
        "--server-pid": target.pid,
        "--label": f"{engine}/{target.label}/c{concurrency}",
        "--json-out": out,
    }
    cmd = [str(VENV_BIN / "python"), str(LOAD_PY), *flags(options)]
    log_path = workdir / f"{file_stem}.log"
    server_log_at = log_offset(target.log_path)
    sampler = ServerSampler(target.pid, db_name=target.db_name)
    t0 = time.monotonic()
    proc = start_process(cmd, env=base_env(), log_path=log_path, nice=args.nice)
    try:
        with sampler:
            lead = 0.5
            time.sleep(max(0.0, t0 + args.warmup + lead - time.monotonic()))
            s0 = (
                time.monotonic(),
                tree_cpu_seconds(target.pid),
                postgres_cpu_seconds() if engine == "postgres" else None,
                process_cpu_seconds(target.pid),
            )
            time.sleep(max(0.0, t0 + args.warmup + args.duration - time.monotonic()))
            s1 = (
                time.monotonic(),
                tree_cpu_seconds(target.pid),
                postgres_cpu_seconds() if engine == "postgres" else None,
                process_cpu_seconds(target.pid),
            )
            rc = proc.wait(timeout=args.duration + args.warmup + 120)
    finally:
        stop_process(proc)
    if rc != 0 or not out.exists():
        raise RuntimeError(f"load.py failed ({rc}) against {target.label}:\n{log_path.read_text()[-2000:]}")
    result = json.loads(out.read_text().strip().splitlines()[-1])
    span = s1[0] - s0[0]
    server_cores = (s1[1] - s0[1]) / span
    cpu = result["cpu"]
    cpu["server_cores_loadpy"] = cpu.pop("server_cores")
    cpu["server_cores"] = server_cores
    # Per process (gunicorn: the master, then each worker): shows a worker left idle.
    cpu["process_cores"] = [
        round((s1[3][pid] - s0[3][pid]) / span, 3) for pid in s1[3] if pid in s0[3]
    ]  # fmt: skip
    cpu["db_cores"] = ((s1[2] - s0[2]) / span) if s0[2] is not None else None
    cpu["server_ms_per_flow"] = (
        (1000 * server_cores / result["flows_per_s"]) if result["flows_per_s"] else None
    )
    cpu["sample_window_s"] = span
    # CPU of everything else on the machine (other sessions, the idle server, the kernel):
    # a large value means the run was disturbed.
    known = server_cores + cpu["loadgen_cores"] + (cpu["db_cores"] or 0.0)
    busy = cpu.get("machine_busy_cores")
    cpu["other_cores"] = (busy - known) if busy is not None else None
    result["memory"] = sampler.result()
    result["server_log"] = log_lines_since(target.log_path, server_log_at)
    result["engine"], result["target"], result["kind"] = engine, target.label, target.kind
    result["crm_delay_ms"] = target.info.get("crm_delay_ms", 0)
    result["crm_floor"] = crm_floor(concurrency, result["crm_delay_ms"])
    result["floor_ratio"] = (result["flows_per_s"] / result["crm_floor"]) if result["crm_floor"] else None
    result["server"] = target.info
    return result


# --- the bar -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BarClause:
    """One clause of issue 12's bar: where it is judged and what it asks of our row.
    Zero errors is asked everywhere."""

    name: str
    engine: str
    delayed: bool | None  # judged with a CRM delay (True), with an instant CRM (False), either (None)
    concurrencies: tuple[int, ...]
    min_peer: float | None = None  # ours/peer flows/s at least this
    min_floor: float | None = None  # ours/CRM floor at least this
    p50_slack_ms: float | None = None  # our p50 per route <= the route's CRM time + this
    memory_goal_mib: float | None = None  # peak RSS of all our processes: reported; above, a note

    def applies(self, engine: str, delay_ms: float, concurrency: int) -> bool:
        delayed_ok = self.delayed is None or self.delayed == (delay_ms > 0)
        return engine == self.engine and delayed_ok and concurrency in self.concurrencies


BAR = (
    BarClause("a", "postgres", True, (32,), min_peer=1.3, min_floor=0.85, p50_slack_ms=30),
    BarClause("b", "postgres", True, (256,), min_peer=1.0, memory_goal_mib=1024),
    BarClause("c", "postgres", False, (8, 32), min_peer=1.0),
    BarClause("sqlite", "sqlite", None, (32,)),
)
BAR_DELAY_MS = 100  # the CRM time (a) and (b) are stated for


def p(result: dict, route: str, key: str) -> float:
    ep = result["endpoints"].get(route)
    return ep[key] if ep and ep.get(key) is not None else math.nan


def evaluate_bar(ours: dict, peer: dict) -> dict:
    """Ratios, and whether `ours` meets the clause of the bar judged at its engine, CRM
    delay and concurrency (if any)."""
    engine, delay_ms, c = ours["engine"], ours["crm_delay_ms"], ours["concurrency"]
    ratio = ours["flows_per_s"] / peer["flows_per_s"] if peer["flows_per_s"] else math.nan
    ours_ms, peer_ms = ours["cpu"]["server_ms_per_flow"], peer["cpu"]["server_ms_per_flow"]
    clause = next((b for b in BAR if b.applies(engine, delay_ms, c)), None)
    reasons, notes = [], []
    if ours["errors"]:
        reasons.append(f"{ours['errors']} errors")
    if clause is not None:
        if clause.min_peer is not None and not ratio >= clause.min_peer:
            reasons.append(f"ours/peer {ratio:.2f} < {clause.min_peer}")
        floor_ratio = ours.get("floor_ratio")
        if clause.min_floor is not None and floor_ratio is not None and not floor_ratio >= clause.min_floor:
            reasons.append(
                f"ours/floor {floor_ratio:.2f} < {clause.min_floor} "
                f"({ours['flows_per_s']:.1f} < {clause.min_floor * ours['crm_floor']:.1f} flows/s)"
            )
        if clause.p50_slack_ms is not None:
            for route in ROUTES:
                limit = delay_ms * CRM_CALLS_PER_ROUTE[route] + clause.p50_slack_ms
                p50 = p(ours, route, "p50_ms")
                if not p50 <= limit:
                    reasons.append(
                        f"{route} p50 {p50:.1f} > {limit:.0f} ms (CRM time + {clause.p50_slack_ms:.0f})"
                    )
        if clause.memory_goal_mib is not None:
            rss = ours["memory"]["peak_rss_mib"]
            if rss is None:
                reasons.append("memory not measured")
            elif rss >= clause.memory_goal_mib:
                notes.append(f"peak RSS {rss:.0f} MiB above the {clause.memory_goal_mib:.0f} MiB goal")
    return {
        "ratio": ratio,
        # Server CPU per flow, peer/ours: less sensitive to other load on the machine than flows/s.
        "cpu_ratio": (peer_ms / ours_ms) if ours_ms and peer_ms else None,
        "clause": clause.name if clause else None,
        "judged": clause is not None,
        "met": (not reasons) if clause else None,
        "reasons": reasons,
        "notes": notes,
    }


# --- output ------------------------------------------------------------------------------


def fnum(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def lat(result: dict, route: str) -> str:
    return "/".join(
        fnum(p(result, route, k), ".0f" if p(result, route, k) >= 100 else ".1f")
        for k in ("p50_ms", "p95_ms", "p99_ms")
    )


def _row_cells(r: dict) -> list[str]:
    """The table cells of one run, in COLUMNS order."""
    bar, cpu, mem = r.get("bar"), r["cpu"], r.get("memory") or {}
    verdict = ""
    if bar:
        verdict = "-" if not bar["judged"] else f"{bar['clause']}:{'MET' if bar['met'] else 'no'}"
    return [
        r["engine"],
        str(r["concurrency"]),
        r["target"],
        fnum(r["flows_per_s"]),
        fnum(bar["ratio"], ".2f") if bar else "",
        fnum(r.get("floor_ratio"), ".2f"),
        fnum(r["requests_per_s"]),
        *(lat(r, route) for route in ROUTES),
        str(r["errors"]),
        fnum(cpu["server_cores"], ".2f"),
        fnum(cpu["server_ms_per_flow"], ".2f"),
        fnum(bar.get("cpu_ratio"), ".2f") if bar else "",
        fnum(mem.get("peak_rss_mib"), ".0f"),
        fnum(mem.get("peak_pss_mib"), ".0f"),
        fnum(mem.get("peak_db_connections"), ".0f"),
        fnum(cpu["db_cores"], ".2f"),
        fnum(cpu["loadgen_cores"], ".2f"),
        fnum(cpu.get("other_cores"), ".2f"),
        verdict,
    ]


# (header, width); negative width = left-aligned; the server column widens to its labels.
COLUMNS = [
    ("db", -8), ("c", 3), ("server", -8), ("flows/s", 7), ("/peer", 5), ("/floor", 6), ("req/s", 6),
    *((route, -16) for route in ROUTES),
    ("err", 4), ("srv cores", 9), ("ms/flow", 7), ("cpu ratio", 9), ("rss MiB", 7), ("pss MiB", 7),
    ("db conns", 8), ("db cores", 8), ("cli cores", 9), ("other", 5), ("bar", -8),
]  # fmt: skip


def _line(cells: list[str], widths: list[int]) -> str:
    return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))


def format_table(runs: list[dict]) -> str:
    """One table: a row per engine, concurrency and server, under a line per engine and
    concurrency with the CRM delay and its floor; ratios and the bar on our rows."""
    widths = [w for _, w in COLUMNS]
    server_col = [h for h, _ in COLUMNS].index("server")
    widths[server_col] = -max([8, *(len(r["target"]) for r in runs)])
    head = _line([h for h, _ in COLUMNS], widths)
    lines = [head, "-" * len(head)]
    last_key = None
    for r in runs:
        key = (r["engine"], r["concurrency"])
        if key != last_key:
            if last_key is not None:
                lines.append("")
            delay, floor = r.get("crm_delay_ms") or 0, r.get("crm_floor")
            crm = "CRM in memory (0 ms), no floor"
            if floor:
                formula = f"c / ({CRM_CALLS_PER_FLOW} x {delay:g} ms)"
                crm = f"CRM {delay:g} ms per call, floor {floor:.1f} flows/s = {formula}"
            lines.append(f"# {r['engine']} c={r['concurrency']}: {crm}")
        last_key = key
        lines.append(_line(_row_cells(r), widths).rstrip())
    return "\n".join(lines)


LEGEND = """\
flows/s: completed unknown-caller flows per second; /peer: ours/peer flows/s at the same engine and c;
/floor: flows/s / CRM floor (the floor: c / (3 x CRM delay), 3 CRM calls per flow, one per route).
req/s: successful requests per second; per route: latency p50/p95/p99 in ms; err: failed requests.
srv cores: CPU of the server's whole process tree (gunicorn master + workers; node); ms/flow: server CPU
per flow; cpu ratio: peer ms/flow / our ms/flow; rss/pss MiB: peak resident memory summed over all the
server's processes (PSS counts pages the forked workers share once); db conns: peak PostgreSQL
connections to its database; db cores: all postgres processes; cli cores: load.py; other: rest of the
machine (noise: other sessions).
bar (issue 12; PostgreSQL; zero errors everywhere): (a) CRM 100 ms, c=32: >= 0.85 x floor, >= 1.3 x peer,
p50 per route <= CRM time + 30 ms; (b) CRM 100 ms, c=256: >= 1.0 x peer, memory reported (goal < 1 GiB);
(c) CRM 0 ms, c=8 and 32: >= 1.0 x peer; SQLite c=32: zero errors."""


def format_verdicts(runs: list[dict]) -> str:
    """Per engine, our target and clause: is the bar met, and why not; then error samples
    and the server log lines of runs that had errors or logged anything."""
    lines = []
    groups: dict[tuple[str, str, str, float], list[dict]] = {}
    for r in runs:
        if r.get("bar") and r["bar"]["judged"]:
            key = (r["engine"], r["target"], r["bar"]["clause"], r["crm_delay_ms"])
            groups.setdefault(key, []).append(r)
    for (engine, target, clause, delay), rows in groups.items():
        met = all(r["bar"]["met"] for r in rows)
        official = rows[0]["kind"] == "ours" and (engine == "sqlite" or delay in (0, BAR_DELAY_MS))
        cs = ",".join(str(r["concurrency"]) for r in rows)
        suffix = " (the issue's bar)" if official else ""
        verdict = "MET" if met else "NOT MET"
        lines.append(f"bar ({clause}) {engine}/{target}, CRM {delay:g} ms, c={cs}{suffix}: {verdict}")
        for r in rows:
            for reason in r["bar"]["reasons"]:
                lines.append(f"  c={r['concurrency']}: {reason}")
            for note in r["bar"]["notes"]:
                lines.append(f"  c={r['concurrency']}: note: {note}")
    for r in runs:
        where = f"{r['engine']}/{r['target']}/c{r['concurrency']}"
        for s in r.get("error_samples", []):
            lines.append(f"error sample {where}: {s}")
        log = r.get("server_log") or {}
        if log.get("total"):
            lines.append(
                f"server log {where}: {log['total']} lines during the run, first {len(log['lines'])}:"
            )
            lines.extend(f"  | {ln}" for ln in log["lines"])
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    outside_bench = ["--", ".", ":!bench"]
    status = subprocess.run(
        ["git", "status", "--porcelain", *outside_bench], cwd=ROOT, capture_output=True, text=True
    ).stdout
    diff = subprocess.run(["git", "diff", "HEAD", *outside_bench], cwd=ROOT, capture_output=True).stdout
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git_commit": commit,
        "git_dirty_outside_bench": bool(status.strip()),
        # What was measured when the tree was not clean: the changed files, and a digest of
        # the tracked changes (untracked files are listed only).
        "git_status_outside_bench": status.splitlines(),
        "git_diff_outside_bench_sha256": hashlib.sha256(diff).hexdigest() if status.strip() else None,
    }


# --- orchestration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What to start for a run: the peer, the minimal reference, or our server with the
    built-in or the in-memory CRM; gunicorn's workers and threads and the pool size
    (PostgreSQL; 0 on SQLite) for ours and the minimal reference."""

    kind: str
    crm: str = "builtin"
    workers: int = 0
    threads: int = 0
    pool: int = 0
    # one more environment variable for this run (--sweep-env), as (name, value)
    env: tuple[str, str] | None = None

    def label(self, sweep: bool) -> str:
        if self.kind == "peer":
            return "peer"
        name = "minimal" if self.kind == "minimal" else ("ours" if self.crm == "builtin" else "ours-mem")
        if sweep:
            name = f"{name}-w{self.workers}t{self.threads}p{self.pool}"
        return f"{name}-{self.env[0]}={self.env[1]}" if self.env else name


def start_target(
    spec: Spec, stack: ExitStack, *, engine: str, db: OurDatabase, env: dict[str, str], api_key: str,
    args: argparse.Namespace, workdir: Path,
) -> Target:  # fmt: skip
    """Start one server on fresh data (ours: a copy of the template; the peer: PEER_FRESH_DB)."""
    if spec.kind == "peer":
        return start_peer(stack, engine=engine, args=args, logdir=workdir)
    if spec.kind == "minimal":
        return start_minimal(stack, spec, engine=engine, db=db, args=args, logdir=workdir)
    db.fresh_copy()
    return start_ours(stack, spec, env=env, args=args, api_key=api_key, logdir=workdir)


def measure_one(
    spec: Spec, c: int, *, engine: str, db: OurDatabase, env: dict[str, str], api_key: str,
    args: argparse.Namespace, workdir: Path,
) -> dict:  # fmt: skip
    """Start one server on fresh data, wait for a quiet machine, load it, stop it."""
    with ExitStack() as run_stack:
        target = start_target(
            spec, run_stack, engine=engine, db=db, env=env, api_key=api_key, args=args, workdir=workdir
        )
        target.label = spec.label(sweeping(args))
        idle_busy = wait_quiet(args.quiet_wait)
        noisy = "  WARNING: machine was busy, figures disturbed" if idle_busy > 0.3 else ""
        print(
            f"  c={c} {target.label:<8} port {target.port} pid {target.pid}; "
            f"machine busy before: {idle_busy:.2f} cores{noisy}",
            flush=True,
        )
        r = run_load(target, concurrency=c, args=args, workdir=workdir, engine=engine)
    r["machine_busy_before_cores"] = idle_busy
    floor = f", {fnum(r['floor_ratio'], '.2f')} x floor {r['crm_floor']:.1f}" if r["crm_floor"] else ""
    mem, cpu = r["memory"], r["cpu"]
    print(
        f"     {r['flows_per_s']:.1f} flows/s{floor}, {r['errors']} errors, "
        f"server {cpu['server_cores']:.2f} cores {cpu['process_cores']}, "
        f"peak RSS {fnum(mem['peak_rss_mib'], '.0f')} MiB (PSS {fnum(mem['peak_pss_mib'], '.0f')}, "
        f"{mem['peak_threads']} threads, db conns {fnum(mem['peak_db_connections'], '.0f')}), "
        f"other load {fnum(cpu['other_cores'], '.2f')} cores",
        flush=True,
    )
    if r["errors"] or r["server_log"]["total"]:
        for line in r["server_log"]["lines"][:10]:
            print(f"     log | {line}", flush=True)
    return r


def median_result(results: list[dict]) -> dict:
    """Combine the passes of one (engine, c, server): the median of every figure, the sum
    of errors; the passes themselves are kept under "passes"."""

    def merge(values: list[Any]) -> Any:
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, dict) for v in present):
            keys = dict.fromkeys(k for v in present for k in v)
            return {k: merge([v.get(k) for v in present]) for k in keys}
        if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            return statistics.median(present)
        return present[0] if present else None

    if len(results) == 1:
        return {**results[0], "passes": 1}
    merged = merge(results)
    for key in ("concurrency", "engine", "target", "kind", "server", "mode", "base_url", "label"):
        merged[key] = results[0].get(key)
    merged["errors"] = sum(r["errors"] for r in results)
    for ep in merged["endpoints"]:
        merged["endpoints"][ep]["errors"] = sum(r["endpoints"].get(ep, {}).get("errors", 0) for r in results)
    merged["error_samples"] = [s for r in results for s in r.get("error_samples", [])][:5]
    merged["server_log"] = {
        "lines": [ln for r in results for ln in r["server_log"]["lines"]][:40],
        "total": sum(r["server_log"]["total"] for r in results),
    }
    merged["passes"] = len(results)
    merged["pass_results"] = results
    return merged


def sweeping(args: argparse.Namespace) -> bool:
    return bool(args.sweep_workers or args.sweep_threads or args.sweep_pool)


def our_specs(engine: str, args: argparse.Namespace) -> list[Spec]:
    """Our server's runs: one per CRM and (when sweeping) per workers x threads x pool x
    value of --sweep-env."""
    crms = ("builtin", "memory") if args.crm == "both" else (args.crm,)
    pools = (args.sweep_pool or [args.db_pool]) if engine == "postgres" else [0]
    return [
        Spec("ours", crm, workers, threads, pool, env)
        for crm in crms
        for workers in (args.sweep_workers or [args.workers])
        for threads in (args.sweep_threads or [args.threads])
        for pool in pools
        for env in (args.sweep_env or [None])
    ]


def reference_specs(engine: str, args: argparse.Namespace) -> list[Spec]:
    """With --reference, the minimal Django's runs: our workers, threads and pool, once per
    value of --reference-env."""
    if not args.reference:
        return []
    pool = args.db_pool if engine == "postgres" else 0
    return [
        Spec("minimal", workers=args.workers, threads=args.threads, pool=pool, env=env)
        for env in (args.reference_env or [None])
    ]


def bench_engine(engine: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    """Prepare the template, then for each pass and concurrency start, load and stop every
    server on fresh data, alternating who goes first; return the runs in table order."""
    print(f"== {engine}", flush=True)
    sweep = sweeping(args)
    specs = [Spec("peer"), *our_specs(engine, args)]
    specs += reference_specs(engine, args)
    raw: dict[tuple[int, str], list[dict]] = {}
    with ExitStack() as stack:
        db = OurDatabase(engine, workdir, args.pg_port, args.pg_name)
        db.create_template()
        if not args.keep:
            stack.callback(db.drop)
        secrets_ = random_secrets()
        api_key = prepare_our_database(our_env(db.template_url, args, secrets_))
        env = our_env(db.url, args, secrets_)
        step = 0
        for _ in range(args.passes):
            for c in args.concurrency:
                # Alternate who goes first, so drift of the machine falls on both sides.
                order = specs[step % len(specs) :] + specs[: step % len(specs)]
                step += 1
                for spec in order:
                    r = measure_one(
                        spec, c, engine=engine, db=db, env=env, api_key=api_key, args=args, workdir=workdir
                    )
                    raw.setdefault((c, spec.label(sweep)), []).append(r)
    runs: list[dict] = []
    for c in args.concurrency:
        peer = median_result(raw[(c, "peer")])
        runs.append(peer)
        for spec in specs[1:]:
            ours = median_result(raw[(c, spec.label(sweep))])
            ours["bar"] = evaluate_bar(ours, peer)
            runs.append(ours)
    return runs


def save_json(path: Path, args: argparse.Namespace, runs: list[dict], started: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "started_utc": started,
        "finished_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine_info(),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "bar": {
            "issue": 12,
            "clauses": [asdict(clause) for clause in BAR],
            "rule": "PostgreSQL, same run, zero errors; (a) CRM 100 ms c=32: >= 0.85 x floor, >= 1.3 x peer, "
            "p50 per route <= CRM time + 30 ms; (b) CRM 100 ms c=256: >= 1.0 x peer, memory reported "
            "(goal < 1 GiB); (c) CRM 0 ms c=8,32: >= 1.0 x peer; SQLite c=32: zero errors",
        },
        "runs": runs,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def int_list(text: str, *, smallest: int = 1) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < smallest:
        raise argparse.ArgumentTypeError(f"give integers >= {smallest}, comma-separated")
    return values


def env_values(text: str) -> list[tuple[str, str]]:
    """`KEY=V1,V2` -> [(KEY, V1), (KEY, V2)]."""
    key, sep, values = text.partition("=")
    if not sep or not key.strip() or not values:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE,VALUE,..., got {text!r}")
    return [(key.strip(), value) for value in values.split(",")]


def pool_sizes(text: str) -> list[int]:
    """Pool sizes, comma-separated; 0 = no pool (a persistent connection per thread)."""
    return int_list(text, smallest=0)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    conf_workers, conf_threads = gunicorn_conf_defaults()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both", help="engine(s) [both]")
    ap.add_argument("-c", "--concurrency", type=int_list, default=[1, 8, 32], help="concurrencies [1,8,32]")
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds per run [10]")
    ap.add_argument("-w", "--warmup", type=float, default=3.0, help="warm-up seconds per run [3]")
    ap.add_argument("--seed", type=int, default=39, help="load.py --seed (valid NANP numbers) [39]")
    ap.add_argument(
        "--crm-delay-ms",
        type=float,
        default=0.0,
        metavar="N",
        help="every CRM call waits N ms first, on both servers (ours: bench/slow_crm.py; the peer: "
        "PEER_CRM_DELAY_MS), as a real CRM's round trip; 0 = instant in-memory CRMs [0]",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=conf_workers,
        help=f"gunicorn workers, WEB_WORKERS (config/gunicorn.conf.py's default) [{conf_workers}]",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=conf_threads,
        help=f"threads per worker, WEB_THREADS (config/gunicorn.conf.py's default) [{conf_threads}]",
    )
    ap.add_argument(
        "--db-pool",
        type=int,
        default=DEFAULT_DB_POOL,
        metavar="N",
        help="PostgreSQL: psycopg pool of N connections per worker, DB_POOL_MAX_SIZE (0: one persistent "
        f"connection per thread instead; ignored on SQLite) [{DEFAULT_DB_POOL}]",
    )
    for what, example, kind in (
        ("workers", "2,3", int_list),
        ("threads", "64,128", int_list),
        ("pool", "0,8,16", pool_sizes),
    ):
        ap.add_argument(
            f"--sweep-{what}",
            type=kind,
            metavar="N,N,...",
            help=f"run our server once per value of {what} (e.g. {example}; combined with the other "
            "sweeps) beside the peer, to choose the settings",
        )
    ap.add_argument(
        "--sweep-env",
        type=env_values,
        metavar="KEY=V,V,...",
        help="run our server once per value of one environment variable (e.g. CONN_HEALTH_CHECKS="
        "true,false), beside the peer and in alternating order: an A/B comparison in one run",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more environment variable for our server and the minimal reference (repeatable), "
        "e.g. WEB_GIL_SWITCH_MS=1",
    )
    ap.add_argument("--conn-max-age", type=int, default=600, help="our CONN_MAX_AGE without a pool [600]")
    ap.add_argument("--cache-url", default="locmemcache://", help="our CACHE_URL [locmemcache://]")
    ap.add_argument("--log-level", default="INFO", help="our LOG_LEVEL (production default) [INFO]")
    ap.add_argument("--pg-port", type=int, default=5432, help="local PostgreSQL port [5432]")
    ap.add_argument(
        "--pg-name", default="appconnect_bench", help="our PostgreSQL database [appconnect_bench]"
    )
    ap.add_argument(
        "--peer-home",
        type=Path,
        default=Path(tempfile.gettempdir()) / "appconnect-peer",
        help="where the peer is installed and run (start.sh's PEER_HOME) [<tmp>/appconnect-peer]",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each run, wait up to this many seconds for the machine to be idle [10]",
    )
    ap.add_argument(
        "--passes",
        type=int,
        default=1,
        help="repeat every run this many times (alternating order) and report medians [1]",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=-10 if os.geteuid() == 0 else 0,
        help="priority change for both servers and the load client, to shield them from other work on "
        "a shared machine (PostgreSQL is left alone) [-10 as root, else 0]",
    )
    ap.add_argument(
        "--keep", action="store_true", help="keep the databases, work folder and peer logs afterwards"
    )
    ap.add_argument(
        "--crm",
        choices=("builtin", "memory", "both"),
        help="our server's CRM: the built-in one (contacts and activities written to our database), "
        "the in-memory one of bench/memory_crm.py (like the peer's peercrm; bench/slow_crm.py with "
        "--crm-delay-ms), or both as two rows [memory with --crm-delay-ms, else both]",
    )
    ap.add_argument(
        "--reference",
        action="store_true",
        help="also measure the minimal Django of bench/minimal (one ORM statement per step, no "
        "middleware, no DRF; same gunicorn settings, pool and CRM delay): the stack's ceiling "
        "beside the peer, in the same run",
    )
    ap.add_argument(
        "--reference-env",
        type=env_values,
        metavar="KEY=V,V,...",
        help="with --reference: run the minimal Django once per value of one environment variable, "
        "e.g. BENCH_EXTRA_WORK=none,cpu:0.8/1.6/1.6+sql:0/2/0 (bench/minimal: our server's extra "
        "work per request, to see what it costs)",
    )
    ap.add_argument("--json-out", type=Path, help="results file [bench/results/<UTC timestamp>.json]")
    args = ap.parse_args(argv)
    if args.duration <= 0.5 or args.warmup < 0:
        ap.error("need --duration > 0.5 and --warmup >= 0")
    if args.crm_delay_ms < 0 or min(args.workers, args.threads) < 1 or args.db_pool < 0:
        ap.error("need --crm-delay-ms >= 0, --workers >= 1, --threads >= 1 and --db-pool >= 0")
    if args.reference_env and not args.reference:
        ap.error("--reference-env needs --reference")
    if args.crm is None:
        args.crm = "memory" if args.crm_delay_ms > 0 else "both"
    if args.crm_delay_ms > 0 and args.crm != "memory":
        ap.error("the built-in CRM answers from our database at once; with --crm-delay-ms use --crm memory")
    return args


def install_signal_handlers() -> None:
    """Turn SIGINT, SIGTERM and SIGHUP into KeyboardInterrupt so the cleanup code runs."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # A shell starts background jobs with SIGINT ignored; take Ctrl-C / kill -INT anyway.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    install_signal_handlers()
    for path in (VENV_BIN / "gunicorn", LOAD_PY, PEER_DIR / "start.sh"):
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            return 2
    started = datetime.now(UTC)
    json_out = args.json_out or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    engines = ("postgres", "sqlite") if args.db == "both" else (args.db,)
    workdir = Path(tempfile.mkdtemp(prefix="appconnect-bench-"))
    print(
        f"our server: gunicorn -c {GUNICORN_CONF} {OUR_APP}, WEB_WORKERS={args.workers}, "
        f"PostgreSQL: gevent workers, DB_POOL_MAX_SIZE={args.db_pool}; SQLite: gthread workers, "
        f"WEB_THREADS={args.threads}; CRM {args.crm}, CRM delay {args.crm_delay_ms:g} ms",
        flush=True,
    )
    runs: list[dict] = []
    completed = False
    try:
        for engine in engines:
            runs.extend(bench_engine(engine, args, workdir))
        completed = True
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    finally:
        if runs:
            save_json(json_out, args, runs, started.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if args.keep or not completed:
            print(f"logs and work files kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(format_table(runs))
    print(LEGEND)
    print()
    print(format_verdicts(runs))
    ratios = [r["bar"]["ratio"] for r in runs if r.get("bar") and r["kind"] == "ours"]
    if ratios:
        print(f"median our/peer ratio over all runs: {statistics.median(ratios):.2f}")
    print(f"figures saved to {json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
