"""Helpers for tests that need real concurrency: threads released together, and the
production server (`gunicorn -c config/gunicorn.conf.py`) run on the test database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from django.conf import settings
from django.db import connections

ROOT = Path(__file__).resolve().parents[1]


def concurrently(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` for i in range(count) in threads released together (a barrier);
    their results, in order. Each thread closes its database connections when done."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = work(index)
        except BaseException as exc:  # reported below, with the thread's traceback lost otherwise
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_test_database_url(*, application_name: str) -> str:
    """DATABASE_URL of the PostgreSQL test database, its connections named so a test can
    find them in pg_stat_activity."""
    db = settings.DATABASES["default"]
    return (
        f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
        f"?application_name={application_name}"
    )


def server_env(**overrides: str) -> dict[str, str]:
    """The production server's environment: production settings (DEBUG off) with the test
    suite's secrets, so tokens minted by a test are valid there, and `overrides`."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "false",
        "SECRET_KEY": settings.SECRET_KEY,
        "APP_SERVER_SECRET_KEY": settings.APP_SERVER_SECRET_KEY,
        "HASH_KEY": settings.HASH_KEY,
        "ALLOWED_HOSTS": "127.0.0.1",
        "CACHE_URL": "locmemcache://",
        "CELERY_BROKER_URL": "",
        "PYTHONPATH": str(ROOT),  # test-only CRM connectors live in tests/
        **overrides,
    }


@contextmanager
def production_server(env: dict[str, str], *, log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`gunicorn -c config/gunicorn.conf.py config.wsgi:application` on a free loopback
    port with `env`, its output to `log`; yields (its URL, its process) once /isAlive
    answers, and stops it (SIGTERM, then SIGKILL) afterwards."""
    port = free_port()
    env = {**env, "WEB_BIND": f"127.0.0.1:{port}"}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(ROOT / ".venv/bin/gunicorn"), "-c", "config/gunicorn.conf.py", "config.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{url}/isAlive", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield url, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
