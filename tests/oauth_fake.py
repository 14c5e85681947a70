"""A fake OAuth 2.0 token endpoint on 127.0.0.1, and a test CRM whose users connect with it.

The endpoint follows RFC 6749 (sections 4.1.3, 5.1 and 5.2, token request, response and
error) and RFC 7009 (revocation), as CRMs' token endpoints do: form-encoded requests, the
client authenticated with HTTP Basic, JSON answers. It counts what it was asked, can be
slowed down, can leave out the refresh token (a CRM that does not rotate it), and answers
`invalid_grant` for refresh tokens it was told are revoked.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs

from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    FindContactResult,
    JsonDict,
    LogContact,
    LogResult,
    MessageLogInput,
    OAuthCrmClient,
    OAuthInfo,
    OAuthTokens,
    UpdateLogResult,
    UserInfoResult,
)
from connector.models import CrmUser

CLIENT_ID, CLIENT_SECRET = "fake-client-id", "fake-client-secret"
REDIRECT_URI = "https://ringcentral.github.io/ringcentral-embeddable/redirect.html"


class TokenEndpoint:
    """What the fake endpoint does and what it saw (shared by its handler threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.refreshes = 0
        self.exchanges = 0
        self.revocations: list[dict[str, str]] = []
        self.delay = 0.0
        self.rotate = True  # send a new refresh token with each refresh
        self.revoked: set[str] = set()
        self.codes = {"good-code": "user-1"}
        # client id -> secret of the OAuth apps it knows (an account's own app is added)
        self.clients = {CLIENT_ID: CLIENT_SECRET}
        self.clients_seen: list[str] = []
        self.on_refresh: Any = None  # called before answering a refresh (tests' hook)

    def answer(self, path: str, form: dict[str, str], auth: str) -> tuple[int, JsonDict]:
        client_id, _, secret = base64.b64decode(auth.removeprefix("Basic ") or b"").decode().partition(":")
        if not auth.startswith("Basic ") or self.clients.get(client_id) != secret:
            return 401, {"error": "invalid_client"}
        with self.lock:
            self.clients_seen.append(client_id)
        if path == "/oauth/revoke":
            with self.lock:
                self.revocations.append(form)
            return 200, {}
        grant = form.get("grant_type")
        if grant == "authorization_code":
            if form.get("code") not in self.codes or form.get("redirect_uri") != REDIRECT_URI:
                return 400, {"error": "invalid_grant"}
            with self.lock:
                self.exchanges += 1
            return 200, {
                "access_token": "at-0",
                "refresh_token": "rt-0",
                "expires_in": 3600,
                "token_type": "bearer",
            }
        if grant == "refresh_token":
            if self.on_refresh is not None:
                self.on_refresh(form)
            if form.get("refresh_token") in self.revoked:
                return 400, {"error": "invalid_grant", "error_description": "refresh token revoked"}
            with self.lock:
                self.refreshes += 1
                n = self.refreshes
            time.sleep(self.delay)
            token: JsonDict = {"access_token": f"at-{n}", "expires_in": 3600, "token_type": "bearer"}
            if self.rotate:
                token["refresh_token"] = f"rt-{n}"
            return 200, token
        return 400, {"error": "unsupported_grant_type"}


@contextmanager
def token_endpoint() -> Iterator[tuple[str, TokenEndpoint]]:
    """The fake endpoint served on a free loopback port: (its base URL, its state)."""
    state = TokenEndpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            status, body = state.answer(self.path, form, self.headers.get("Authorization", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


class OAuthTestCrm(OAuthCrmClient):
    """A CRM whose users connect with OAuth at `token_url` (set by the test). Its contact
    lookup answers with the access token it was called with, so a test sees which token a
    CRM call carried; nothing else of it is used."""

    token_url: ClassVar[str] = ""
    # what oauth_user_info answers: a user id, or None to refuse the login
    user_id: ClassVar[str | None] = "crm-user-1"

    def manifest(self) -> JsonDict:
        return {
            "name": self.platform,
            "auth": {"type": "oauth", "oauth": self.manifest_oauth()},
            "contactTypes": [],
        }

    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        return OAuthInfo(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            token_url=f"{self.token_url}/oauth/token",
            redirect_uri=REDIRECT_URI,
            auth_url="https://crm.example.test/oauth/authorize",
            scope="scope=contacts",
            revoke_url=f"{self.token_url}/oauth/revoke",
        )

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        return UserInfoResult(successful=True, user_id=f"crm-user-1-{self.platform}", name="Olive OAuth")

    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        if self.user_id is None:
            return UserInfoResult(
                successful=False,
                return_message={"message": "No CRM user", "messageType": "warning", "ttl": 3000},
            )
        return UserInfoResult(
            successful=True,
            user_id=f"{self.user_id}-{self.platform}",
            name="Olive OAuth",
            platform_additional_info={"seenAccessToken": tokens.access_token[:4], **query},
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        info = self.oauth_info_for_user(user)
        self.oauth_revoke(info=info, token=user.refresh_token or "", token_type_hint="refresh_token")
        return {"message": "Logged out", "messageType": "success", "ttl": 1000}

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        token = self.bearer(user)["Authorization"].removeprefix("Bearer ")
        return FindContactResult(
            successful=True, contacts=[{"id": token, "name": "seen"}, dict(NEW_CONTACT_OPTION)]
        )

    def create_contact(self, **kwargs: Any) -> CreateContactResult:
        raise NotImplementedError

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        raise NotImplementedError

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        raise NotImplementedError

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        raise NotImplementedError
