"""The RingCentral API, as far as the server needs it: who is calling, and are they an admin.

One `requests.Session`, a timeout on every call, and failures as typed errors. The base URL
is `RINGCENTRAL_SERVER`; tests point it at a fake on 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests

from connector.conf import connector_settings
from connector.utils import outbound_session


class RingCentralError(Exception):
    """RingCentral's API could not say who the token belongs to."""


class RingCentralRefused(RingCentralError):
    """RingCentral refused the token (HTTP 4xx)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"Request failed with status code {status_code}")
        self.status_code = status_code


class RingCentralUnavailable(RingCentralError):
    """RingCentral's API did not answer, timed out or failed (HTTP 5xx)."""


@dataclass(frozen=True, slots=True)
class RcExtension:
    """The extension a RingCentral token belongs to."""

    account_id: str
    extension_id: str
    name: str
    is_admin: bool


_session = outbound_session()


def rc_extension_get(*, access_token: str) -> RcExtension:
    """`GET /restapi/v1.0/account/~/extension/~` with the caller's token.

    Raises `RingCentralRefused` or `RingCentralUnavailable`; never returns the token.
    """
    url = f"{connector_settings.RINGCENTRAL_SERVER.rstrip('/')}/restapi/v1.0/account/~/extension/~"
    try:
        response = _session.get(
            url,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=connector_settings.OUTBOUND_TIMEOUT_SECONDS,
        )
    except requests.RequestException as exc:
        raise RingCentralUnavailable("RingCentral's API could not be reached") from exc
    if 400 <= response.status_code < 500:
        raise RingCentralRefused(response.status_code)
    if not response.ok:
        raise RingCentralUnavailable(f"RingCentral's API failed with HTTP {response.status_code}")
    try:
        body = response.json()
        account_id = str(body["account"]["id"])
        extension_id = str(body["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape") from exc
    permissions = body.get("permissions") or {}
    is_admin = bool((permissions.get("admin") or {}).get("enabled"))
    return RcExtension(
        account_id=account_id,
        extension_id=extension_id,
        name=str(body.get("name") or ""),
        is_admin=is_admin,
    )
