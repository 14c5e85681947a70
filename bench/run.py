#!/usr/bin/env python3
"""Side-by-side benchmark: our server against App Connect's Node.js server (the peer).

Measures the unknown-caller flow (GET /contact -> POST /contact -> POST /callLog, a new
number and session per flow) on each database engine, with the same load client
(../shared/peer/load.py) and the same settings for both servers, and prints one table
with our/peer ratios. Only ratios measured in one run on one machine mean anything
(../shared/perf.md), so the peer is always measured in the same run.

For each engine (PostgreSQL, SQLite) the script:
  1. builds a template database for our server (PostgreSQL: `appconnect_bench_template`
     on 127.0.0.1:5432 as role `postgres`; SQLite: a file in a temporary folder), runs
     `manage.py migrate` on it and creates a built-in CRM user and API key
     (`manage.py builtin_apikey bench`);
  2. for every concurrency (-c) and server, in alternating order, on fresh data:
     - ours: copies the template to `appconnect_bench` (or a fresh SQLite file) and starts
       our server as in production: gunicorn `config.wsgi`, DEBUG off, random secrets,
       ALLOWED_HOSTS=127.0.0.1, no access log, no control socket, CONN_MAX_AGE=600, on a
       free loopback port (sync workers, --workers, default chosen by measurement);
     - the peer: `PEER_DB=<engine> PEER_FRESH_DB=1 ../shared/peer/start.sh <port>` (the
       first run installs it with `npm ci`, about 2.5 minutes, cached in PEER_HOME);
     then runs load.py (-c, -d, -w, --seed 39) against it, measures the CPU of the
     server's whole process tree (gunicorn master plus live workers: load.py's own
     figure only sees the master and reaped children), of PostgreSQL and of load.py,
     and stops it. Fresh data per run is required: load.py's numbers depend only on
     --seed, so a second run on the same data would find the first run's contacts;
  3. drops its databases; everything it started is stopped also on Ctrl-C or error.

Our server runs twice per point by default (--crm both): with the built-in CRM, whose
contacts and activities are written to our database, and with the in-memory CRM of
bench/memory_crm.py (row `ours-mem`), the counterpart of the peer's in-memory `peercrm`,
so that both servers do only their own work.

With --reference, another server runs beside them on the same engine and workers: the
minimal Django of bench/minimal (PyJWT in the view, one ORM statement per step, no
middleware, no DRF, nothing of the product). Its ratio to the peer is the ceiling of the
stack on this machine today, measured rather than remembered (../shared/perf.md).

The machines are shared and noisy. Before each run the script waits (--quiet-wait) for
the machine to be idle; both servers and load.py run with a raised priority (--nice,
process and autogroup nice; PostgreSQL is left alone); the `other` column shows the CPU
used by everything else during the run; --passes N repeats every run and reports medians.

The bar (issue 7): on PostgreSQL at c=8 and c=32, ours >= 2.0x the peer's flows/s, zero
errors, and our p99 per route below the peer's p50 for that route. The table flags it
for every engine; the verdict that counts is PostgreSQL's.

Figures are saved as JSON (default bench/results/<UTC timestamp>.json, git-ignored):
every run with load.py's full output plus the CPU figures, machine and git commit.

Usage (from the project root):
    .venv/bin/python bench/run.py                       # both engines, c=1,8,32, 10 s each
    .venv/bin/python bench/run.py --db postgres -c 8,32 -d 20 --passes 3
    .venv/bin/python bench/run.py --db postgres -c 8,32 --sweep-workers 2,3,4   # choose --workers
    .venv/bin/python bench/run.py --worker-class gthread --workers 2 --threads 4
    .venv/bin/python bench/run.py --db postgres -c 8,32 --reference    # + the stack's ceiling

Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PEER_DIR = (ROOT.parent / "shared" / "peer").resolve()
LOAD_PY = PEER_DIR / "load.py"
MINIMAL_DIR = ROOT / "bench" / "minimal"
RESULTS_DIR = ROOT / "bench" / "results"

HOST = "127.0.0.1"
ROUTES = ("GET /contact", "POST /contact", "POST /callLog")
BAR_RATIO = 2.0
BAR_CONCURRENCIES = (8, 32)
PEER_PLATFORM, PEER_API_KEY = "peercrm", "demo-api-key-1"
OUR_PLATFORM = "builtin"
MEMORY_PLATFORM = "memory"  # bench/memory_crm.py, like the peer's in-memory peercrm
# Chosen with --sweep-workers 2,3,4 on 2 vCPU (2026-11-26): 3 was best or tied on SQLite and
# at c=32 on PostgreSQL, all three within noise at c=8; 2 spends the least CPU per flow.
DEFAULT_WORKERS = 3
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


# --- the two servers ---------------------------------------------------------------------


@dataclass
class Target:
    """One server under load: its label, URL, credentials and the pid whose tree is measured."""

    label: str
    kind: str  # "ours", "peer" or "minimal"
    port: int
    pid: int
    platform: str
    api_key: str
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


def gunicorn_supports(flag: str) -> bool:
    """Whether this gunicorn knows `flag` (e.g. --no-control-socket, new in 27)."""
    out = subprocess.run([str(VENV_BIN / "gunicorn"), "--help"], capture_output=True, text=True).stdout
    return flag in out


def start_ours(
    stack: ExitStack,
    *,
    env: dict[str, str],
    workers: int,
    args: argparse.Namespace,
    api_key: str,
    logdir: Path,
    crm: str = "builtin",
) -> Target:
    """Start gunicorn config.wsgi on a free port; register its stop on `stack`.

    With `crm="memory"` the server also has the in-memory connector of bench/memory_crm.py
    (platform `memory`), and the load logs in to that platform instead of the built-in CRM.
    """
    platform, pythonpath = OUR_PLATFORM, None
    if crm == "memory":
        env = {**env, "CRM_PLATFORMS_EXTRA": f"{MEMORY_PLATFORM}=memory_crm.MemoryCrmClient"}
        platform, api_key, pythonpath = MEMORY_PLATFORM, "bench-memory-key", ROOT / "bench"
    label = f"ours-{crm}-w{workers}"
    port, proc, info = start_gunicorn(
        stack, "config.wsgi", env=env, workers=workers, args=args, log_name=label, logdir=logdir,
        pythonpath=pythonpath,
    )  # fmt: skip
    return Target(
        label=label,
        kind="ours",
        port=port,
        pid=proc.pid,
        platform=platform,
        api_key=api_key,
        info={**info, "crm": crm},
    )


def start_gunicorn(
    stack: ExitStack,
    app: str,
    *,
    env: dict[str, str],
    workers: int,
    args: argparse.Namespace,
    log_name: str,
    logdir: Path,
    pythonpath: Path | None = None,
) -> tuple[int, subprocess.Popen, dict[str, Any]]:
    """Serve the WSGI `app` with gunicorn on a free port, as in production; register its
    stop on `stack`; return once it answers and all its workers are up."""
    port = free_port()
    # No --access-logfile: gunicorn writes no access log unless given one.
    options: dict[str, Any] = {
        "--bind": f"{HOST}:{port}",
        "--workers": workers,
        "--worker-class": args.worker_class,
        "--error-logfile": "-",
        "--log-level": "warning",
    }
    if pythonpath is not None:
        options["--pythonpath"] = str(pythonpath)
    cmd = [str(VENV_BIN / "gunicorn"), app, *flags(options)]
    if args.worker_class == "gthread":
        cmd += ["--threads", str(args.threads)]
    if gunicorn_supports("--no-control-socket"):
        cmd.append("--no-control-socket")
    proc = start_process(cmd, env=env, log_path=logdir / f"{log_name}-{port}.log", nice=args.nice)
    stack.callback(stop_process, proc)
    wait_http_ok(f"http://{HOST}:{port}/isAlive", timeout=60, proc=proc)
    deadline = time.monotonic() + 30
    while count_children(proc.pid) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    threads = args.threads if args.worker_class == "gthread" else 1
    return port, proc, {"workers": workers, "worker_class": args.worker_class, "threads": threads, "cmd": cmd}


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
    start_sh = str(PEER_DIR / "start.sh")

    def stop() -> None:
        subprocess.run([start_sh, "stop", str(port)], env=env, capture_output=True, timeout=60)
        if not args.keep:
            (args.peer_home / "logs" / f"peer-{port}.log").unlink(missing_ok=True)
        if engine == "sqlite" and not args.keep:
            (args.peer_home / "data" / f"peer-{port}.sqlite").unlink(missing_ok=True)
        if engine == "postgres" and not args.keep:
            try:
                pg_admin(f'DROP DATABASE IF EXISTS "appconnect_peer_{port}" WITH (FORCE)', port=args.pg_port)
            except Exception as exc:  # cleanup must not hide the real error
                print(f"warning: could not drop the peer database: {exc}", file=sys.stderr)

    stack.callback(stop)
    log_path = logdir / f"peer-start-{port}.log"
    if not (args.peer_home / "node_modules" / "@app-connect" / "core").exists():
        print("  installing the peer (npm ci, first run only: ~2.5 min) ...", flush=True)
    with open(log_path, "wb") as log:
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
        raise RuntimeError(f"peer failed to start; see {log_path}:\n{log_path.read_text()[-2000:]}")
    pid = int((args.peer_home / "run" / f"peer-{port}.pid").read_text().strip())
    wait_http_ok(f"http://{HOST}:{port}/isAlive", timeout=30)
    return Target(label="peer", kind="peer", port=port, pid=pid, platform=PEER_PLATFORM, api_key=PEER_API_KEY)


def start_minimal(
    stack: ExitStack, *, engine: str, db: OurDatabase, args: argparse.Namespace, workers: int, logdir: Path
) -> Target:
    """Start the minimal reference (bench/minimal) on a fresh database of `engine`, under
    gunicorn with our worker settings; register its stop on `stack`."""
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
    env = {**base_env(), "DATABASE_URL": url, "APP_SERVER_SECRET_KEY": secrets.token_urlsafe(48)}
    done = subprocess.run(
        [str(VENV_BIN / "python"), str(MINIMAL_DIR / "wsgi.py"), "migrate"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"minimal reference: migrate failed:\n{done.stdout}\n{done.stderr}")
    port, proc, info = start_gunicorn(
        stack, "minimal.wsgi", env=env, workers=workers, args=args, log_name="minimal", logdir=logdir,
        pythonpath=MINIMAL_DIR.parent,
    )  # fmt: skip
    return Target(
        label="minimal",
        kind="minimal",
        port=port,
        pid=proc.pid,
        platform="minimal",
        api_key="unused",
        info=info,
    )


# --- one load run ------------------------------------------------------------------------


def run_load(
    target: Target, *, concurrency: int, args: argparse.Namespace, workdir: Path, engine: str
) -> dict:
    """Drive `target` with load.py at `concurrency`; return load.py's figures plus our CPU figures.

    The CPU of the server tree and of PostgreSQL is sampled over [start + warmup + 0.5 s,
    start + warmup + duration], a window that lies inside load.py's loaded period whatever
    its start-up time (< warmup + 0.5 s), so the rates match load.py's measured window.
    """
    out = workdir / f"load-{engine}-{target.label}-c{concurrency}.jsonl"
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
    log_path = workdir / f"load-{engine}-{target.label}-c{concurrency}.log"
    t0 = time.monotonic()
    proc = start_process(cmd, env=base_env(), log_path=log_path, nice=args.nice)
    try:
        lead = 0.5
        time.sleep(max(0.0, t0 + args.warmup + lead - time.monotonic()))
        s0 = (
            time.monotonic(),
            tree_cpu_seconds(target.pid),
            postgres_cpu_seconds() if engine == "postgres" else None,
        )
        time.sleep(max(0.0, t0 + args.warmup + args.duration - time.monotonic()))
        s1 = (
            time.monotonic(),
            tree_cpu_seconds(target.pid),
            postgres_cpu_seconds() if engine == "postgres" else None,
        )
        rc = proc.wait(timeout=args.duration + args.warmup + 120)
    finally:
        stop_process(proc)
    if rc != 0 or not out.exists():
        raise RuntimeError(f"load.py failed ({rc}) against {target.label}:\n{log_path.read_text()[-2000:]}")
    result = json.loads(out.read_text().strip().splitlines()[-1])
    span = s1[0] - s0[0]
    server_cores = (s1[1] - s0[1]) / span
    result["cpu"]["server_cores_loadpy"] = result["cpu"].pop("server_cores")
    result["cpu"]["server_cores"] = server_cores
    result["cpu"]["db_cores"] = ((s1[2] - s0[2]) / span) if s0[2] is not None else None
    result["cpu"]["server_ms_per_flow"] = (
        (1000 * server_cores / result["flows_per_s"]) if result["flows_per_s"] else None
    )
    result["cpu"]["sample_window_s"] = span
    # CPU of everything else on the machine (other sessions, the idle server, the kernel):
    # a large value means the run was disturbed.
    known = server_cores + result["cpu"]["loadgen_cores"] + (result["cpu"]["db_cores"] or 0.0)
    busy = result["cpu"].get("machine_busy_cores")
    result["cpu"]["other_cores"] = (busy - known) if busy is not None else None
    result["engine"], result["target"], result["kind"] = engine, target.label, target.kind
    result["server"] = target.info
    return result


# --- the bar -----------------------------------------------------------------------------


def p(result: dict, route: str, key: str) -> float:
    ep = result["endpoints"].get(route)
    return ep[key] if ep and ep.get(key) is not None else math.nan


def evaluate_bar(ours: dict, peer: dict) -> dict:
    """Ratio, and whether `ours` meets the bar against `peer` (only judged at c = 8 and 32)."""
    ratio = ours["flows_per_s"] / peer["flows_per_s"] if peer["flows_per_s"] else math.nan
    reasons = []
    if not ratio >= BAR_RATIO:
        reasons.append(f"ratio {ratio:.2f} < {BAR_RATIO}")
    if ours["errors"]:
        reasons.append(f"{ours['errors']} errors")
    for route in ROUTES:
        ours_p99, peer_p50 = p(ours, route, "p99_ms"), p(peer, route, "p50_ms")
        if not ours_p99 < peer_p50:
            reasons.append(f"{route} p99 {ours_p99:.1f} >= peer p50 {peer_p50:.1f} ms")
    judged = ours["concurrency"] in BAR_CONCURRENCIES
    ours_ms, peer_ms = ours["cpu"]["server_ms_per_flow"], peer["cpu"]["server_ms_per_flow"]
    return {
        "ratio": ratio,
        # Server CPU per flow, peer/ours: less sensitive to other load on the machine than flows/s.
        "cpu_ratio": (peer_ms / ours_ms) if ours_ms and peer_ms else None,
        "judged": judged,
        "met": (not reasons) if judged else None,
        "reasons": reasons,
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
    bar, cpu = r.get("bar"), r["cpu"]
    verdict = "" if not bar else ("-" if not bar["judged"] else ("MET" if bar["met"] else "no"))
    return [
        r["engine"],
        str(r["concurrency"]),
        r["target"],
        fnum(r["flows_per_s"]),
        fnum(bar["ratio"], ".2f") if bar else "",
        fnum(r["requests_per_s"]),
        *(lat(r, route) for route in ROUTES),
        str(r["errors"]),
        fnum(cpu["server_cores"], ".2f"),
        fnum(cpu["server_ms_per_flow"], ".2f"),
        fnum(bar.get("cpu_ratio"), ".2f") if bar else "",
        fnum(cpu["db_cores"], ".2f"),
        fnum(cpu["loadgen_cores"], ".2f"),
        fnum(cpu.get("other_cores"), ".2f"),
        verdict,
    ]


# (header, width); negative width = left-aligned.
COLUMNS = [
    ("db", -8), ("c", 3), ("server", -8), ("flows/s", 8), ("ratio", 6), ("req/s", 7),
    *((route, -16) for route in ROUTES),
    ("err", 4), ("srv cores", 9), ("ms/flow", 7), ("cpu ratio", 9), ("db cores", 8), ("cli cores", 9),
    ("other", 5), ("bar", -3),
]  # fmt: skip


def _line(cells: list[str]) -> str:
    return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True))


def format_table(runs: list[dict]) -> str:
    """One table: a row per engine, concurrency and server; ratio and bar on our rows."""
    head = _line([h for h, _ in COLUMNS])
    lines = [head, "-" * len(head)]
    last_key = None
    for r in runs:
        key = (r["engine"], r["concurrency"])
        if last_key is not None and key != last_key:
            lines.append("")
        last_key = key
        lines.append(_line(_row_cells(r)).rstrip())
    return "\n".join(lines)


LEGEND = """\
flows/s: completed unknown-caller flows per second; ratio: ours/peer flows/s at the same engine and c.
req/s: successful requests per second; per route: latency p50/p95/p99 in ms; err: failed requests.
srv cores: CPU of the server's whole process tree (gunicorn master + workers; node); ms/flow: server CPU
per flow; cpu ratio: peer ms/flow / our ms/flow (CPU efficiency, robust to noise); db cores: all
postgres processes; cli cores: load.py; other: rest of the machine (noise: other sessions).
bar (c=8, 32): ratio >= 2.0, zero errors, our p99 < peer p50 on every route."""


def format_verdicts(runs: list[dict]) -> str:
    """Per engine and our target: is the bar met at every judged concurrency, and why not."""
    lines = []
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        if r.get("bar") and r["bar"]["judged"]:
            groups.setdefault((r["engine"], r["target"]), []).append(r)
    for (engine, target), rows in groups.items():
        met = all(r["bar"]["met"] for r in rows)
        official = " (the issue's bar)" if engine == "postgres" and rows[0]["kind"] == "ours" else ""
        lines.append(f"bar {engine}/{target}{official}: {'MET' if met else 'NOT MET'}")
        for r in rows:
            for reason in r["bar"]["reasons"]:
                lines.append(f"  c={r['concurrency']}: {reason}")
    for r in runs:
        for s in r.get("error_samples", []):
            lines.append(f"error sample {r['engine']}/{r['target']}/c{r['concurrency']}: {s}")
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
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":!bench"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "git_commit": commit,
        "git_dirty_outside_bench": dirty,
    }


# --- orchestration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """What to start for a run: the peer, the minimal reference, or our server with
    `workers` workers and the built-in or the in-memory CRM."""

    kind: str
    workers: int = 0
    crm: str = "builtin"

    def label(self, sweep: bool) -> str:
        if self.kind in ("peer", "minimal"):
            return self.kind
        name = "ours" if self.crm == "builtin" else "ours-mem"
        return f"{name}-w{self.workers}" if sweep else name


def start_target(
    spec: Spec, stack: ExitStack, *, engine: str, db: OurDatabase, env: dict[str, str], api_key: str,
    args: argparse.Namespace, workdir: Path,
) -> Target:  # fmt: skip
    """Start one server on fresh data (ours: a copy of the template; the peer: PEER_FRESH_DB)."""
    if spec.kind == "peer":
        return start_peer(stack, engine=engine, args=args, logdir=workdir)
    if spec.kind == "minimal":
        return start_minimal(stack, engine=engine, db=db, args=args, workers=args.workers, logdir=workdir)
    db.fresh_copy()
    return start_ours(
        stack, env=env, workers=spec.workers, args=args, api_key=api_key, logdir=workdir, crm=spec.crm
    )


def measure_one(
    spec: Spec, c: int, *, engine: str, db: OurDatabase, env: dict[str, str], api_key: str,
    args: argparse.Namespace, workdir: Path,
) -> dict:  # fmt: skip
    """Start one server on fresh data, wait for a quiet machine, load it, stop it."""
    with ExitStack() as run_stack:
        target = start_target(
            spec, run_stack, engine=engine, db=db, env=env, api_key=api_key, args=args, workdir=workdir
        )
        target.label = spec.label(bool(args.sweep_workers))
        idle_busy = wait_quiet(args.quiet_wait)
        noisy = "  WARNING: machine was busy, figures disturbed" if idle_busy > 0.3 else ""
        print(
            f"  c={c} {target.label:<8} port {target.port} pid {target.pid}; "
            f"machine busy before: {idle_busy:.2f} cores{noisy}",
            flush=True,
        )
        r = run_load(target, concurrency=c, args=args, workdir=workdir, engine=engine)
    r["machine_busy_before_cores"] = idle_busy
    print(
        f"     {r['flows_per_s']:.1f} flows/s, {r['errors']} errors, server {r['cpu']['server_cores']:.2f} "
        f"cores, other load {r['cpu']['other_cores']:.2f} cores",
        flush=True,
    )
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
    merged["passes"] = len(results)
    merged["pass_results"] = results
    return merged


def bench_engine(engine: str, args: argparse.Namespace, workdir: Path) -> list[dict]:
    """Prepare the template, then for each pass and concurrency start, load and stop every
    server on fresh data, alternating who goes first; return the runs in table order."""
    print(f"== {engine}", flush=True)
    sweep = bool(args.sweep_workers)
    crms = ("builtin", "memory") if args.crm == "both" else (args.crm,)
    specs = [Spec("peer")] + [
        Spec("ours", n, crm) for crm in crms for n in (args.sweep_workers or [args.workers])
    ]
    if args.reference:
        specs.append(Spec("minimal"))
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
            "ratio": BAR_RATIO,
            "concurrencies": BAR_CONCURRENCIES,
            "rule": "ours/peer flows/s >= ratio, zero errors, our p99 < peer p50 per route",
        },
        "runs": runs,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def int_list(text: str) -> list[int]:
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("give positive integers, comma-separated")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=("postgres", "sqlite", "both"), default="both", help="engine(s) [both]")
    ap.add_argument("-c", "--concurrency", type=int_list, default=[1, 8, 32], help="concurrencies [1,8,32]")
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds per run [10]")
    ap.add_argument("-w", "--warmup", type=float, default=3.0, help="warm-up seconds per run [3]")
    ap.add_argument("--seed", type=int, default=39, help="load.py --seed (valid NANP numbers) [39]")
    ap.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"gunicorn workers [{DEFAULT_WORKERS}]"
    )
    ap.add_argument("--worker-class", default="sync", help="gunicorn worker class [sync]")
    ap.add_argument(
        "--threads", type=int, default=4, help="threads per worker with --worker-class gthread [4]"
    )
    ap.add_argument(
        "--sweep-workers",
        type=int_list,
        metavar="N,N,...",
        help="run our server once per worker count (e.g. 2,3,4) beside the peer, to choose --workers",
    )
    ap.add_argument("--conn-max-age", type=int, default=600, help="our CONN_MAX_AGE seconds [600]")
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
        default="both",
        help="our server's CRM: the built-in one (contacts and activities written to our database), "
        "the in-memory one of bench/memory_crm.py (like the peer's peercrm), or both as two rows [both]",
    )
    ap.add_argument(
        "--reference",
        action="store_true",
        help="also measure the minimal Django of bench/minimal (one ORM statement per step, no "
        "middleware, no DRF): the stack's ceiling beside the peer, in the same run",
    )
    ap.add_argument("--json-out", type=Path, help="results file [bench/results/<UTC timestamp>.json]")
    args = ap.parse_args(argv)
    if args.duration <= 0.5 or args.warmup < 0:
        ap.error("need --duration > 0.5 and --warmup >= 0")
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
