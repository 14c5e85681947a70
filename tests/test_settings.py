"""Settings read from the environment: each case imports config.settings in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The variables these tests set; the caller's own values must not leak in.
OURS = {
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "DB_PREPARE_THRESHOLD",
    "CRM_PLATFORMS_EXTRA",
    "WEB_WORKER_CLASS",
    "DB_POOL_MAX_SIZE",
    "WEB_THREADS",
    "CONN_HEALTH_CHECKS",
}


def settings_value(expression: str, **env: str) -> subprocess.CompletedProcess:
    """Import config.settings in a new process with `env` and print `expression` as JSON."""
    environ = {k: v for k, v in os.environ.items() if k not in OURS}
    environ.update({"DEBUG": "true", "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/unused", **env})
    return subprocess.run(
        [sys.executable, "-c", f"import json; from config import settings; print(json.dumps({expression}))"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def load_settings(**env: str) -> subprocess.CompletedProcess:
    return settings_value("settings.DATABASES['default']['OPTIONS']", **env)


def print_platforms(**env: str) -> subprocess.CompletedProcess:
    return settings_value("settings.CONNECTOR['PLATFORMS']", **env)


def test_postgresql_prepares_statements_by_default():
    done = load_settings()
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout)
    assert options["server_side_binding"] is True
    assert options["prepare_threshold"] == 5


SERVING = (
    "[settings.DATABASES['default']['OPTIONS'].get('pool'), settings.DATABASES['default']['CONN_MAX_AGE'],"
    " settings.CONNECTOR['DB_RELEASE_FOR_CRM_CALLS'], settings.CONNECTOR['OUTBOUND_POOL_MAXSIZE']]"
)


def test_gevent_workers_take_connections_from_a_pool_and_give_them_back_for_crm_calls():
    done = settings_value(SERVING, WEB_WORKER_CLASS="gevent")
    assert done.returncode == 0, done.stderr
    pool, conn_max_age, release, outbound = json.loads(done.stdout)
    assert (pool["max_size"], pool["min_size"], conn_max_age) == (40, 2, 0)
    assert release is True  # a greenlet per open client connection: many more than 40
    assert outbound == 256


def test_gthread_workers_keep_a_connection_per_thread_unless_given_a_pool():
    done = settings_value(SERVING, WEB_WORKER_CLASS="gthread", WEB_THREADS="40")
    assert done.returncode == 0, done.stderr
    pool, _, release, outbound = json.loads(done.stdout)
    assert (pool, release, outbound) == (None, False, 40)
    done = settings_value(SERVING, WEB_WORKER_CLASS="gthread", WEB_THREADS="40", DB_POOL_MAX_SIZE="8")
    assert done.returncode == 0, done.stderr
    pool, _, release, _ = json.loads(done.stdout)
    assert (pool["max_size"], release) == (8, True)


def test_postgresql_runs_on_the_backend_that_checks_pooled_connections_without_a_round_trip():
    expression = "[settings.DATABASES['default'][key] for key in ('ENGINE', 'CONN_HEALTH_CHECKS')]"
    done = settings_value(expression, WEB_WORKER_CLASS="gevent")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["connector.postgresql", False]
    done = settings_value(expression, WEB_WORKER_CLASS="gevent", CONN_HEALTH_CHECKS="true")
    assert json.loads(done.stdout) == ["connector.postgresql", True]  # the empty query as well
    done = settings_value(expression, DATABASE_URL="sqlite:////tmp/unused.sqlite3")
    assert json.loads(done.stdout) == ["django.db.backends.sqlite3", False]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DB_POOL_MAX_SIZE": "0"}, "gevent workers need a connection pool: DB_POOL_MAX_SIZE must be"),
        ({"DATABASE_URL": "sqlite:////tmp/unused.sqlite3"}, "gevent workers need PostgreSQL"),
        ({"WEB_WORKER_CLASS": "sync"}, "WEB_WORKER_CLASS must be gevent or gthread."),
    ],
)
def test_settings_gevent_cannot_serve_stop_the_server(env, message):
    done = settings_value("1", **{"WEB_WORKER_CLASS": "gevent", **env})
    assert done.returncode != 0
    assert message in done.stderr


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("12", 12), ("off", None), (" OFF ", None)])
def test_prepare_threshold_is_configurable(value, expected):
    done = load_settings(DB_PREPARE_THRESHOLD=value)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["prepare_threshold"] == expected


@pytest.mark.parametrize("value", ["five", "-1", ""])
def test_a_bad_prepare_threshold_stops_the_server(value):
    done = load_settings(DB_PREPARE_THRESHOLD=value)
    assert done.returncode != 0
    assert "DB_PREPARE_THRESHOLD must be a whole number or 'off'." in done.stderr


def test_sqlite_is_not_given_postgresql_options():
    done = load_settings(DATABASE_URL="sqlite:////tmp/unused.sqlite3")
    assert done.returncode == 0, done.stderr
    options = json.loads(done.stdout)
    assert "prepare_threshold" not in options
    assert "server_side_binding" not in options


def test_extra_crm_platforms_come_from_the_environment():
    done = print_platforms(
        CRM_PLATFORMS_EXTRA="acme=acme.crm.AcmeClient, memory = memory_crm.MemoryCrmClient"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "builtin": "connector.crm.builtin.BuiltinCrmClient",
        "pipedrive": "connector.crm.pipedrive.PipedriveCrmClient",
        "hubspot": "connector.crm.hubspot.HubspotCrmClient",
        "clio": "connector.crm.clio.ClioCrmClient",
        "acme": "acme.crm.AcmeClient",
        "memory": "memory_crm.MemoryCrmClient",
    }


@pytest.mark.parametrize("value", ["acme", "=acme.crm.AcmeClient", "acme="])
def test_a_bad_extra_crm_platform_stops_the_server(value):
    done = print_platforms(CRM_PLATFORMS_EXTRA=value)
    assert done.returncode != 0
    assert "is not name=dotted.path.ToClient" in done.stderr
