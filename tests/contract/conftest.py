"""Shared pieces of the contract suite: the app in process, a connected session, and our checks.

Both contract tests fuzz the real WSGI application (no socket, no server) with schemathesis:
`test_own_schema.py` against the schema we publish, `test_appconnect_openapi.py` against
App Connect's own public OpenAPI, limited to `SERVED_OPERATIONS`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.db import connection
from requests.structures import CaseInsensitiveDict
from rest_framework.fields import ProhibitNullCharactersValidator

from connector.api.authentication import JWT_LIFETIME_SECONDS, JWT_REFRESH_WINDOW_SECONDS, jwt_encode
from connector.services import builtin_api_key_create, crm_user_login_with_api_key

# The App Connect operations we serve, as (method, path) in App Connect's OpenAPI. Serving
# another one? Add its line: test_appconnect_openapi.py then fuzzes it against that document,
# and fails while our schema has an App Connect operation that is missing here.
SERVED_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/isAlive"),
        ("GET", "/crmManifest"),
        ("GET", "/implementedInterfaces"),
        ("GET", "/oauth-callback"),
        ("POST", "/apiKeyLogin"),
        ("GET", "/authValidation"),
        ("POST", "/unAuthorize"),
        ("GET", "/contact"),
        ("POST", "/contact"),
        ("GET", "/custom/contact/search"),
        ("POST", "/callLog"),
        ("GET", "/callLog"),
        ("PATCH", "/callLog"),
        ("POST", "/callLog/cacheNote"),
        ("POST", "/messageLog"),
        ("GET", "/user/settings"),
        ("POST", "/user/settings"),
        ("GET", "/user/preloadSettings"),
        ("GET", "/admin/settings"),
        ("POST", "/admin/settings"),
        ("GET", "/admin/serverLoggingSettings"),
        ("POST", "/admin/serverLoggingSettings"),
    }
)

# Operations that leave the session without CRM credentials; the session logs in again after
# them, so the cases generated after them still reach the connected code paths.
SESSION_ENDING_OPERATIONS: frozenset[tuple[str, str]] = frozenset({("POST", "/unAuthorize")})

# The same cases on every run and on both databases, and the contract suite in well under two
# minutes per database. `function_scoped_fixture` is suppressed on purpose: `contract_session`
# is meant to be shared by all the inputs generated for an operation, as one App Connect
# client session lasts many requests.
CONTRACT_SETTINGS = hypothesis.settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)

# Failure reports show requests exactly as sent (session ids, tokens): the tokens are signed
# with the test-only secret and name a user of a throwaway test database. An explicit config
# also keeps a stray schemathesis.toml from changing what these tests check.
SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "output": {"sanitization": {"enabled": False}},
        "generation": {"with-security-parameters": False, "unique-inputs": True},
    }
)
# Our schema types every known setting (about 70) in the settings maps: there the coverage
# phase would send hundreds of boundary cases per map, minutes per run. Their values are
# still fuzzed in the other phases; the coverage phase runs on every other operation.
OWN_SCHEMATHESIS_CONFIG = schemathesis.Config.from_dict(
    {
        "output": {"sanitization": {"enabled": False}},
        "generation": {"with-security-parameters": False, "unique-inputs": True},
        "operations": [
            {"include-path": path, "phases": {"coverage": {"enabled": False}}}
            for path in ("/admin/settings", "/user/settings")
        ],
    }
)

# The project's WSGI application, and our schema exactly as it serves it. Module level, as
# schemathesis builds its tests at collection (when no test database is needed: serving the
# schema reads none).
WSGI_APP = get_wsgi_application()
OWN_SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/", WSGI_APP, config=OWN_SCHEMATHESIS_CONFIG)

APPCONNECT_OPENAPI_ENV = "APPCONNECT_OPENAPI"
PROJECT_ROOT = Path(__file__).resolve().parents[2]

# The RingCentral admin the fake RingCentral API (below) recognises.
RC_ADMIN_TOKEN = "contract-rc-admin-token"
RC_ACCOUNT_ID = "48260013"


def operation_key(case: schemathesis.Case) -> tuple[str, str]:
    return case.operation.method.upper(), case.operation.path


def appconnect_openapi_find() -> tuple[Path | None, str]:
    """App Connect's public OpenAPI: `$APPCONNECT_OPENAPI`, else `<project>/../shared/spec/`,
    else `/work/shared/spec/`. Returns `(path, "")`, or `(None, why not)`; callers fail on None."""
    configured = os.environ.get(APPCONNECT_OPENAPI_ENV)
    if configured:
        if Path(configured).is_file():
            return Path(configured), ""
        return None, f"{APPCONNECT_OPENAPI_ENV}={configured} does not name a file."
    candidates = (
        PROJECT_ROOT.parent / "shared" / "spec" / "appconnect-openapi.json",
        Path("/work/shared/spec/appconnect-openapi.json"),
    )
    for candidate in candidates:
        if candidate.is_file():
            return candidate, ""
    return None, (
        "App Connect's public OpenAPI (appconnect-openapi.json) is required for the conformance "
        f"tests and was not found at {' or '.join(map(str, candidates))}; "
        f"set {APPCONNECT_OPENAPI_ENV} to its path."
    )


class ContractSession:
    """A built-in CRM user connected through the real login, and App Connect JWTs naming it.

    `authenticate(case)` replaces the credentials schemathesis generated from the security
    schemes, rotating through the ways App Connect's client sends them: `Authorization:
    Bearer` with `X-RC-Access-Token`; the legacy `jwtToken` and `rcAccessToken` query
    parameters; and a Bearer token close enough to expiry that every answer carries a
    refreshed one, without a RingCentral token.
    """

    def __init__(self, *, api_key: str, user_id: str) -> None:
        self.api_key = api_key
        self.user_id = user_id
        self.token = jwt_encode(user_id=user_id, platform="builtin")
        aged = JWT_LIFETIME_SECONDS - JWT_REFRESH_WINDOW_SECONDS + 24 * 3600
        self.refreshable_token = jwt_encode(user_id=user_id, platform="builtin", now=int(time.time()) - aged)
        self._forms: Iterator[str] = itertools.cycle(("bearer", "legacy-query", "bearer-refreshable"))

    def authenticate(self, case: schemathesis.Case) -> None:
        """Put real credentials on `case` itself, so failure reports reproduce it exactly."""
        headers = CaseInsensitiveDict(case.headers or {})
        query = dict(case.query or {})
        for generated in ("Authorization", "X-RC-Access-Token"):
            headers.pop(generated, None)
        for generated in ("jwtToken", "rcAccessToken"):
            query.pop(generated, None)
        form = next(self._forms)
        if form == "bearer":
            headers.update({"Authorization": f"Bearer {self.token}", "X-RC-Access-Token": RC_ADMIN_TOKEN})
        elif form == "legacy-query":
            query.update({"jwtToken": self.token, "rcAccessToken": RC_ADMIN_TOKEN})
        else:
            headers["Authorization"] = f"Bearer {self.refreshable_token}"
        case.headers = headers
        case.query = query

    def restore_after(self, case: schemathesis.Case) -> None:
        """Log in again when `case` ended the session (see SESSION_ENDING_OPERATIONS)."""
        if operation_key(case) in SESSION_ENDING_OPERATIONS:
            _builtin_login(self.api_key)


def _builtin_login(api_key: str) -> str:
    outcome = crm_user_login_with_api_key(
        platform="builtin", api_key=api_key, hostname="", additional_info={}
    )
    return outcome.user_id


class _FakeRingCentralHandler(BaseHTTPRequestHandler):
    """`GET /restapi/v1.0/account/~/extension/~`: the admin for RC_ADMIN_TOKEN, 401 otherwise."""

    def do_GET(self) -> None:
        known = self.headers.get("Authorization") == f"Bearer {RC_ADMIN_TOKEN}"
        if self.path == "/restapi/v1.0/account/~/extension/~" and known:
            status, body = (
                200,
                {
                    "id": 101,
                    "name": "Contract Admin",
                    "account": {"id": RC_ACCOUNT_ID},
                    "permissions": {"admin": {"enabled": True}},
                },
            )
        else:
            status, body = 401, {"errorCode": "TokenInvalid", "message": "Invalid token"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: failures show in the assertions, not in access logs."""


@pytest.fixture(scope="session")
def fake_ringcentral_url() -> Iterator[str]:
    """A RingCentral API on 127.0.0.1 that knows one admin token. A real socket rather than a
    mocked `requests`, so tokens go through the same HTTP encoding as in production."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRingCentralHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def ringcentral(settings, fake_ringcentral_url: str) -> str:
    """Point the server's RingCentral calls at the fake (nothing leaves the machine)."""
    settings.CONNECTOR = {**settings.CONNECTOR, "RINGCENTRAL_SERVER": fake_ringcentral_url}
    return fake_ringcentral_url


@pytest.fixture
def persistent_db_connection(transactional_db) -> Iterator[None]:
    """Transactional, with one database connection kept across the test's requests.

    The app runs behind its real WSGI handler, which ends every request by closing stale
    connections, so each request commits on its own as in production (inside one test
    transaction that close would break the test). The test settings' CONN_MAX_AGE=0 would
    also reconnect for every request, which on PostgreSQL costs more than the requests
    themselves; production keeps connections (CONN_MAX_AGE=60), and so does this fixture.
    """
    previous = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = None
    connection.close()  # the next connection is opened with the setting above
    yield
    connection.settings_dict["CONN_MAX_AGE"] = previous
    connection.close()


@pytest.fixture
def contract_session(persistent_db_connection, ringcentral: str) -> ContractSession:
    """The built-in CRM user `contract`, connected through App Connect's API-key login."""
    _, api_key = builtin_api_key_create(name="contract")
    return ContractSession(api_key=api_key, user_id=_builtin_login(api_key))


# --- checks of our own ---------------------------------------------------------------------

# Refusals our schema cannot reasonably state: whether a string is a dialable number, and
# (on every string, as PostgreSQL cannot store it) a NUL character.
_PHONE_FIELD = re.compile(r"(^|\.)phoneNumber$")
_NUL_REFUSED = str(ProhibitNullCharactersValidator.message)


def _json_object(response: schemathesis.Response) -> dict[str, Any] | None:
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return None
    try:
        body = json.loads(response.content or b"null")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def error_answer_is_error_response(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """A JSON 400 or 401 is App Connect's `ErrorResponse` with a `returnMessage.message` the
    client can show, or the peer's `{"error": ...}` envelope of a thrown error (product bar:
    where we answer 400 for bad input the peer accepts, the body is JSON with returnMessage)."""
    if response.status_code not in (400, 401):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/json"):
        return None
    body = _json_object(response)
    assert body is not None, f"A JSON {response.status_code} answer must be a JSON object: {response.text!r}"
    if set(body) <= {"error", "successful"} and isinstance(body.get("error"), str):
        return None
    message = body.get("returnMessage")
    assert isinstance(message, dict) and isinstance(message.get("message"), str), (
        f"A JSON {response.status_code} answer must carry returnMessage.message "
        f"(App Connect's ErrorResponse), got: {response.text[:500]}"
    )
    return None


def schema_valid_input_is_accepted(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Input our schema allows is refused by our validation only for what no schema can state.

    Our validation answers 400 with a field-by-field `errors` map; the fields it names for
    schema-valid input may only be unparseable phone numbers or strings holding a NUL
    character. Any other field means our schema is looser than our validation. Answers
    without `errors` are the peer's vocabulary for verdicts from outside the request (the
    CRM refusing an API key, an unknown platform or account) and are left to the
    status-code and content-type checks.
    """
    if response.status_code != 400 or case.meta is None or not case.meta.generation.mode.is_positive:
        return None
    errors = (_json_object(response) or {}).get("errors")
    if not isinstance(errors, dict):
        return None
    stricter = sorted(
        field
        for field, messages in errors.items()
        if not _PHONE_FIELD.search(str(field)) and set(messages) != {_NUL_REFUSED}
    )
    assert not stricter, (
        f"Input our schema allows was refused for {', '.join(stricter)}: the schema should state "
        f"these constraints. Errors: {json.dumps(errors)[:500]}"
    )
    return None
