"""A small HTTP server on 127.0.0.1 that plays a CRM's API in tests.

A fake registers routes (method and path pattern) whose handlers answer as the vendor's
public API documentation shows; the server records every request it was sent (method,
path, query, headers, body), so a test can assert what a flow asked of the CRM, and can
be told to misbehave: answer a route with a given reply a number of times (a 429 with
`Retry-After`, a 500, a 401), or wait before answering (a CRM that times out).

It also carries an OAuth 2.0 token endpoint (RFC 6749 §4.1.3, §5.1, §5.2; RFC 7009 for
revocation) that CRMs' token endpoints follow: `OAuthEndpoint`.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JsonDict = dict[str, Any]


@dataclass
class Seen:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}

    def line(self) -> str:
        """`METHOD /path?query` as the closing notes show requests."""
        query = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")

    def summary(self, width: int = 220) -> str:
        """`line()` with the body's fields (a form's values hidden where they are secrets)."""
        if not self.body:
            return self.line()
        if "json" in self.headers.get("content-type", ""):
            fields = json.dumps(self.json, separators=(",", ":"))
        else:
            fields = "&".join(
                f"{k}={'…' if k in ('client_secret', 'code', 'refresh_token', 'token') else v}"
                for k, v in self.form.items()
            )
        text = f"{self.line()}  {fields}"
        return text if len(text) <= width else text[: width - 1] + "…"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-serialisable, or bytes sent as they are
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


Handler = Callable[[Seen, "re.Match[str]"], Reply]


@dataclass
class _Fault:
    method: str
    pattern: re.Pattern[str]
    reply: Reply
    times: int


class FakeApi:
    """Routes, the requests seen, and the faults planned; shared by the handler threads."""

    def __init__(self) -> None:
        # reentrant: a route handler holding it may call next_id()
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.seen: list[Seen] = []
        self.faults: list[_Fault] = []
        self.delay = 0.0  # every answer waits this long (seconds)
        self._ids = itertools.count(1001)

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def route(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        """Register `handler` for `method` and a path matching `pattern` (full match)."""

        def register(handler: Handler) -> Handler:
            self.routes.append((method.upper(), re.compile(pattern), handler))
            return handler

        return register

    def fail(self, method: str, pattern: str, reply: Reply, *, times: int = 1) -> None:
        """Answer the next `times` requests matching with `reply` instead of the route."""
        with self.lock:
            self.faults.append(_Fault(method.upper(), re.compile(pattern), reply, times))

    def requests(self, method: str | None = None, pattern: str | None = None) -> list[Seen]:
        """The requests seen, optionally only those of `method` whose path matches `pattern`."""
        with self.lock:
            seen = list(self.seen)
        return [
            r
            for r in seen
            if (method is None or r.method == method.upper())
            and (pattern is None or re.fullmatch(pattern, r.path))
        ]

    def answer(self, request: Seen) -> Reply:
        with self.lock:
            self.seen.append(request)
            for fault in self.faults:
                if (
                    fault.times > 0
                    and fault.method == request.method
                    and fault.pattern.fullmatch(request.path)
                ):
                    fault.times -= 1
                    return fault.reply
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, match)
        return Reply(404, {"error": f"no route for {request.method} {request.path}"})


@contextmanager
def serve(api: FakeApi) -> Iterator[str]:
    """Serve `api` on a free loopback port for the duration; yields its base URL."""

    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Seen(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            reply = api.answer(request)
            wait = reply.delay or api.delay
            if wait:
                time.sleep(wait)
            data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), RequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def served(fake: Any, settings: Any, *, app_key: str = "", **connector: Any) -> Iterator[str]:
    """Serve a CRM fake (`fake.api`) on loopback and point our settings at it, through
    pytest-django's `settings`: OUTBOUND_HOST_MAP sends the fake's `hosts` there, and its
    OAuth app is configured under `app_key` (default: the fake's `oauth_app_key`); other
    CONNECTOR values may be given. Yields the fake's base URL."""
    with serve(fake.api) as base_url:
        apps = {
            **settings.CONNECTOR["OAUTH_APPS"],
            app_key or fake.oauth_app_key: {"client_id": fake.client_id, "client_secret": fake.client_secret},
        }
        settings.CONNECTOR = {
            **settings.CONNECTOR,
            "OUTBOUND_HOST_MAP": {host: base_url for host in fake.hosts},
            "OAUTH_APPS": apps,
            **connector,
        }
        yield base_url


class OAuthEndpoint:
    """An OAuth 2.0 token endpoint (and revocation) mounted on a `FakeApi`.

    Authorization codes in `codes` map to a CRM user id; each exchange or refresh issues
    `at-<n>` / `rt-<n>`. `client_auth` is "basic" (client_secret_basic, App Connect's
    default) or "body" (client_id and client_secret in the form, as HubSpot's v3 endpoint
    wants). Refresh tokens in `revoked` are answered `invalid_grant`; with `rotate` off no
    new refresh token is sent; `refresh_delay` slows refreshes down (a race's window).
    """

    def __init__(
        self,
        api: FakeApi,
        *,
        token_path: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        client_auth: str = "basic",
        revoke_path: str | None = None,
        expires_in: int = 3600,
        extra: JsonDict | None = None,
    ) -> None:
        self.api = api
        self.client_id, self.client_secret = client_id, client_secret
        self.redirect_uri = redirect_uri
        self.client_auth = client_auth
        self.expires_in = expires_in
        self.extra = extra or {}  # more fields of the token response (Pipedrive's api_domain)
        self.codes: dict[str, str] = {}
        self.revoked: set[str] = set()
        self.rotate = True
        self.refresh_delay = 0.0
        self.exchanges = 0
        self.refreshes = 0
        self.revocations: list[dict[str, str]] = []
        self._n = itertools.count(1)
        self.valid_access: set[str] = set()
        api.route("POST", re.escape(token_path))(self._token)
        if revoke_path:
            api.route("POST", re.escape(revoke_path))(self._revoke)

    def _client_ok(self, request: Seen) -> bool:
        if self.client_auth == "basic":
            expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            return request.headers.get("authorization") == f"Basic {expected}"
        form = request.form
        return form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret

    def _issue(self, *, refresh: bool) -> JsonDict:
        n = next(self._n)
        access = f"at-{n}"
        with self.api.lock:
            self.valid_access.add(access)
        token: JsonDict = {"access_token": access, "token_type": "Bearer", "expires_in": self.expires_in}
        if refresh:
            token["refresh_token"] = f"rt-{n}"
        return {**token, **self.extra}

    def _token(self, request: Seen, match: re.Match[str]) -> Reply:
        if not self._client_ok(request):
            return Reply(401, {"error": "invalid_client"})
        form = request.form
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if form.get("code") not in self.codes or form.get("redirect_uri") != self.redirect_uri:
                return Reply(400, {"error": "invalid_grant", "error_description": "bad code or redirect_uri"})
            with self.api.lock:
                self.exchanges += 1
            return Reply(200, self._issue(refresh=True))
        if grant == "refresh_token":
            if form.get("refresh_token") in self.revoked:
                return Reply(400, {"error": "invalid_grant", "error_description": "refresh token revoked"})
            with self.api.lock:
                self.refreshes += 1
            return Reply(200, self._issue(refresh=self.rotate), delay=self.refresh_delay)
        return Reply(400, {"error": "unsupported_grant_type"})

    def _revoke(self, request: Seen, match: re.Match[str]) -> Reply:
        with self.api.lock:
            self.revocations.append(request.form)
            self.valid_access.discard(request.form.get("token", ""))
        return Reply(200, {})

    def bearer_ok(self, request: Seen) -> bool:
        """Whether the request carries an access token this endpoint issued."""
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self.api.lock:
            return token in self.valid_access
