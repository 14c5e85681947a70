"""The one outbound HTTP layer every CRM client uses: typed errors, safe retries, host map.

A 429 is tried again after its Retry-After when that is short (the CRM processed nothing,
so even a write is safe); a longer one goes up at once with its `retry_after`. A read the
CRM failed to serve is tried again; a write never is. OUTBOUND_HOST_MAP sends a host's
requests to another base URL (a sandbox, or a fake on 127.0.0.1).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import responses

from connector.crm.base import CrmRateLimited, CrmRejected, CrmUnavailable
from tests.fakes import BareHttpCrmClient

URL = "https://api.example-crm.test/v1/persons"


@pytest.fixture
def client(settings) -> BareHttpCrmClient:
    settings.CONNECTOR = {
        **settings.CONNECTOR,
        "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
        "OUTBOUND_ATTEMPTS": 3,
    }
    return BareHttpCrmClient("example")


def answers(*replies: tuple[int, dict[str, str]]) -> None:
    for status, headers in replies:
        responses.add(responses.Response(responses.GET, URL, status=status, headers=headers, json={}))
        responses.add(responses.Response(responses.POST, URL, status=status, headers=headers, json={}))


@responses.activate
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_429_with_a_short_retry_after_is_sent_again_whatever_the_method(client, method: str) -> None:
    answers((429, {"Retry-After": "0"}), (200, {}))

    assert client.request(method, URL).status_code == 200

    assert [call.request.method for call in responses.calls] == [method, method]


@responses.activate
def test_a_429_with_a_long_retry_after_goes_up_at_once_with_it(client) -> None:
    answers((429, {"Retry-After": "120", "X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "80"}))

    with pytest.raises(CrmRateLimited) as raised:
        client.request("GET", URL)

    assert raised.value.retry_after == 120
    assert raised.value.limits == {
        "retry-after": "120",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-limit": "80",
    }
    assert len(responses.calls) == 1


@responses.activate
def test_a_retry_after_written_as_a_date_is_read(client) -> None:
    answers((429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), (200, {}))

    assert client.request("GET", URL).status_code == 200  # a date in the past: no wait


@responses.activate
def test_a_read_the_crm_failed_to_serve_is_tried_again_up_to_the_limit(client) -> None:
    answers((503, {}), (503, {}), (503, {}), (200, {}))

    with pytest.raises(CrmUnavailable):
        client.request("GET", URL)

    assert len(responses.calls) == 3


@responses.activate
def test_a_read_served_on_the_second_try_succeeds(client) -> None:
    answers((502, {}), (200, {}))

    assert client.request("GET", URL).status_code == 200


@responses.activate
@pytest.mark.parametrize(("status", "uncertain"), [(503, False), (502, True), (500, True)])
def test_a_write_the_crm_failed_is_never_sent_again(client, status: int, uncertain: bool) -> None:
    answers((status, {}), (201, {}))

    with pytest.raises(CrmUnavailable) as raised:
        client.request("POST", URL, json={"name": "Jane"})

    assert len(responses.calls) == 1
    assert raised.value.uncertain is uncertain  # 502/500: the CRM may have created it


@responses.activate
def test_a_write_whose_answer_timed_out_is_not_sent_again_and_may_have_happened(client) -> None:
    responses.add(responses.POST, URL, body=requests.ReadTimeout("read timed out"))

    with pytest.raises(CrmUnavailable) as raised:
        client.request("POST", URL, json={"name": "Jane"})

    assert raised.value.uncertain is True
    assert len(responses.calls) == 1


@responses.activate
def test_a_refusal_is_not_tried_again(client) -> None:
    answers((422, {}), (200, {}))

    with pytest.raises(CrmRejected):
        client.request("GET", URL)

    assert len(responses.calls) == 1


# --- OUTBOUND_HOST_MAP, over loopback ----------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    """Answers with the path, query and Host it was asked for."""

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_crm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_host_map_sends_a_crm_host_to_the_fake_with_path_and_query(settings, fake_crm: str) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "OUTBOUND_HOST_MAP": {"api.example-crm.test": fake_crm + "/"}}
    client = BareHttpCrmClient("example")

    answer = client.request(
        "GET", "https://API.example-crm.test/v1/persons/search?term=%2B1415&limit=5"
    ).json()

    assert answer["path"] == "/v1/persons/search?term=%2B1415&limit=5"
    assert answer["host"] == fake_crm.removeprefix("http://")


def test_hosts_not_in_the_map_are_left_alone(settings, fake_crm: str) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "OUTBOUND_HOST_MAP": {"api.example-crm.test": fake_crm}}
    client = BareHttpCrmClient("example")

    assert client.request("GET", f"{fake_crm}/direct").json()["path"] == "/direct"


@pytest.mark.parametrize(
    "entry", ["api.hubapi.com", "api.hubapi.com=ftp://x", "=http://127.0.0.1:1", "a/b=http://x"]
)
def test_a_bad_host_map_entry_stops_the_server_from_starting(entry: str) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "OUTBOUND_HOST_MAP": entry, "PATH": ""},
        capture_output=True,
        text=True,
    )

    assert done.returncode != 0
    assert "OUTBOUND_HOST_MAP" in done.stderr


@responses.activate
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_never_followed_so_no_header_goes_to_another_host(client, status: int) -> None:
    responses.add(
        responses.GET, URL, status=status, headers={"Location": "https://collector.example.test/steal"}
    )
    responses.add(responses.GET, "https://collector.example.test/steal", json={})

    with pytest.raises(CrmRejected, match=f"redirected the request \\(HTTP {status}\\)"):
        client.request("GET", URL, headers={"X-Secret-Key": "partner-secret"})

    assert [call.request.url for call in responses.calls] == [URL]
