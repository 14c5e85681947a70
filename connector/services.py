"""Business operations of the connector app: login, logout, settings, contact lookup and
creation, and RingCentral accounts connected to the server."""

from __future__ import annotations

import functools
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.core.cache import cache
from django.db import transaction
from django.db.models import F, Model, Q
from django.utils import timezone

from connector.crm.base import (
    CreateContactResult,
    CrmClient,
    CrmError,
    CrmGrantRevoked,
    CrmRateLimited,
    CrmUnavailable,
    FindContactResult,
    JsonDict,
    OAuthCrmClient,
    OAuthTokens,
    UserInfoResult,
)
from connector.crm.builtin import api_key_digest
from connector.crm.registry import crm_registry
from connector.db import connection_release_while_waiting
from connector.exceptions import (
    CrmSessionRevoked,
    ErrorObject,
    LoginRefused,
    OAuthLoginRefused,
    ProxyConfigInvalid,
    details_text,
    return_message,
)
from connector.models import BuiltinApiKey, BuiltinCrmUser, CrmUser, ProxyConnector, RingCentralConnection
from connector.ringcentral import (
    RcTokens,
    RingCentralCredentialInvalid,
    RingCentralError,
    RingCentralRefused,
    RingCentralUnavailable,
    rc_extension_get,
    rc_token_from_jwt,
    rc_token_refresh,
)
from connector.selectors import oauth_info_for, proxy_connector_get, proxy_revision_key

# --- CRM failures as App Connect messages ------------------------------------------------

_EDIT_DETAIL = (
    "Please check if the log entity still exists on {platform} and your account has permission to EDIT logs."
)
_OPERATION_MESSAGES: dict[str, tuple[str, str]] = {
    "createCallLog": (
        "Error creating call log",
        "Please check if your account has permission to CREATE logs.",
    ),
    "updateCallLog": ("Error updating call log", _EDIT_DETAIL),
    "getCallLog": ("Error getting call log", "Please check if your account has permission to READ logs."),
    "createMessageLog": (
        "Error creating message log",
        "Please check if your account has permission to CREATE logs.",
    ),
    "updateMessageLog": ("Error updating message log", _EDIT_DETAIL),
    "findContact": ("Error finding contact", "Please check if your account has permission to GET contacts."),
    "createContact": (
        "Error creating contact",
        "Please check if your account has permission to CREATE contacts.",
    ),
    "findContactWithName": (
        "Error searching contacts",
        "Please check if your account has permission to GET contacts.",
    ),
}


def crm_failure_message(*, operation: str, error: CrmError, platform: str) -> JsonDict:
    """The `returnMessage` App Connect shows when a CRM call fails (appconnect-api.md §1.4)."""
    status = error.status_code
    if isinstance(error, CrmRateLimited) or status == 429:
        return return_message(
            "Rate limit exceeded",
            details=details_text(
                f"You have exceeded the maximum number of requests allowed by {platform}. "
                "Please try again in the next minute. If the problem persists please contact support."
            ),
        )
    if status is not None and 400 <= status <= 409:
        return return_message(
            "Authorization error",
            details=details_text(
                f"It seems like there's something wrong with your authorization of {platform}. "
                f"Please Logout and then Connect your {platform} account within this extension."
            ),
        )
    message, detail = _OPERATION_MESSAGES.get(
        operation,
        (f"Error performing {operation}", "Please check if your account has the necessary permissions."),
    )
    return return_message(message, details=details_text(detail.format(platform=platform), numeric_ids=True))


# --- login and logout --------------------------------------------------------------------


@dataclass(slots=True)
class LoginOutcome:
    user_id: str
    name: str
    return_message: JsonDict | None
    rc_account_id: str = ""


def crm_user_login_with_api_key(
    *,
    platform: str,
    api_key: str,
    hostname: str,
    additional_info: JsonDict,
    hashed_rc_extension_id: str = "",
    rc_account_id: str = "",
    proxy_id: str = "",
) -> LoginOutcome:
    """Check an API key with the CRM, then create or update the connected user.

    Writes one `CrmUser` row (the user's own settings are kept across logins). Raises
    `ConnectorNotFound`, `LoginRefused` (the CRM said no) or `ErrorObject` (the CRM could
    not be asked). The CRM is asked before the transaction that writes the user begins.
    """
    proxy_login_check(platform=platform, proxy_id=proxy_id)
    client = crm_registry.get(platform)
    try:
        info = client.get_user_info(api_key=api_key, hostname=hostname, additional_info=additional_info)
    except CrmError as exc:
        raise ErrorObject(str(exc)) from exc
    if not info.successful or not info.user_id:
        raise LoginRefused(info.return_message or return_message("Login failed."))
    if proxy_id:
        info.platform_additional_info = {**info.platform_additional_info, "proxyId": proxy_id}
    return _crm_user_connect(
        platform=platform,
        info=info,
        tokens=OAuthTokens(
            access_token=info.overriding_api_key or api_key, refresh_token="", expires_at=None
        ),
        hostname=hostname,
        hashed_rc_extension_id=hashed_rc_extension_id,
        rc_account_id=rc_account_id,
    )


def crm_user_login_with_oauth(
    *,
    platform: str,
    callback_uri: str,
    hostname: str,
    query: JsonDict,
    rc_account_id: str = "",
    verified_rc_account_id: str = "",
    hashed_rc_extension_id: str = "",
    proxy_id: str = "",
) -> LoginOutcome:
    """Finish a CRM's OAuth consent (GET /oauth-callback): exchange the code carried by
    `callback_uri` for tokens, ask the CRM whose they are, then create or update the user
    with the tokens (encrypted) and their expiry.

    The OAuth app is the account's own when an admin set one for `rc_account_id`, else the
    environment's. The user is linked to a RingCentral account only on proof: the account
    of a verified RingCentral token (`verified_rc_account_id`), or the account whose own
    OAuth app the code was just exchanged with (a code is issued to one client). Raises
    `ConnectorNotFound`; `OAuthLoginRefused` (200, App Connect's `{returnMessage}`) when
    the app is not configured or the CRM names no user; `ErrorObject` (400 `{error}`) when
    the callback carries an error or no code, its path is not the redirect URI's, or the
    CRM refuses or cannot be reached. No transaction is open while the CRM is asked.
    """
    proxy_login_check(platform=platform, proxy_id=proxy_id)
    client = crm_registry.get(platform)
    if not isinstance(client, OAuthCrmClient):
        raise ErrorObject(f"{platform} does not connect with OAuth; log in with its API key.")
    info = oauth_info_for(client=client, hostname=hostname, rc_account_id=rc_account_id)
    if not info.client_id or not info.client_secret:
        raise OAuthLoginRefused(
            return_message(
                f"{platform} is not set up on this server: its OAuth app is missing. "
                "Please ask your administrator.",
                message_type="danger",
            )
        )
    callback = urlsplit(callback_uri)
    params = parse_qs(callback.query)
    if params.get("error"):
        raise ErrorObject(f"{platform} refused the authorization: {params['error'][0]}")
    if not params.get("code"):
        raise ErrorObject("Missing code in callbackUri")
    if callback.path.rstrip("/") != urlsplit(info.redirect_uri).path.rstrip("/"):
        # client-oauth2's check, which App Connect relies on
        raise ErrorObject(f"Redirected path should match configured path, but got: {callback.path or '/'}")
    try:
        tokens = client.oauth_exchange_code(info=info, callback_uri=callback_uri)
        user_info = client.oauth_user_info(tokens=tokens, info=info, hostname=hostname, query=query)
    except CrmError as exc:
        raise ErrorObject(str(exc)) from exc
    if not user_info.successful or not user_info.user_id:
        raise OAuthLoginRefused(user_info.return_message or return_message("Login failed."))
    user_info.platform_additional_info = {
        **user_info.platform_additional_info,
        "authMode": "oauth",
        **({"proxyId": proxy_id} if proxy_id else {}),
    }
    managed = info.client_id != client.oauth_info(hostname=hostname).client_id
    return _crm_user_connect(
        platform=platform,
        info=user_info,
        tokens=tokens,
        hostname=hostname,
        hashed_rc_extension_id=hashed_rc_extension_id,
        rc_account_id=verified_rc_account_id or (rc_account_id if managed else ""),
    )


@transaction.atomic
def _crm_user_connect(
    *,
    platform: str,
    info: UserInfoResult,
    tokens: OAuthTokens,
    hostname: str,
    hashed_rc_extension_id: str,
    rc_account_id: str,
) -> LoginOutcome:
    """Create or update the user the CRM named with new credentials (an API key: no
    refresh token, no expiry), locked against a concurrent login or refresh."""
    user, _ = CrmUser.objects.select_for_update().get_or_create(
        pk=info.user_id, defaults={"platform": platform}
    )
    user.platform = platform
    user.name = info.name
    user.hostname = info.overriding_hostname or hostname
    user.timezone_name = info.timezone_name
    user.timezone_offset = info.timezone_offset
    user.access_token = tokens.access_token
    user.refresh_token = tokens.refresh_token
    user.token_expiry = tokens.expires_at
    # A refresher still holding the old pair must not store over the new one.
    user.token_version += 1
    user.refresh_lease_owner = ""
    user.refresh_lease_until = None
    user.token_refreshed_at = timezone.now() if tokens.refresh_token else None
    user.auth_error = ""
    user.platform_additional_info = {**user.platform_additional_info, **info.platform_additional_info}
    if rc_account_id:
        user.rc_account_id = rc_account_id
    if hashed_rc_extension_id:
        user.hashed_rc_extension_id = hashed_rc_extension_id
    user.save()
    return LoginOutcome(
        user_id=user.pk,
        name=info.name,
        return_message=info.return_message,
        rc_account_id=rc_account_id,
    )


def crm_user_logout(*, user: CrmUser) -> JsonDict | None:
    """Tell the CRM the user logged out (an OAuth CRM revokes the grant), then forget the
    user's credentials, whatever the CRM answered.

    The user row and its settings stay, as App Connect keeps them; the JWT now names a
    user with no credentials, which every CRM route refuses. A CRM that could not revoke
    is said in the answer (the grant may outlive the logout at the CRM), and recorded as
    the user's `auth_error`. A refresh in flight stores nothing afterwards.
    """
    client = crm_registry.get(user.platform)
    error = ""
    try:
        message = client.unauthorize(user=user)
    except CrmError as exc:
        error = f"Revocation failed: {exc}"[:500]
        message = return_message(
            f"Logged out. {user.platform} could not be told to revoke this connection; "
            f"you may remove the app in your {user.platform} settings.",
        )
    CrmUser.objects.filter(pk=user.pk).update(
        access_token="",
        refresh_token="",
        token_expiry=None,
        token_version=F("token_version") + 1,
        refresh_lease_owner="",
        refresh_lease_until=None,
        auth_error=error,
        updated_at=timezone.now(),
    )
    return message


def crm_user_auth_validate(*, user: CrmUser) -> tuple[bool, JsonDict | None]:
    """Ask the CRM whether the user's stored credentials still work."""
    client = crm_registry.get(user.platform)
    if not user.is_connected:
        return False, None
    try:
        return client.auth_validation(user=user)
    except NotImplementedError:
        return True, None
    except CrmError as exc:
        return False, crm_failure_message(operation="authValidation", error=exc, platform=user.platform)


# --- user settings -----------------------------------------------------------------------


@transaction.atomic
def user_settings_update(
    *, user_id: str, user_settings: dict[str, Any], keys_to_remove: list[str]
) -> dict[str, Any]:
    """Replace the given keys of a user's own settings map and drop `keys_to_remove`.

    The row is locked for the read-modify-write, so concurrent updates don't lose keys.
    Returns the whole stored map.
    """
    user = CrmUser.objects.select_for_update().get(pk=user_id)
    stored = dict(user.user_settings or {})
    stored.update(user_settings)
    for key in keys_to_remove:
        if stored.get(key):
            del stored[key]
    user.user_settings = stored
    user.save(update_fields=("user_settings", "updated_at"))
    return stored


# --- contacts ----------------------------------------------------------------------------


@dataclass(slots=True)
class ContactLookup:
    """GET /contact's answer: `contacts` is None when the CRM could not be asked."""

    successful: bool
    contacts: list[JsonDict] | None
    return_message: JsonDict | None


def real_contacts(contacts: list[JsonDict] | None) -> list[JsonDict]:
    """The entries of a lookup that are actual contacts (not "Create new contact...")."""
    return [contact for contact in contacts or [] if not contact.get("isNewContact")]


def contact_find(
    *, user: CrmUser, phone_number: str, overriding_format: str = "", is_extension: bool = False
) -> ContactLookup:
    """Look a number up in the user's CRM. Never creates anything.

    With no real match and no message from the CRM, answers App Connect's default
    "Contact not found" warning; a CRM failure becomes its `returnMessage`.
    """
    client = crm_registry.get(user.platform)
    try:
        result = client.find_contact(
            user=user,
            phone_number=phone_number,
            overriding_format=overriding_format,
            is_extension=is_extension,
        )
    except CrmError as exc:
        return ContactLookup(
            successful=False,
            contacts=None,
            return_message=crm_failure_message(operation="findContact", error=exc, platform=user.platform),
        )
    message = result.return_message
    if not real_contacts(result.contacts) and message is None:
        message = return_message(
            "Contact not found",
            details=details_text(
                f"A contact with the phone number {phone_number} could not be found in your "
                f"{user.platform} account."
            ),
        )
    return ContactLookup(successful=result.successful, contacts=result.contacts, return_message=message)


def contact_find_by_name(*, user: CrmUser, name: str) -> ContactLookup:
    """Search the user's CRM by contact name (GET /custom/contact/search)."""
    client = crm_registry.get(user.platform)
    try:
        result: FindContactResult = client.find_contact_with_name(user=user, name=name)
    except NotImplementedError:
        return ContactLookup(
            successful=False,
            contacts=None,
            return_message=return_message(
                "Error searching contacts",
                details=details_text(
                    "Please check if your account has permission to GET contacts.", numeric_ids=True
                ),
            ),
        )
    except CrmError as exc:
        return ContactLookup(
            successful=False,
            contacts=None,
            return_message=crm_failure_message(
                operation="findContactWithName", error=exc, platform=user.platform
            ),
        )
    message = result.return_message
    if not real_contacts(result.contacts) and message is None:
        # The trailing space is the peer's (appconnect-api.md §1.4).
        message = return_message(f"No contact found with name {name} ")
    return ContactLookup(successful=result.successful, contacts=result.contacts, return_message=message)


def contact_create(
    *,
    user: CrmUser,
    client: CrmClient,
    phone_number: str,
    name: str,
    contact_type: str,
    additional_submission: JsonDict,
) -> CreateContactResult:
    """Create a contact in the user's CRM. CRM failures come back as a failed result."""
    try:
        return client.create_contact(
            user=user,
            phone_number=phone_number,
            name=name,
            contact_type=contact_type,
            additional_submission=additional_submission,
        )
    except CrmError as exc:
        return CreateContactResult(
            contact=None,
            return_message=crm_failure_message(operation="createContact", error=exc, platform=user.platform),
        )


# --- the built-in CRM's users ------------------------------------------------------------


@transaction.atomic
def builtin_api_key_create(*, name: str) -> tuple[BuiltinCrmUser, str]:
    """Create (or reuse) the built-in CRM user `name` and issue a new API key for it.

    Returns the user and the key in clear; only the key's digest is stored, so this is
    the one chance to see it. Earlier keys of the user stay valid.
    """
    user, _ = BuiltinCrmUser.objects.get_or_create(name=name)
    key = f"bcrm_{secrets.token_urlsafe(32)}"
    BuiltinApiKey.objects.create(user=user, prefix=key[:12], digest=api_key_digest(key))
    return user, key


@transaction.atomic
def builtin_api_key_revoke(*, api_key: BuiltinApiKey) -> None:
    """Revoke a built-in CRM API key and disconnect the App Connect users it logged in.

    The user's other keys keep working for new logins; existing sessions of the built-in
    user must log in again.
    """
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=("revoked_at",))
    for user in CrmUser.objects.filter(pk__startswith=f"{api_key.user_id}-").select_for_update():
        if api_key_digest(user.access_token or "") == api_key.digest:
            user.access_token = ""
            user.save(update_fields=("access_token", "updated_at"))


# --- the embedded demo -------------------------------------------------------------------


@transaction.atomic
def demo_environment_setup(*, admin_username: str, admin_password: str, builtin_user: str) -> str:
    """Make sure the demo admin exists with `admin_password`, and issue a built-in CRM API
    key for `builtin_user`. Returns the new key."""
    from django.contrib.auth import get_user_model

    admin_model = get_user_model()
    admin, _ = admin_model.objects.get_or_create(
        username=admin_username, defaults={"is_staff": True, "is_superuser": True}
    )
    if not admin.check_password(admin_password) or not admin.is_superuser:
        admin.set_password(admin_password)
        admin.is_staff = admin.is_superuser = True
        admin.save()
    _, key = builtin_api_key_create(name=builtin_user)
    return key


# --- OAuth tokens ------------------------------------------------------------------------

# An access token this close to its expiry is refreshed before a CRM call (as App Connect).
TOKEN_REFRESH_MARGIN = timedelta(minutes=2)
# A refresher holds the user's row this long at most; one that died is replaced after it.
TOKEN_REFRESH_LEASE = timedelta(seconds=30)
# A caller waiting for another's refresh gives up after this long (as App Connect).
TOKEN_REFRESH_WAIT_SECONDS = 20.0

_token_locks: dict[tuple[str, object], threading.Lock] = {}
_token_locks_guard = threading.Lock()


def _token_lock(row: Model) -> threading.Lock:
    key = (row._meta.label, row.pk)
    with _token_locks_guard:
        return _token_locks.setdefault(key, threading.Lock())


def _token_refresh_single_flight(
    *,
    row: CrmUser | RingCentralConnection,
    needed: Callable[[], bool],
    reload: Callable[[], None],
    refresh: Callable[[int, str], None],
    timed_out: Callable[[], Exception],
) -> None:
    """Run `refresh(seen_version, lease)` once for `row`, however many threads and
    processes find its token `needed()` at the same moment.

    The threads of a process queue on a lock; across processes one claims a lease on the
    row with a compare-and-set on the `token_version` it saw (no transaction is open, so
    the refresh's HTTP call holds nothing), and the others wait, backing off, for the
    version to change, then use the new token. `refresh` stores the new pair (bumping the
    version) and ends the lease. Waiting longer than TOKEN_REFRESH_WAIT_SECONDS raises
    `timed_out()`.
    """
    if not needed():
        return
    model = type(row)
    with _token_lock(row):
        reload()  # another thread of this process may have refreshed it
        if not needed():
            return
        deadline = time.monotonic() + TOKEN_REFRESH_WAIT_SECONDS
        pause = 0.05
        while True:
            seen = row.token_version
            lease = secrets.token_hex(16)
            now = timezone.now()
            won = (
                model.objects.filter(pk=row.pk, token_version=seen)
                .filter(Q(refresh_lease_until__isnull=True) | Q(refresh_lease_until__lt=now))
                .update(refresh_lease_owner=lease, refresh_lease_until=now + TOKEN_REFRESH_LEASE)
            )
            if won:
                refresh(seen, lease)
                return
            reload()
            if row.token_version != seen:
                return  # another process refreshed it
            if time.monotonic() >= deadline:
                raise timed_out()
            connection_release_while_waiting()
            time.sleep(pause)
            pause = min(pause * 2, 1.0)


def _expiring(user: CrmUser) -> bool:
    # The expiry first: the (deferred, encrypted) refresh token is read only when it matters.
    expiry = user.token_expiry
    return expiry is not None and expiry - timezone.now() <= TOKEN_REFRESH_MARGIN and bool(user.refresh_token)


def _tokens_reload(user: CrmUser) -> None:
    user.refresh_from_db(fields=("access_token", "refresh_token", "token_expiry", "token_version"))


def crm_user_token_ensure(*, user: CrmUser, client: OAuthCrmClient) -> None:
    """Make `user`'s OAuth access token good for the next CRM call (updating `user` in place).

    A token that expires within TOKEN_REFRESH_MARGIN is refreshed exactly once, however
    many threads and processes need it at the same moment: the threads of a process queue
    on a lock; across processes one claims a lease on the user's row with a compare-and-
    set on the token version it saw, calls the token endpoint with no transaction open and
    stores the new pair; the others wait for the version to change and use the new token.
    A CRM that sends no new refresh token keeps the old one. When the CRM says the grant
    is gone, but another process rotated the token meanwhile, that token is used; else
    `CrmSessionRevoked` (HTTP 401, App Connect's `CRM_SESSION_REVOKED`).
    """
    _token_refresh_single_flight(
        row=user,
        needed=lambda: _expiring(user),
        reload=lambda: _tokens_reload(user),
        refresh=lambda seen, lease: _token_refresh(user=user, client=client, seen=seen, lease=lease),
        timed_out=lambda: CrmUnavailable(
            f"{client.platform}: timed out waiting for another request's token refresh"
        ),
    )


def _token_refresh(*, user: CrmUser, client: OAuthCrmClient, seen: int, lease: str) -> None:
    """Refresh `user`'s tokens while holding the lease `lease`; store them, end the lease."""
    holder = CrmUser.objects.filter(pk=user.pk, refresh_lease_owner=lease)
    refresh_token = user.refresh_token or ""
    try:
        tokens = client.oauth_refresh(info=client.oauth_info_for_user(user), refresh_token=refresh_token)
    except CrmGrantRevoked as exc:
        holder.update(refresh_lease_until=None, auth_error=str(exc)[:500])
        _tokens_reload(user)
        if user.token_version != seen or (user.refresh_token or "") != refresh_token:
            return  # another process rotated the token: use it
        raise CrmSessionRevoked() from exc
    except CrmError as exc:
        holder.update(refresh_lease_until=None, auth_error=str(exc)[:500])
        raise
    now = timezone.now()
    holder.update(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expiry=tokens.expires_at,
        token_version=F("token_version") + 1,
        token_refreshed_at=now,
        refresh_lease_until=None,
        auth_error="",
        updated_at=now,
    )
    user.access_token, user.refresh_token, user.token_expiry = (
        tokens.access_token,
        tokens.refresh_token,
        tokens.expires_at,
    )
    user.token_version = seen + 1


# --- proxy connectors ----------------------------------------------------------------------


def proxy_config_errors(*, config: Any, proxy_id: str = "") -> list[str]:
    """Everything wrong with a proxy connector config (App Connect's format), each naming
    where: its structure, templates, URLs and hosts (`connector.crm.proxy.config_errors`),
    and a platform name another connector already has. Empty when it may be saved."""
    from connector.crm.proxy import config_errors

    if not isinstance(config, dict):
        return ["The config must be a JSON object."]
    errors = config_errors(config)
    name = (config.get("meta") or {}).get("name") if isinstance(config.get("meta"), dict) else None
    if isinstance(name, str) and name:
        if name in crm_registry.platforms():
            errors.append(f"meta.name: {name!r} is the platform name of a built-in connector.")
        elif ProxyConnector.objects.filter(name=name).exclude(proxy_id=proxy_id).exists():
            errors.append(f"meta.name: another proxy connector is named {name!r}.")
    return errors


@transaction.atomic
def proxy_connector_save(*, config: Any, secret_key: str | None = None, proxy_id: str = "") -> ProxyConnector:
    """Create a proxy connector from `config`, or replace the config of `proxy_id`.

    The config is validated first (`ProxyConfigInvalid` lists every fault; nothing is
    written then). `secret_key` None keeps the stored one. Every process builds the
    connector's client again (its revision grows; the cached revision is dropped).
    """
    errors = proxy_config_errors(config=config, proxy_id=proxy_id)
    if errors:
        raise ProxyConfigInvalid(errors)
    meta = config["meta"]
    if proxy_id:
        row = ProxyConnector.objects.select_for_update().get(proxy_id=proxy_id)
        old_name = row.name
        row.revision += 1
    else:
        row, old_name = ProxyConnector(), ""
    row.config = config
    row.name = meta["name"]
    row.display_name = str(meta.get("displayName") or "")
    if secret_key is not None:
        row.secret_key = secret_key
    row.save()
    for name in {old_name, row.name} - {""}:
        cache.delete(proxy_revision_key(name))
        transaction.on_commit(functools.partial(cache.delete, proxy_revision_key(name)))
    return row


def proxy_connector_try(
    *, connector: ProxyConnector, api_key: str, additional_info: JsonDict, phone_number: str
) -> JsonDict:
    """Run the connector's getUserInfo and findContact for `phone_number` against the real
    CRM with the given credentials, storing nothing: the requests sent (credentials
    masked) and the mapped results (the admin's "try it")."""
    from connector.crm.proxy import ProxyCrmClient

    client = ProxyCrmClient(
        connector.name,
        config=connector.config,
        secret_key=connector.secret_key or "",
        proxy_id=connector.proxy_id,
    )
    return client.try_it(api_key=api_key, additional_info=additional_info, phone_number=phone_number)


def proxy_login_check(*, platform: str, proxy_id: str) -> None:
    """A login naming `proxy_id` must name that connector's platform (400 otherwise)."""
    if not proxy_id:
        return
    row = proxy_connector_get(proxy_id=proxy_id)
    if row is None:
        raise ErrorObject(f"No proxy connector {proxy_id!r}.")
    if row.name != platform:
        raise ErrorObject(f"Proxy connector {proxy_id!r} is not platform {platform!r}.")


# --- RingCentral accounts connected to the server ----------------------------------------

# A JWT's three base64url parts (RFC 7519 §3); RingCentral's JWT credentials are such.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_JWT_MAX_LENGTH = 8192


def ringcentral_connect(*, jwt: str) -> RingCentralConnection:
    """Connect the RingCentral account an admin's JWT credential belongs to: exchange the
    JWT for tokens (the JWT bearer grant, with the server's RingCentral app), ask
    RingCentral whose they are (`GET /restapi/v1.0/account/~/extension/~`), then create or
    update the account's connection with the JWT and the tokens (encrypted). Connecting an
    account again replaces its JWT and tokens; a refresh in flight stores nothing after.

    The JWT is checked for shape before anything is sent. Raises
    `RingCentralCredentialInvalid` (not a JWT), `RingCentralNotConfigured` (no app
    credentials), `RingCentralRefused` (400: RingCentral refused the JWT; 401: the app;
    403: the JWT's extension is not an account admin) or `RingCentralUnavailable`. No
    transaction is open while RingCentral is asked.
    """
    jwt = (jwt or "").strip()
    if len(jwt) > _JWT_MAX_LENGTH or not _JWT_SHAPE.fullmatch(jwt):
        raise RingCentralCredentialInvalid(
            "That is not a RingCentral JWT credential (three dot-separated parts)."
        )
    tokens = rc_token_from_jwt(jwt=jwt)
    try:
        extension = rc_extension_get(access_token=tokens.access_token)
    except RingCentralRefused as exc:
        raise RingCentralUnavailable("RingCentral refused the token it had just issued") from exc
    if not extension.is_admin:
        raise RingCentralRefused(
            403,
            f"The JWT belongs to extension {extension.extension_id}, which is not an admin of account "
            f"{extension.account_id}: server-side logging needs an admin's JWT.",
        )
    return _ringcentral_connection_store(
        account_id=extension.account_id,
        extension_id=extension.extension_id,
        name=extension.name,
        jwt=jwt,
        tokens=tokens,
    )


@transaction.atomic
def _ringcentral_connection_store(
    *, account_id: str, extension_id: str, name: str, jwt: str, tokens: RcTokens
) -> RingCentralConnection:
    """Create or update the account's connection with new credentials, locked against a
    concurrent connect or refresh."""
    # One save, so the history has one row for one connect (the unique account id stops
    # a concurrent first connect of the same account).
    row = RingCentralConnection.objects.select_for_update().filter(
        rc_account_id=account_id
    ).first() or RingCentralConnection(rc_account_id=account_id)
    now = timezone.now()
    row.rc_extension_id = extension_id
    row.name = name
    row.jwt = jwt
    row.access_token = tokens.access_token
    row.refresh_token = tokens.refresh_token
    row.token_expiry = tokens.expires_at
    # A refresher still holding the old pair must not store over the new one.
    row.token_version += 1
    row.refresh_lease_owner = ""
    row.refresh_lease_until = None
    row.connected_at = now
    row.token_refreshed_at = now
    row.last_error = ""
    row.save()
    return row


def _rc_tokens_reload(connection: RingCentralConnection) -> None:
    connection.refresh_from_db(fields=("access_token", "refresh_token", "token_expiry", "token_version"))


def ringcentral_token_ensure(
    *, connection: RingCentralConnection, rejected_version: int | None = None
) -> None:
    """Make `connection`'s access token good for the next RingCentral call (updating
    `connection` in place): refreshed when it expires within TOKEN_REFRESH_MARGIN, or, with
    `rejected_version`, when RingCentral refused the token of that version and no one has
    replaced it since.

    Single-flight (`_token_refresh_single_flight`), as `crm_user_token_ensure`. A refused
    refresh token (RingCentral's last a week unless used) is replaced through the stored
    JWT; when RingCentral refuses that too, the row's `last_error` says so and
    `RingCentralRefused(401)` is raised: the account must be connected again. Other
    failures are raised as they are.
    """

    def needed() -> bool:
        if rejected_version is not None:
            return connection.token_version == rejected_version
        expiry = connection.token_expiry
        return not connection.access_token or (
            expiry is not None and expiry - timezone.now() <= TOKEN_REFRESH_MARGIN
        )

    _token_refresh_single_flight(
        row=connection,
        needed=needed,
        reload=lambda: _rc_tokens_reload(connection),
        refresh=lambda seen, lease: _rc_token_refresh(connection=connection, seen=seen, lease=lease),
        timed_out=lambda: RingCentralUnavailable(
            "Timed out waiting for another request's RingCentral token refresh"
        ),
    )


def _rc_token_refresh(*, connection: RingCentralConnection, seen: int, lease: str) -> None:
    """Refresh the tokens while holding the lease `lease`; store them and end the lease."""
    holder = RingCentralConnection.objects.filter(pk=connection.pk, refresh_lease_owner=lease)
    try:
        try:
            if not connection.refresh_token:
                raise RingCentralRefused(400, "No refresh token is stored")
            tokens = rc_token_refresh(refresh_token=connection.refresh_token)
        except RingCentralRefused:
            if not connection.jwt:
                raise
            tokens = rc_token_from_jwt(jwt=connection.jwt)
    except RingCentralRefused as exc:
        holder.update(
            refresh_lease_until=None, last_error=f"{exc} Connect the account again with a new JWT."[:500]
        )
        _rc_tokens_reload(connection)
        if connection.token_version != seen:
            return  # connected again meanwhile: use the new pair
        raise RingCentralRefused(
            401, "RingCentral refused the account's credentials; connect it again with a new JWT."
        ) from exc
    except RingCentralError as exc:
        holder.update(refresh_lease_until=None, last_error=str(exc)[:500])
        raise
    now = timezone.now()
    stored = holder.update(
        access_token=tokens.access_token,
        refresh_token=tokens.refresh_token,
        token_expiry=tokens.expires_at,
        token_version=F("token_version") + 1,
        token_refreshed_at=now,
        refresh_lease_owner="",
        refresh_lease_until=None,
        last_error="",
    )
    if not stored:
        _rc_tokens_reload(connection)  # connected again meanwhile: that pair stands
        return
    connection.access_token, connection.refresh_token, connection.token_expiry = (
        tokens.access_token,
        tokens.refresh_token,
        tokens.expires_at,
    )
    connection.token_version = seen + 1
