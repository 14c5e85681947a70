"""What the threads of one server process share is safe to share, under real concurrency.

A gthread worker serves many requests at once from one process (config/gunicorn.conf.py):
they share the CRM registry and its clients, each client's HTTP session, the cache of
verified JWTs and the rules cache. Each test here starts many threads at once (a barrier
releases them together) on one of those and checks every answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from connector.api.authentication import _decode, jwt_encode
from connector.crm.registry import crm_registry
from connector.models import CrmUser
from rules.models import RuleSetting
from rules.selectors import rule_values_get
from rules.services import rules_cache_clear
from tests.concurrency import concurrently
from tests.fakes import BareHttpCrmClient

THREADS = 32


def test_every_thread_gets_the_same_client_of_a_platform() -> None:
    crm_registry.reload()

    clients = concurrently(THREADS, lambda i: crm_registry.get("builtin"))

    assert len({id(client) for client in clients}) == 1


def test_verified_tokens_are_cached_safely_across_threads() -> None:
    tokens = [jwt_encode(user_id=f"user-{i % 8}-builtin", platform="builtin") for i in range(THREADS)]
    forged = tokens[0][:-4] + ("AAAA" if not tokens[0].endswith("AAAA") else "BBBB")

    def decode(i: int) -> tuple[str | None, str | None]:
        identity, rejected = _decode(tokens[i]), _decode(forged)
        return (identity.user_id if identity else None), rejected

    results = concurrently(THREADS, decode)

    assert [user_id for user_id, _ in results] == [f"user-{i % 8}-builtin" for i in range(THREADS)]
    assert all(rejected is None for _, rejected in results)


@pytest.mark.django_db(transaction=True)
def test_rule_reads_racing_a_rule_change_see_the_old_or_the_new_value(crm_user: CrmUser) -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="prompt", customizable=False)
    rules_cache_clear()
    assert rule_values_get(user=crm_user).unknown_contact_action == "prompt"  # now cached
    # The admin's change is in the database; the cache still holds the old rows until one
    # thread, in the middle of the others' reads, drops it.
    RuleSetting.objects.filter(key="unknownContactAction").update(value="createPlaceholder")

    def read_or_drop(i: int) -> str:
        if i == THREADS // 2:
            rules_cache_clear()
        return rule_values_get(user=crm_user).unknown_contact_action

    seen = concurrently(THREADS, read_or_drop)

    assert set(seen) <= {"prompt", "createPlaceholder"}
    assert rule_values_get(user=crm_user).unknown_contact_action == "createPlaceholder"


class _Echo(BaseHTTPRequestHandler):
    """Answers each GET with the path and the Authorization header it got, and sets a cookie."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "auth": self.headers.get("Authorization")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Set-Cookie", f"session={self.path}")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_one_http_session_serves_many_threads_each_with_its_own_credentials(
    echo_server: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = BareHttpCrmClient("echo")
    caplog.set_level(logging.WARNING, logger="urllib3")

    def call(i: int) -> list[dict[str, Any]]:
        return [
            client.request(
                "GET", f"{echo_server}/t{i}/{n}", headers={"Authorization": f"Bearer user-{i}"}
            ).json()
            for n in range(3)
        ]

    answers = concurrently(THREADS, call)

    for i, calls in enumerate(answers):
        assert calls == [{"path": f"/t{i}/{n}", "auth": f"Bearer user-{i}"} for n in range(3)]
    assert not [r for r in caplog.records if "Connection pool is full" in r.getMessage()]
    assert len(client.session.cookies) == 0  # no user's cookie rides along with another's call
