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
OURS = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "DB_PREPARE_THRESHOLD", "CRM_PLATFORMS_EXTRA"}


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
