"""The CRM client contract, mirroring App Connect's connector interface (appconnect-api.md §4).

A connector is a `CrmClient` subclass registered for one platform name. Services call it;
it knows nothing of views, rules or the log history. Contacts travel as App Connect
`ContactInfo` dicts (open objects: `id`, `name`, `type`, `phone`, `createdDate`, ...).
Failures are raised as the typed `CrmError`s below, never as bare HTTP errors.
"""

from __future__ import annotations

import abc
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import requests
import stamina
from authlib.integrations.base_client.errors import OAuthError  # type: ignore[import-untyped]
from authlib.integrations.requests_client import OAuth2Session  # type: ignore[import-untyped]
from urllib3.exceptions import NewConnectionError

from connector.choices import AuthType
from connector.db import connection_release_before_crm_call

if TYPE_CHECKING:
    from connector.models import CrmUser

JsonDict = dict[str, Any]

# What a platform name configured as data may be: a proxy connector's `meta.name`. The
# registry looks no other name up in the database.
PLATFORM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

# The entry a connector appends to lookup results so the client offers "Create new
# contact..." (appconnect-api.md §2.8); it is never a real contact.
NEW_CONTACT_OPTION: JsonDict = {
    "id": "createNewContact",
    "name": "Create new contact...",
    "isNewContact": True,
}


# --- typed failures --------------------------------------------------------------------


class CrmError(Exception):
    """A CRM call failed. `status_code` is the CRM's HTTP status when there was one.

    `uncertain` says the CRM may have carried the request out all the same (the request
    went out and its answer was lost: a read timeout, a dropped connection, a gateway
    error). A write that failed so is never sent again before the CRM is asked whether it
    holds it.
    """

    default_status: ClassVar[int | None] = None

    def __init__(self, message: str, *, status_code: int | None = None, uncertain: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code if status_code is not None else self.default_status
        self.uncertain = uncertain


class CrmAuthError(CrmError):
    """The CRM refused our credentials (HTTP 401/403)."""

    default_status = 401


class CrmRateLimited(CrmError):
    """The CRM throttled us (HTTP 429); `retry_after` is in seconds when the CRM said, and
    `limits` holds the rate-limit headers it sent (for the log's event trail)."""

    default_status = 429

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = None,
        limits: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after
        self.limits = limits or {}


class CrmUnavailable(CrmError):
    """The CRM could not be reached, timed out, or failed on its side (HTTP 5xx)."""

    default_status = 503


class CrmRejected(CrmError):
    """The CRM understood the request and refused it (another HTTP 4xx)."""

    default_status = 422


# --- results ---------------------------------------------------------------------------


@dataclass(slots=True)
class UserInfoResult:
    """What `get_user_info` learnt about the user behind some credentials."""

    successful: bool
    user_id: str = ""
    name: str = ""
    timezone_name: str = ""
    timezone_offset: str = ""
    platform_additional_info: JsonDict = field(default_factory=dict)
    overriding_hostname: str = ""
    overriding_api_key: str = ""
    return_message: JsonDict | None = None


@dataclass(slots=True)
class FindContactResult:
    """Matches for a lookup, `NEW_CONTACT_OPTION` included when creation is offered."""

    successful: bool
    contacts: list[JsonDict] | None
    return_message: JsonDict | None = None


@dataclass(slots=True)
class CreateContactResult:
    """The created contact (`{id, name, type?}`), or None when the CRM made none."""

    contact: JsonDict | None
    return_message: JsonDict | None = None


@dataclass(slots=True)
class LogResult:
    """The CRM id of a created activity; a falsy `log_id` means nothing was created."""

    log_id: str | int | None
    return_message: JsonDict | None = None


@dataclass(slots=True)
class UpdateLogResult:
    updated_note: str | None = None
    return_message: JsonDict | None = None


@dataclass(slots=True)
class CallLogDetails:
    """What the CRM holds for one call log (`callLogInfo` on the wire)."""

    info: JsonDict | None
    return_message: JsonDict | None = None


@dataclass(slots=True)
class RelinkResult:
    """An activity `relink_activity` moved: its CRM id, and the contact it now hangs on as
    the CRM showed it (`contact_name` is "" when the CRM's answer does not say)."""

    crm_log_id: str
    contact_id: str
    contact_name: str = ""
    return_message: JsonDict | None = None


@dataclass(slots=True)
class LogContact:
    """The contact a log hangs on, as App Connect's `contactInfo`."""

    id: str
    phone_number: str
    type: str = ""
    name: str = ""


@dataclass(slots=True)
class CallLogInput:
    """Everything `create_call_log` receives besides the user and the contact."""

    call_log: JsonDict
    note: str = ""
    additional_submission: JsonDict = field(default_factory=dict)
    composed_log_details: str = ""
    # aiNote, transcript, voicemailLink, ringSense*, ... as App Connect names them
    extras: JsonDict = field(default_factory=dict)
    hashed_account_id: str = ""
    is_from_sscl: bool = False
    # The key our log history keeps this call under. A connector that can store it with
    # the activity finds the activity again by it (`find_call_log`).
    log_key: str = ""


@dataclass(slots=True)
class CallLogUpdate:
    """Everything `update_call_log` receives: App Connect's PATCH /callLog fields."""

    crm_log_id: str
    contact_id: str
    subject: str | None = None
    note: str | None = None
    start_time: Any = None
    duration: Any = None
    result: str | None = None
    recording_link: str | None = None
    additional_submission: JsonDict = field(default_factory=dict)
    composed_log_details: str = ""
    extras: JsonDict = field(default_factory=dict)


@dataclass(slots=True)
class MessageLogInput:
    """One message (RingCentral message-store record) to log, with derived media links."""

    message: JsonDict
    correspondents: list[JsonDict] = field(default_factory=list)
    additional_submission: JsonDict = field(default_factory=dict)
    links: JsonDict = field(default_factory=dict)
    owner_name: str = ""
    assignee_name: str = ""
    # shared SMS mode: one activity for the whole conversation, {subject, body}
    shared_content: JsonDict | None = None
    # The key our log history keeps this message under (see `CallLogInput.log_key`).
    log_key: str = ""


# --- the contract ----------------------------------------------------------------------


# The contract's methods that may wait for the CRM (everything but the manifest and formats).
CRM_CALLS = frozenset(
    {
        "get_user_info",
        "oauth_user_info",
        "unauthorize",
        "auth_validation",
        "find_contact",
        "find_contact_with_name",
        "create_contact",
        "create_call_log",
        "update_call_log",
        "get_call_log",
        "find_call_log",
        "create_message_log",
        "update_message_log",
        "find_message_log",
        "relink_activity",
    }
)


def _crm_call(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a CRM call so that nothing of ours is held while the CRM answers."""

    @functools.wraps(method)
    def call(self: CrmClient, *args: Any, **kwargs: Any) -> Any:
        user = kwargs.get("user")
        if user is not None and isinstance(self, OAuthCrmClient):
            from connector.services import crm_user_token_ensure

            connection_release_before_crm_call(keep=True, operation=method.__name__)  # the transaction check
            crm_user_token_ensure(user=user, client=self)
        connection_release_before_crm_call(keep=self.uses_database, operation=method.__name__)
        return method(self, *args, **kwargs)

    call.__crm_call__ = True  # type: ignore[attr-defined]
    return call


class CrmClient(abc.ABC):
    """One CRM platform. Instances are shared by every thread of a process, so they hold
    no user state and anything they keep (an HTTP session, a cache) is safe to share.

    Subclasses must implement the abstract methods; the optional ones raise
    `NotImplementedError` and are reported as absent by `implemented_interfaces`.

    Every CRM call (`CRM_CALLS`) a subclass defines is wrapped, without the subclass doing
    anything: it refuses to run inside a database transaction (a CRM answers in hundreds
    of milliseconds; no lock or transaction may wait on it), refreshes an OAuth user's
    access token first when it is about to expire (`OAuthCrmClient`), and, when the connection pool
    is smaller than the threads, gives the pooled connection back first, so a thread
    holds no connection while the CRM answers (`connector.db`). A connector that keeps
    its data in our database (`uses_database`, the built-in CRM) keeps its connection.
    """

    auth_type: ClassVar[str] = AuthType.API_KEY
    uses_database: ClassVar[bool] = False

    def __init__(self, platform: str) -> None:
        self.platform = platform

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in CRM_CALLS & cls.__dict__.keys():
            method = cls.__dict__[name]
            if callable(method) and not getattr(method, "__crm_call__", False):
                setattr(cls, name, _crm_call(method))

    # manifest and capabilities

    @abc.abstractmethod
    def manifest(self) -> JsonDict:
        """This platform's entry of App Connect's manifest (`platforms.<name>`)."""

    def contact_type_values(self) -> list[str]:
        """The `value`s of the manifest's `contactTypes`, in order."""
        return [item["value"] for item in self.manifest().get("contactTypes", [])]

    def get_log_format_type(self) -> str:
        """The body format the CRM wants: `text/plain`, `text/html` or `text/markdown`."""
        return "text/plain"

    # auth

    def get_basic_auth(self, *, api_key: str) -> str:
        """The value after `Basic ` for API-key CRMs (base64 of `<api key>:`)."""
        import base64

        return base64.b64encode(f"{api_key}:".encode()).decode()

    @abc.abstractmethod
    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        """Check credentials with the CRM and say whose they are. No local writes."""

    @abc.abstractmethod
    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        """Forget the user's CRM credentials. Returns the `returnMessage` to show."""

    def auth_validation(self, *, user: CrmUser) -> tuple[bool, JsonDict | None]:
        """Whether the stored credentials still work, and a message to show."""
        raise NotImplementedError

    # contacts

    @abc.abstractmethod
    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        """Contacts whose number matches `phone_number` (E.164). Never creates anything."""

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        """Contacts whose name matches `name`."""
        raise NotImplementedError

    @abc.abstractmethod
    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        """Create a contact with one phone number (E.164)."""

    # call logs

    @abc.abstractmethod
    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        """Create the CRM activity for a call."""

    @abc.abstractmethod
    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        """Update the CRM activity `data.crm_log_id`."""

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        """Read back a call activity: subject, note, fullBody, ..."""
        raise NotImplementedError

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The CRM id of the call activity created with `CallLogInput.log_key == log_key`
        for the user (against `contact_id`), or None when the CRM holds none. Never writes.

        Asked before a write that may have gone through (a crash, a lost answer) is sent
        again; a connector that cannot answer leaves it unimplemented, and such logs wait
        for an admin instead of being sent twice.
        """
        raise NotImplementedError

    # message logs

    @abc.abstractmethod
    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        """Create the CRM activity for a conversation, starting with `data.message`."""

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        """Add `data.message` to the existing activity `crm_log_id`."""
        raise NotImplementedError

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The CRM id of the activity holding the message logged with
        `MessageLogInput.log_key == log_key`, or None. See `find_call_log`."""
        raise NotImplementedError

    # moving activities (optional; not part of App Connect's interface)

    def relink_activity(
        self, *, user: CrmUser, crm_log_id: str, kind: str, contact: LogContact
    ) -> RelinkResult:
        """Move the activity `crm_log_id` (`kind`: "call" or "message", as
        `connector.choices.ActivityKind`) to the existing contact `contact`, leaving the
        rest of it as it is. Deletes nothing, in the CRM or here.

        Used by an admin to move the logs of a superseded placeholder to the real contact
        (`rules.services.placeholder_logs_relink`). Optional: a connector whose CRM cannot
        move an activity leaves it unimplemented (`can_relink_activities`), and the admin
        shows the move unavailable for its placeholders. Raises `CrmRejected` when the CRM
        has no such activity or contact, and the other `CrmError`s as any CRM call.
        """
        raise NotImplementedError

    def can_relink_activities(self) -> bool:
        """Whether this connector implements `relink_activity`."""
        return type(self).relink_activity is not CrmClient.relink_activity

    def implemented_interfaces(self) -> dict[str, bool]:
        """App Connect's capability map for GET /implementedInterfaces."""
        cls = type(self)

        def has(method: str) -> bool:
            return getattr(cls, method) is not getattr(CrmClient, method, None)

        api_key = self.auth_type == AuthType.API_KEY
        result: dict[str, bool] = {"getAuthType": True}
        result["getBasicAuth" if api_key else "getOauthInfo"] = True
        result.update(
            {
                "getUserInfo": True,
                "createCallLog": True,
                "updateCallLog": True,
                "getCallLog": has("get_call_log"),
                "createMessageLog": True,
                "updateMessageLog": has("update_message_log"),
                "createContact": True,
                "findContact": True,
                "listAppointments": False,
                "createAppointment": False,
                "updateAppointment": False,
                "refreshAppointment": False,
                "confirmAppointment": False,
                "cancelAppointment": False,
                "unAuthorize": True,
                "upsertCallDisposition": False,
                "findContactWithName": has("find_contact_with_name"),
                "getUserList": False,
                "getManagedAuthOptions": False,
                "getLicenseStatus": False,
                "getLogFormatType": True,
                "refreshUserInfo": False,
                # The peer reports its note cache only when USE_CACHE is set, which its
                # default deployment leaves unset; ours always works but is not advertised,
                # so clients keep sending the note with the log itself.
                "cacheCallNote": False,
            }
        )
        return result


class HttpCrmClient(CrmClient, abc.ABC):
    """Base for CRMs reached over HTTP: one shared session (`connector.utils.outbound_session`:
    pooled, cookie-free, OUTBOUND_HOST_MAP), a timeout on every call, HTTP failures mapped
    to the typed `CrmError`s, and the retries that are safe (`request`)."""

    def __init__(self, platform: str, *, timeout: float | None = None) -> None:
        super().__init__(platform)
        from connector.conf import connector_settings
        from connector.utils import outbound_session

        self.timeout = timeout if timeout is not None else connector_settings.OUTBOUND_TIMEOUT_SECONDS
        self.session = outbound_session()

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a request and return the CRM's 2xx answer, or raise a `CrmError`.

        Tried again (at most OUTBOUND_ATTEMPTS in all) only where nothing can be done twice:
        a 429, whatever the method (the CRM did not process it), after its Retry-After when
        that is at most OUTBOUND_RETRY_AFTER_CAP_SECONDS (a longer one is raised at once,
        with its `retry_after`, for the caller to wait out); and a read (GET, HEAD) the CRM
        failed to serve, with a short backoff. A write that failed otherwise is never sent
        again here. A connection that could not be opened is retried by the session.
        """
        from connector.conf import connector_settings

        kwargs.setdefault("timeout", self.timeout)
        # A redirect is never followed: it could carry the call's headers (an API key, a
        # partner secret) to another host. A CRM's API answers where it is asked.
        kwargs["allow_redirects"] = False
        retryable = functools.partial(
            _retry_wait,
            read=method.upper() in ("GET", "HEAD"),
            cap=connector_settings.OUTBOUND_RETRY_AFTER_CAP_SECONDS,
        )
        for attempt in stamina.retry_context(
            on=retryable,
            attempts=connector_settings.OUTBOUND_ATTEMPTS,
            timeout=None,
            wait_initial=0.1,
            wait_max=2.0,
        ):
            with attempt:
                return self._send(method, url, **kwargs)
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover

    def _send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.ConnectTimeout as exc:
            raise CrmUnavailable(f"{self.platform} could not be reached") from exc
        except requests.Timeout as exc:
            # The request went out; the CRM may have carried it out.
            raise CrmUnavailable(f"{self.platform} did not answer in time", uncertain=True) from exc
        except requests.ConnectionError as exc:
            raise CrmUnavailable(
                f"{self.platform} could not be reached", uncertain=not _never_connected(exc)
            ) from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"{self.platform} could not be reached") from exc
        if 200 <= response.status_code < 300:
            return response
        raise crm_error_for_status(response, platform=self.platform)


def _retry_wait(exc: Exception, *, read: bool, cap: float) -> bool | float:
    """stamina's hook: whether to try again after `exc`, and how long to wait first (a
    number of seconds; True: the backoff)."""
    if isinstance(exc, CrmRateLimited):
        if exc.retry_after is None:
            return True
        return max(exc.retry_after, 0.0) if exc.retry_after <= cap else False
    if isinstance(exc, CrmUnavailable):
        return read
    return False


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether a connection error happened before anything was sent (the connection itself
    failed), rather than after (reset or dropped while the CRM worked)."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


def crm_error_for_status(response: requests.Response, *, platform: str) -> CrmError:
    """The typed error for a CRM's non-2xx HTTP answer."""
    status = response.status_code
    if status == 429:
        from connector.utils import retry_after_seconds

        limits = {
            name.lower(): value[:200]
            for name, value in response.headers.items()
            if name.lower() == "retry-after" or "ratelimit" in name.lower() or "rate-limit" in name.lower()
        }
        return CrmRateLimited(
            f"{platform} rate limit",
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            status_code=status,
            limits=limits,
        )
    if status in (401, 403):
        return CrmAuthError(f"{platform} refused the credentials", status_code=status)
    if 300 <= status < 400:
        return CrmRejected(f"{platform} redirected the request (HTTP {status}); it was not followed")
    if status >= 500:
        # 503 says the request was not served; a 500 or a gateway's 502/504 may come after
        # the CRM carried it out.
        return CrmUnavailable(
            f"{platform} failed with HTTP {status}", status_code=status, uncertain=status in (500, 502, 504)
        )
    return CrmRejected(f"{platform} rejected the request with HTTP {status}", status_code=status)


# --- OAuth CRMs -----------------------------------------------------------------------


@dataclass(slots=True)
class OAuthInfo:
    """One OAuth app of a CRM: what the server needs for the token endpoint, and what the
    manifest shows the client (everything but the secret)."""

    client_id: str
    client_secret: str
    token_url: str
    redirect_uri: str
    auth_url: str = ""
    # the manifest's `scope`: a raw query fragment, e.g. "scope=contacts.read contacts.write"
    scope: str = ""
    # how the client authenticates at the token endpoint: Basic (App Connect's default) or
    # the credentials in the form body
    token_auth_method: str = "client_secret_basic"
    revoke_url: str = ""


@dataclass(slots=True)
class OAuthTokens:
    """A token endpoint's answer: `expires_at` is None when the CRM gave no lifetime."""

    access_token: str
    refresh_token: str
    expires_at: datetime | None
    raw: JsonDict = field(default_factory=dict)


class CrmGrantRevoked(CrmAuthError):
    """The token endpoint refused the refresh token (`invalid_grant`): the grant is gone."""


class OAuthNotConfigured(CrmError):
    """The server holds no OAuth app (client id and secret) for this CRM or region."""


# Where RingCentral's hosted page sends the browser back to App Connect's client after the
# CRM's consent screen (crm-connectors.md §2.1); the default redirect of every OAuth app.
EMBEDDABLE_REDIRECT_URI = "https://ringcentral.github.io/ringcentral-embeddable/redirect.html"


class OAuthCrmClient(HttpCrmClient, abc.ABC):
    """Base for CRMs whose users connect with OAuth 2.0 (authorization code, refresh tokens).

    A subclass says which OAuth app to use (`oauth_info`); this class talks to the token
    endpoint (code exchange, refresh, revocation) through the CRM's own HTTP session, so
    OUTBOUND_HOST_MAP, timeouts and mocks apply to it too. The contract refreshes a user's
    access token before each CRM call when it is about to expire, once however many
    threads and processes need it (`connector.services.crm_user_token_ensure`); a
    connector reads `user.access_token` and sends it (`bearer`).
    """

    auth_type = AuthType.OAUTH

    @abc.abstractmethod
    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        """The OAuth app for a user on `hostname` (CRMs with regions pick one by it).

        Usually `oauth_app(...)`: the app configured in the environment, with the CRM's
        own endpoints. An admin may give a RingCentral account its own app; the services
        put its client id and secret over this (`connector.selectors.oauth_info_for`).
        """

    @abc.abstractmethod
    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        """Whose the freshly exchanged `tokens` are (GET /oauth-callback; App Connect's
        `getUserInfo` with a Bearer header). `info` is the OAuth app they were issued to
        (a CRM's token introspection wants its credentials). `query` holds the callback's other fields
        (`apiUrl`, `username`, ...) and `tokens.raw` the token endpoint's extra fields
        (Pipedrive's `api_domain`). No local writes."""

    def oauth_app(
        self,
        key: str,
        *,
        token_url: str,
        auth_url: str,
        scope: str = "",
        revoke_url: str = "",
        token_auth_method: str = "client_secret_basic",  # noqa: S107 (a method name)
    ) -> OAuthInfo:
        """The OAuth app `key` of `CONNECTOR["OAUTH_APPS"]` (from `<KEY>_CLIENT_ID`,
        `<KEY>_CLIENT_SECRET`, `<KEY>_ACCESS_TOKEN_URI`, `<KEY>_REDIRECT_URI`), with the
        CRM's endpoints for what the environment leaves out. Empty client id or secret:
        not configured (the callback says so; the manifest shows no client id)."""
        from connector.conf import connector_settings

        app = connector_settings.OAUTH_APPS.get(key) or {}
        return OAuthInfo(
            client_id=app.get("client_id") or "",
            client_secret=app.get("client_secret") or "",
            token_url=app.get("token_url") or token_url,
            redirect_uri=app.get("redirect_uri") or EMBEDDABLE_REDIRECT_URI,
            auth_url=auth_url,
            scope=scope,
            token_auth_method=token_auth_method,
            revoke_url=revoke_url,
        )

    def oauth_info_for_user(self, user: CrmUser) -> OAuthInfo:
        """The OAuth app `user` connected with (the account's own app when an admin set one)."""
        from connector.selectors import oauth_info_for

        return oauth_info_for(client=self, hostname=user.hostname, rc_account_id=user.rc_account_id)

    def auth_headers(self, user: CrmUser) -> dict[str, str]:
        """The headers that authenticate a CRM call for `user`: the OAuth access token as a
        Bearer token. A connector that also accepts an API token (`get_user_info`) sends
        that one as the CRM wants."""
        return self.bearer(user)

    def manifest_oauth(self, *, hostname: str = "") -> JsonDict:
        """The manifest's `auth.oauth` block: never the client secret."""
        info = self.oauth_info(hostname=hostname)
        return {
            "authUrl": info.auth_url,
            "clientId": info.client_id,
            "redirectUri": info.redirect_uri,
            "scope": info.scope,
            "customState": f"platform={self.platform}",
        }

    def _oauth_session(self, info: OAuthInfo) -> Any:
        session = OAuth2Session(
            info.client_id,
            info.client_secret,
            token_endpoint_auth_method=info.token_auth_method,
            revocation_endpoint_auth_method=info.token_auth_method,
            redirect_uri=info.redirect_uri,
            default_timeout=self.timeout,
        )
        for prefix, adapter in self.session.adapters.items():
            session.mount(prefix, adapter)  # the shared pool and OUTBOUND_HOST_MAP
        return session

    def _tokens(self, token: Any, *, previous_refresh: str = "") -> OAuthTokens:
        expires_at = token.get("expires_at")
        return OAuthTokens(
            access_token=str(token.get("access_token") or ""),
            # a CRM that does not rotate refresh tokens sends none: the old one stays good
            refresh_token=str(token.get("refresh_token") or previous_refresh),
            expires_at=datetime.fromtimestamp(float(expires_at), tz=UTC) if expires_at else None,
            raw={k: v for k, v in dict(token).items() if k not in ("access_token", "refresh_token")},
        )

    def oauth_exchange_code(self, *, info: OAuthInfo, callback_uri: str) -> OAuthTokens:
        """Exchange the authorization code carried by `callback_uri` for tokens."""
        try:
            token = self._oauth_session(info).fetch_token(info.token_url, authorization_response=callback_uri)
        except OAuthError as exc:
            raise CrmAuthError(f"{self.platform} refused the authorization code ({exc.error})") from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"{self.platform}'s token endpoint could not be reached") from exc
        return self._tokens(token)

    def oauth_refresh(self, *, info: OAuthInfo, refresh_token: str) -> OAuthTokens:
        """New tokens for `refresh_token`; `CrmGrantRevoked` when the CRM says the grant is
        gone (`invalid_grant`). Never called inside a transaction."""
        try:
            token = self._oauth_session(info).refresh_token(info.token_url, refresh_token=refresh_token)
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                raise CrmGrantRevoked(f"{self.platform} revoked the grant") from exc
            raise CrmAuthError(f"{self.platform} refused the refresh ({exc.error})") from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"{self.platform}'s token endpoint could not be reached") from exc
        return self._tokens(token, previous_refresh=refresh_token)

    def oauth_revoke(self, *, info: OAuthInfo, token: str, token_type_hint: str) -> None:
        """Revoke a token at the CRM (RFC 7009), where it has a revocation endpoint."""
        if not info.revoke_url or not token:
            return
        try:
            response = self._oauth_session(info).revoke_token(
                info.revoke_url, token=token, token_type_hint=token_type_hint
            )
        except OAuthError as exc:
            raise CrmAuthError(f"{self.platform} refused the revocation ({exc.error})") from exc
        except requests.RequestException as exc:
            raise CrmUnavailable(f"{self.platform}'s revocation endpoint could not be reached") from exc
        if not response.ok:  # authlib hands back the endpoint's answer, whatever it is
            raise crm_error_for_status(response, platform=self.platform)

    @staticmethod
    def bearer(user: CrmUser) -> dict[str, str]:
        """The Authorization header of a CRM call for `user`."""
        return {"Authorization": f"Bearer {user.access_token or ''}"}
