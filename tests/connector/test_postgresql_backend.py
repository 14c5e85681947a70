"""Pooled PostgreSQL connections are checked when taken, without a round trip
(connector/postgresql): one the server closed while it sat in the pool is replaced, and a
healthy one is handed out without a word sent to the server."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper as DjangoWrapper

from connector.postgresql.base import DatabaseWrapper

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db]


def pooled(wrapper_class: type[DjangoWrapper], alias: str, size: int) -> DjangoWrapper:
    settings_dict = {
        **connection.settings_dict,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,  # no empty query on checkout: only the backend's own check
        "OPTIONS": {**connection.settings_dict["OPTIONS"], "pool": {"min_size": size, "max_size": size}},
    }
    return wrapper_class(settings_dict, alias=alias)


@pytest.fixture
def wrappers() -> Iterator[list[DjangoWrapper]]:
    """The pooled wrappers a test made; their pools are closed afterwards."""
    made: list[DjangoWrapper] = []
    yield made
    for wrapper in made:
        wrapper.close()
        wrapper.close_pool()


@pytest.fixture
def ours(wrappers) -> DjangoWrapper:
    wrappers.append(pooled(DatabaseWrapper, "pool_ours", 2))
    return wrappers[-1]


@pytest.fixture
def djangos(wrappers) -> DjangoWrapper:
    wrappers.append(pooled(DjangoWrapper, "pool_django", 1))
    return wrappers[-1]


def backend_pid(wrapper: DjangoWrapper) -> int:
    with wrapper.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def pooled_pids(wrapper: DjangoWrapper) -> set[int]:
    """Take every connection of the pool once (holding them all), then give them back."""
    wrapper.pool.open()
    raws = [wrapper.pool.getconn() for _ in range(wrapper.pool.max_size)]
    pids = {raw.info.backend_pid for raw in raws}
    for raw in raws:
        wrapper.pool.putconn(raw)
    return pids


def terminate(pids: set[int]) -> None:
    """Terminate those server processes from the test's own connection, and wait until
    they are gone (their goodbye is then on the pooled connections' sockets)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [list(pids)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            # the test's transaction would otherwise keep reading its first snapshot
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
            if cursor.fetchone()[0] == 0:
                return
            time.sleep(0.05)
    raise AssertionError(f"server processes {pids} still alive")


def test_a_connection_the_server_closed_in_the_pool_is_replaced_when_taken(ours) -> None:
    first = backend_pid(ours)
    ours.close()  # back to the pool
    terminate(pooled_pids(ours))

    second = backend_pid(ours)

    assert second != first


def test_the_same_closed_connection_fails_the_request_with_djangos_backend_unchecked(djangos) -> None:
    """The case above is a real failure: without a check, the statement meets the
    closed connection."""
    backend_pid(djangos)
    djangos.close()
    terminate(pooled_pids(djangos))

    with pytest.raises(OperationalError) as failure:
        backend_pid(djangos)

    assert isinstance(failure.value.__cause__, psycopg.OperationalError)


def test_every_connection_closed_at_once_still_gives_a_working_one(ours) -> None:
    before = pooled_pids(ours)
    assert len(before) == 2
    terminate(before)

    assert backend_pid(ours) not in before


def test_a_healthy_connection_is_taken_without_a_message_to_the_server(ours) -> None:
    backend_pid(ours)
    raw: Any = ours.connection
    ours.close()
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "libpq.trace"
        with trace.open("w") as out:
            raw.pgconn.trace(out.fileno())
            try:
                # With both connections of the pool idle, take one until it is the traced one.
                for _ in range(4):
                    ours.ensure_connection()
                    if ours.connection is raw:
                        break
                    ours.close()
                assert ours.connection is raw
                taken = trace.read_text()
                backend_pid(ours)
                used = trace.read_text()
            finally:
                raw.pgconn.untrace()

    sent = re.compile(r"(^|\t)F\t")  # a message from us (F: frontend) to the server
    assert [line for line in taken.splitlines() if sent.search(line)] == []
    assert any(sent.search(line) for line in used.splitlines())  # the trace does see what we send
