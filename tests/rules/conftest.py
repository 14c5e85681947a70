"""Fixtures of the rules tests: a fake RingCentral API on the loopback address.

`rc_api(...)` makes `GET /restapi/v1.0/account/~/extension/~` answer for one token (the
`Authorization: Bearer <token>` header must match); `rc_api.fail(...)` makes it fail for
every token. Any RingCentral call not faked fails as a connection error, so nothing
leaves the machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from responses import matchers

from connector.utils import hash_value
from rules.models import Account, RuleSetting
from tests.conftest import ApiClient

RC_EXTENSION_URL = "http://127.0.0.1:9/restapi/v1.0/account/~/extension/~"
ACCOUNT_ID = "37439510"
OTHER_ACCOUNT_ID = "99887766"
ADMIN_TOKEN = "rc-admin-token-U1xbPq8wQe"
USER_TOKEN = "rc-user-token-Zk27vQ3nHr"
OTHER_TOKEN = "rc-other-token-Hm4rT9aLp"


class FakeRingCentral:
    """The RingCentral extension API, as far as the server asks it."""

    def __init__(self, mock: responses.RequestsMock) -> None:
        self.mock = mock

    def __call__(
        self,
        *,
        token: str = ADMIN_TOKEN,
        account_id: str = ACCOUNT_ID,
        extension_id: str = "101",
        admin: bool = True,
        name: str = "Ada Admin",
    ) -> None:
        """Answer for `token`: the extension `extension_id` of account `account_id`."""
        self.mock.get(
            RC_EXTENSION_URL,
            json={
                "id": int(extension_id),
                "name": name,
                "account": {"id": account_id},
                "permissions": {"admin": {"enabled": admin}},
            },
            match=[matchers.header_matcher({"Authorization": f"Bearer {token}"})],
        )

    def fail(self, *, status: int = 0, exc: Exception | None = None, body: Any = None) -> None:
        """Fail for every token: an HTTP `status`, or raise `exc` (connection error, timeout)."""
        if exc is not None:
            self.mock.get(RC_EXTENSION_URL, body=exc)
        else:
            self.mock.get(
                RC_EXTENSION_URL,
                json=body if body is not None else {"errorCode": "AGW-401", "message": "Unauthorized"},
                status=status,
            )

    @property
    def authorizations(self) -> list[str]:
        """The Authorization header of every call the server made, in order."""
        return [call.request.headers.get("Authorization", "") for call in self.mock.calls]


@pytest.fixture
def rc_api() -> Iterator[FakeRingCentral]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeRingCentral(mock)


def admin_post(
    client: ApiClient,
    user_settings: Any,
    *,
    token: str | None = ADMIN_TOKEN,
    extra: dict[str, Any] | None = None,
):
    """POST /admin/settings with `{"adminSettings": {"userSettings": ...}}` and the RC token."""
    body: dict[str, Any] = {"adminSettings": {"userSettings": user_settings, **(extra or {})}}
    headers = {"X-RC-Access-Token": token} if token is not None else None
    return client.post("/admin/settings", body, headers=headers)


def stored_rows(account: Account | None = None) -> dict[str, tuple[Any, bool, bool]]:
    """The account's (or, with None, every) RuleSetting row as key -> (value, customizable, hidden)."""
    rows = RuleSetting.objects.all() if account is None else RuleSetting.objects.filter(account=account)
    return {row.key: (row.value, row.customizable, row.is_removed) for row in rows}


def account_key(rc_account_id: str = ACCOUNT_ID) -> str:
    """App Connect's hashed account id (`sha256("<id>:<HASH_KEY>")`)."""
    return hash_value(rc_account_id)


def assert_no_token(response: Any, *tokens: str) -> None:
    """No RingCentral token, and no field that looks like a token, in a response body."""
    text = response.content.decode()
    for token in tokens:
        assert token not in text
    if response.get("Content-Type", "").startswith("application/json"):

        def keys(node: Any) -> Iterator[str]:
            if isinstance(node, dict):
                for key, value in node.items():
                    yield str(key)
                    yield from keys(value)
            elif isinstance(node, list):
                for item in node:
                    yield from keys(item)

        bad = [key for key in keys(json.loads(text)) if "token" in key.lower()]
        assert bad == []
