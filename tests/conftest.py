"""Shared fixtures: a built-in CRM user logged in through the real login service, and clients."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from config.handlers import ApiClientHandler
from connector.api.authentication import jwt_encode
from connector.models import CrmUser
from connector.services import builtin_api_key_create, crm_user_login_with_api_key
from tests.crm_fakes.ringcentral import RingCentralFake, served


class ApiClient:
    """A Django test client that speaks App Connect's API: JSON bodies, a JWT when given."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        # API paths run on the production API pipeline (config/handlers.py).
        self.client.handler = ApiClientHandler(enforce_csrf_checks=False)
        self.token = token

    def _headers(self, headers: dict[str, str] | None) -> dict[str, str]:
        merged = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"} if self.token else {}
        for name, value in (headers or {}).items():
            merged["HTTP_" + name.upper().replace("-", "_")] = value
        return merged

    def get(self, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        return self.client.get(path, params or {}, **self._headers(headers))

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None, raw: str | None = None
    ):
        data = raw if raw is not None else json.dumps(body if body is not None else {})
        return self.client.post(path, data, content_type="application/json", **self._headers(headers))

    def patch(self, path: str, body: Any = None, headers: dict[str, str] | None = None):
        return self.client.patch(
            path,
            json.dumps(body if body is not None else {}),
            content_type="application/json",
            **self._headers(headers),
        )


@pytest.fixture
def builtin_api_key(db) -> str:
    """A fresh API key of the built-in CRM user `alice`."""
    _, key = builtin_api_key_create(name="alice")
    return key


@pytest.fixture
def crm_user(builtin_api_key: str) -> CrmUser:
    """`alice` connected through App Connect's login (platform `builtin`)."""
    outcome = crm_user_login_with_api_key(
        platform="builtin", api_key=builtin_api_key, hostname="", additional_info={}
    )
    return CrmUser.objects.get(pk=outcome.user_id)


@pytest.fixture
def jwt_token(crm_user: CrmUser) -> str:
    return jwt_encode(user_id=crm_user.pk, platform=crm_user.platform)


@pytest.fixture
def api(jwt_token: str) -> ApiClient:
    """A client authenticated as `crm_user` with a Bearer token."""
    return ApiClient(jwt_token)


@pytest.fixture
def anon() -> ApiClient:
    """A client with no token."""
    return ApiClient()


@pytest.fixture
def login(db) -> Callable[..., tuple[CrmUser, ApiClient]]:
    """Connect another built-in CRM user: `login("bob")` -> (its CrmUser, an ApiClient as it).

    `platform` picks the App Connect platform the user logs in to (e.g. a test connector
    registered in `CONNECTOR["PLATFORMS"]` that reuses the built-in CRM's keys).
    """

    def _login(name: str, *, platform: str = "builtin") -> tuple[CrmUser, ApiClient]:
        _, key = builtin_api_key_create(name=name)
        outcome = crm_user_login_with_api_key(platform=platform, api_key=key, hostname="", additional_info={})
        user = CrmUser.objects.get(pk=outcome.user_id)
        return user, ApiClient(jwt_encode(user_id=user.pk, platform=platform))

    return _login


def call_body(
    *,
    session_id: str = "session-1",
    phone: str = "+14155550100",
    contact_id: str | None = None,
    direction: str = "Inbound",
    **extra: Any,
) -> dict[str, Any]:
    """A POST /callLog body as App Connect's client sends it."""
    party = {"phoneNumber": phone, "name": "Jane Caller"}
    agent = {"phoneNumber": "+16505550100", "extensionNumber": "101", "name": "Agent Smith"}
    body: dict[str, Any] = {
        "logInfo": {
            "id": f"cl-{session_id}",
            "sessionId": session_id,
            "telephonySessionId": f"t-{session_id}",
            "startTime": "2026-11-26T10:00:00.000Z",
            "duration": 65,
            "direction": direction,
            "result": "Accepted",
            "from": party if direction == "Inbound" else agent,
            "to": agent if direction == "Inbound" else party,
            "customSubject": "Inbound call from Jane",
        },
        "note": "Asked about pricing",
        "additionalSubmission": {},
    }
    if contact_id is not None:
        body.update(contactId=contact_id, contactName="Jane Caller", contactType="Contact")
    body.update(extra)
    return body


@pytest.fixture
def rc(settings) -> Iterator[RingCentralFake]:
    """The fake RingCentral, served on loopback, the settings pointing at it."""
    fake = RingCentralFake()
    with served(fake, settings):
        yield fake


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    """The rules cache (and cached notes) never leak from one test into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def on_postgres() -> bool:
    from django.db import connection

    return connection.vendor == "postgresql"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Concurrency guarantees are tested on PostgreSQL only: on SQLite (one writer at a
    time) those tests are deselected, and the run says how many."""
    if on_postgres():
        return
    selected = [item for item in items if item.get_closest_marker("requires_postgres") is None]
    deselected = [item for item in items if item.get_closest_marker("requires_postgres") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
