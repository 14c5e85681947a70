"""The RingCentral API, as far as the server needs it: who is calling and are they an
admin (with the caller's token), and, for a connected account (`RingCentralConnection`),
tokens, webhook subscriptions, the call log and the extensions.

One `requests.Session`, a timeout on every call, and failures as typed errors. The base URL
is `RINGCENTRAL_SERVER`; tests point it at a fake on 127.0.0.1 (tests/crm_fakes/ringcentral.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]

from connector.conf import connector_settings
from connector.db import connection_release_before_crm_call
from connector.utils import outbound_session, rc_time_parse, retry_after_seconds

if TYPE_CHECKING:
    from connector.models import RingCentralConnection


class RingCentralError(Exception):
    """RingCentral's API could not say who the token belongs to."""


class RingCentralRefused(RingCentralError):
    """RingCentral refused the request (HTTP 4xx): the token, the JWT, or what was asked."""

    def __init__(self, status_code: int, message: str = "") -> None:
        super().__init__(message or f"Request failed with status code {status_code}")
        self.status_code = status_code


class RingCentralUnavailable(RingCentralError):
    """RingCentral's API did not answer, timed out or failed (HTTP 5xx)."""


class RingCentralRateLimited(RingCentralUnavailable):
    """RingCentral throttled us (HTTP 429, `CMN-301`): `retry_after` is the seconds its
    `Retry-After` header asked us to wait (60 when it sent none, its usual penalty)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"RingCentral's rate limit: retry after {retry_after:g} s")
        self.retry_after = retry_after


class RingCentralCredentialInvalid(RingCentralError):
    """The text given as a RingCentral JWT credential is not one (nothing was sent)."""


class RingCentralNotConfigured(RingCentralError):
    """The server has no RingCentral app: RINGCENTRAL_CLIENT_ID or RINGCENTRAL_CLIENT_SECRET is empty."""


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


# --- the server's own RingCentral app: tokens for a connected account ------------------

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# RingCentral's default penalty interval when a 429 carries no Retry-After
# (developers.ringcentral.com/guide/basics/rate-limits).
DEFAULT_RETRY_AFTER = 60.0


@dataclass(frozen=True, slots=True)
class RcTokens:
    """A token endpoint's answer. `expires_at` is None when RingCentral gave no lifetime."""

    access_token: str
    refresh_token: str
    expires_at: datetime | None


def _token_session() -> Any:
    """An authlib session for one token request: the app's credentials in a Basic header
    (RingCentral's `client_secret_basic`), over the shared outbound pool."""
    client_id = connector_settings.RINGCENTRAL_CLIENT_ID
    client_secret = connector_settings.RINGCENTRAL_CLIENT_SECRET
    if not client_id or not client_secret:
        raise RingCentralNotConfigured(
            "The server has no RingCentral app: set RINGCENTRAL_CLIENT_ID and RINGCENTRAL_CLIENT_SECRET."
        )
    session = OAuth2Session(
        client_id,
        client_secret,
        token_endpoint_auth_method="client_secret_basic",
        default_timeout=connector_settings.OUTBOUND_TIMEOUT_SECONDS,
    )
    for prefix, adapter in _session.adapters.items():
        session.mount(prefix, adapter)
    # authlib reads any JSON answer as a token; a 429 or a 5xx is not a refusal.
    session.register_compliance_hook("access_token_response", _token_response_check)
    session.register_compliance_hook("refresh_token_response", _token_response_check)
    return session


def _token_response_check(response: requests.Response) -> requests.Response:
    if response.status_code == 429:
        raise RingCentralRateLimited(_retry_after(response))
    if response.status_code >= 500:
        raise RingCentralUnavailable(f"RingCentral's token endpoint failed with HTTP {response.status_code}")
    return response


def _token_call(grant: str, call: Any) -> RcTokens:
    try:
        token = call()
    except OAuthError as exc:
        # 400 invalid_grant: the JWT or the refresh token is refused; 401 invalid_client: the app.
        status = 401 if exc.error == "invalid_client" else 400
        raise RingCentralRefused(
            status, f"RingCentral refused the {grant} ({exc.error}: {exc.description or 'no detail'})"
        ) from exc
    except (requests.RequestException, ValueError) as exc:
        raise RingCentralUnavailable("RingCentral's token endpoint could not be reached") from exc
    access = str(token.get("access_token") or "")
    if not access:
        raise RingCentralUnavailable("RingCentral's token endpoint answered without an access token")
    expires_at = token.get("expires_at")
    return RcTokens(
        access_token=access,
        refresh_token=str(token.get("refresh_token") or ""),
        expires_at=datetime.fromtimestamp(float(expires_at), tz=UTC) if expires_at else None,
    )


def rc_token_from_jwt(*, jwt: str) -> RcTokens:
    """`POST /restapi/oauth/token` with the JWT bearer grant: tokens for the JWT's owner.

    Raises `RingCentralNotConfigured`, `RingCentralRefused` (400: the JWT is refused; 401:
    the app is), `RingCentralRateLimited` or `RingCentralUnavailable`. No database access.
    """
    session = _token_session()
    return _token_call(
        "JWT",
        lambda: session.fetch_token(_url("/restapi/oauth/token"), grant_type=JWT_BEARER_GRANT, assertion=jwt),
    )


def rc_token_refresh(*, refresh_token: str) -> RcTokens:
    """`POST /restapi/oauth/token` with the refresh-token grant. Errors as `rc_token_from_jwt`."""
    session = _token_session()
    return _token_call(
        "refresh token",
        lambda: session.refresh_token(_url("/restapi/oauth/token"), refresh_token=refresh_token),
    )


# --- API calls for a connected account ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class RcSubscription:
    """A webhook subscription as RingCentral holds it. `status` is `Active` or
    `Blacklisted` (with `blacklisted_reason`); a blacklisted one must be deleted and
    created again."""

    id: str
    status: str
    expires_at: datetime | None
    address: str
    event_filters: tuple[str, ...]
    blacklisted_reason: str


@dataclass(frozen=True, slots=True)
class RcExtensionInfo:
    """An extension of the account: who a call's party is, for user mapping."""

    id: str
    extension_number: str
    name: str
    email: str
    first_name: str
    last_name: str
    status: str


def _url(path: str) -> str:
    return f"{connector_settings.RINGCENTRAL_SERVER.rstrip('/')}{path}"


def _retry_after(response: requests.Response) -> float:
    seconds = retry_after_seconds(response.headers.get("Retry-After"))
    return DEFAULT_RETRY_AFTER if seconds is None else max(seconds, 0.0)


def _send(method: str, path: str, *, access_token: str, **kwargs: Any) -> requests.Response:
    try:
        return _session.request(
            method,
            _url(path),
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
            timeout=connector_settings.OUTBOUND_TIMEOUT_SECONDS,
            # the token goes to RINGCENTRAL_SERVER and nowhere else
            allow_redirects=False,
            **kwargs,
        )
    except requests.RequestException as exc:
        raise RingCentralUnavailable("RingCentral's API could not be reached") from exc


def _rc_request(
    connection: RingCentralConnection, method: str, path: str, **kwargs: Any
) -> requests.Response:
    """One API call for `connection`'s account, with its access token: refreshed first when
    it expires within two minutes, and once more (then the call sent again, once) when
    RingCentral answers 401. Returns a 2xx answer; raises `RingCentralRateLimited` (429),
    `RingCentralRefused` (another 4xx; 401 when the account must be connected again) or
    `RingCentralUnavailable`. Never inside a database transaction.
    """
    from connector.services import ringcentral_token_ensure

    connection_release_before_crm_call(keep=False, operation=f"RingCentral {method} {path}")
    ringcentral_token_ensure(connection=connection)
    used = connection.token_version
    response = _send(method, path, access_token=connection.access_token or "", **kwargs)
    if response.status_code == 401:
        ringcentral_token_ensure(connection=connection, rejected_version=used)
        response = _send(method, path, access_token=connection.access_token or "", **kwargs)
    if 200 <= response.status_code < 300:
        return response
    if response.status_code == 429:
        raise RingCentralRateLimited(_retry_after(response))
    if 400 <= response.status_code < 500:
        raise RingCentralRefused(
            response.status_code, f"RingCentral refused {method} {path} (HTTP {response.status_code})"
        )
    raise RingCentralUnavailable(f"RingCentral's API failed with HTTP {response.status_code}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape") from exc


def _subscription(body: Any) -> RcSubscription:
    """developers.ringcentral.com API reference, "Create Subscription": `SubscriptionInfo`."""
    try:
        delivery = body.get("deliveryMode") or {}
        blacklisted = body.get("blacklistedData") or {}
        return RcSubscription(
            id=str(body["id"]),
            status=str(body.get("status") or ""),
            expires_at=rc_time_parse(body.get("expirationTime")),
            address=str(delivery.get("address") or ""),
            event_filters=tuple(str(f) for f in body.get("eventFilters") or ()),
            blacklisted_reason=str(blacklisted.get("reason") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape") from exc


def _extension(body: Any) -> RcExtensionInfo:
    """API reference, "Get Extension" and "List Extensions": `GetExtensionInfoResponse`."""
    try:
        contact = body.get("contact") or {}
        return RcExtensionInfo(
            id=str(body["id"]),
            extension_number=str(body.get("extensionNumber") or ""),
            name=str(body.get("name") or ""),
            email=str(contact.get("email") or ""),
            first_name=str(contact.get("firstName") or ""),
            last_name=str(contact.get("lastName") or ""),
            status=str(body.get("status") or ""),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape") from exc


def rc_subscription_create(
    *,
    connection: RingCentralConnection,
    address: str,
    verification_token: str,
    event_filters: list[str],
    expires_in: int,
) -> RcSubscription:
    """`POST /restapi/v1.0/subscription`: a webhook subscription delivering `event_filters`
    to `address`, each delivery carrying `Verification-Token: <verification_token>`.

    RingCentral first POSTs to `address` with a `Validation-Token` header and creates the
    subscription only when it is echoed back with 200 within 3 s; otherwise it answers 400
    (`SUB-525`), raised as `RingCentralRefused(400)`. Errors otherwise as `_rc_request`.
    """
    response = _rc_request(
        connection,
        "POST",
        "/restapi/v1.0/subscription",
        json={
            "eventFilters": list(event_filters),
            "deliveryMode": {
                "transportType": "WebHook",
                "address": address,
                "verificationToken": verification_token,
            },
            "expiresIn": expires_in,
        },
    )
    return _subscription(_json(response))


def rc_subscription_get(*, connection: RingCentralConnection, subscription_id: str) -> RcSubscription:
    """`GET /restapi/v1.0/subscription/{id}`; `RingCentralRefused(404)` when it is gone."""
    response = _rc_request(connection, "GET", f"/restapi/v1.0/subscription/{quote(subscription_id, safe='')}")
    return _subscription(_json(response))


def rc_subscription_renew(*, connection: RingCentralConnection, subscription_id: str) -> RcSubscription:
    """`POST /restapi/v1.0/subscription/{id}/renew`: the subscription with its new expiry."""
    response = _rc_request(
        connection, "POST", f"/restapi/v1.0/subscription/{quote(subscription_id, safe='')}/renew"
    )
    return _subscription(_json(response))


def rc_subscription_delete(*, connection: RingCentralConnection, subscription_id: str) -> None:
    """`DELETE /restapi/v1.0/subscription/{id}`. One already gone (404) is not an error."""
    try:
        _rc_request(connection, "DELETE", f"/restapi/v1.0/subscription/{quote(subscription_id, safe='')}")
    except RingCentralRefused as exc:
        if exc.status_code != 404:
            raise


def rc_call_records_by_session(
    *, connection: RingCentralConnection, telephony_session_id: str
) -> list[dict[str, Any]]:
    """The account's call-log records of one telephony session, `view=Detailed` (with
    `legs`): `GET /restapi/v1.0/account/~/call-log?telephonySessionId=...`. Empty while
    RingCentral has not written them yet (they appear some time after the call ends)."""
    response = _rc_request(
        connection,
        "GET",
        "/restapi/v1.0/account/~/call-log",
        params={"telephonySessionId": telephony_session_id, "view": "Detailed", "perPage": 100},
    )
    body = _json(response)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape")
    return [record for record in records if isinstance(record, dict)]


def rc_extension_info(*, connection: RingCentralConnection, extension_id: str) -> RcExtensionInfo:
    """`GET /restapi/v1.0/account/~/extension/{id}`; `RingCentralRefused(404)` when unknown."""
    response = _rc_request(
        connection, "GET", f"/restapi/v1.0/account/~/extension/{quote(extension_id, safe='')}"
    )
    return _extension(_json(response))


# A page of extensions; a larger account takes several (RingCentral's maximum is 1000).
EXTENSIONS_PER_PAGE = 1000


def rc_extensions_list(*, connection: RingCentralConnection) -> list[RcExtensionInfo]:
    """Every extension of the account, all pages: `GET /restapi/v1.0/account/~/extension`.

    Pages are asked by number while the answer's `navigation` names a next page; the URL
    it names is not followed, so the token goes to RINGCENTRAL_SERVER alone.
    """
    extensions: list[RcExtensionInfo] = []
    page = 1
    while True:
        body = _json(
            _rc_request(
                connection,
                "GET",
                "/restapi/v1.0/account/~/extension",
                params={"page": page, "perPage": EXTENSIONS_PER_PAGE},
            )
        )
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise RingCentralUnavailable("RingCentral's API answered in an unexpected shape")
        extensions.extend(_extension(record) for record in body["records"])
        if not body["records"] or not (body.get("navigation") or {}).get("nextPage"):
            return extensions
        page += 1
