"""The proxy connector: a REST CRM described in JSON (App Connect's `proxyConfig`), and its client.

A config has four parts (crm-connectors.md §3.2; App Connect's docs/developers/proxy-connector.md):
`meta` (name, displayName, logFormat), `auth` (how requests are authenticated, and the
OAuth app for `type: "oauth"`), `requestDefaults` (baseUrl, timeoutSeconds, defaultHeaders)
and `operations`, one HTTP request per interface (`findContact`, `createCallLog`, ...) with
`{{dot.path}}` templates in its url, headers, query and body, and a `responseMapping` of
dot paths into the answer (`body.…`).

The first half of this module is the engine: pure functions with no Django (`render`,
`render_url`, `get_by_path`, `config_errors`). The second is `ProxyCrmClient`, the
`CrmClient` that sends those requests through `HttpCrmClient.request`.

Where we differ from App Connect, on purpose:
- Hosts are allow-listed: an operation's absolute `url` must be on the baseUrl's host or a
  host in `requestDefaults.allowedHosts` (our extension), checked when the config is
  validated and again before each request; the scheme and host are never templated, and
  no secret (`apiKey`, `secretKey`, `authHeader`, the user's tokens) is placed in a URL.
- Values placed in a URL are percent-encoded (App Connect places them raw, §3.6); a value
  that would empty a path segment or make it `.`/`..` is refused.
- Templates may name only the variables their operation has (validated).
- A lookup whose templates use `{{phoneNumber}}` tries E.164, then the national
  significant digits, then the user's overriding formats, until one matches (App Connect
  sends one request, §3.6); a lookup always ends with `NEW_CONTACT_OPTION`.
- A missing single-expression value is left out of a JSON body, as JavaScript's
  JSON.stringify leaves `undefined` out, so an update never blanks a field it has no value for.
- A 429 is waited out and read failures retried (`HttpCrmClient.request`); a mapping path
  that finds nothing where a value is needed (an id) raises `CrmRejected` naming it.
- `findCallLog` / `findMessageLog` (our extension) let a config answer whether the CRM holds
  a log created with `{{logKey}}`; without them such logs wait for an admin.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, quote_plus, unquote, urlsplit

import phonenumbers
import requests

from connector.choices import AuthType
from connector.crm.base import (
    EMBEDDABLE_REDIRECT_URI,
    NEW_CONTACT_OPTION,
    PLATFORM_NAME,
    CallLogDetails,
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    CrmAuthError,
    CrmError,
    CrmRejected,
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
from connector.utils import rc_time_parse

if TYPE_CHECKING:
    from connector.models import CrmUser

# ============================================================================================
# The engine: templates, paths, URLs
# ============================================================================================


class _Missing:
    """A path that leads nowhere (JavaScript's `undefined`), unlike a JSON null."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

# `{{ path }}`; what may stand between the braces is checked by `config_errors`.
_EXPRESSION = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# A template path: a variable name, then keys or list indexes.
_TEMPLATE_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[\w$@-]+)*")
# A response-mapping path: dot-separated keys (JSON keys may hold `-`, `@`, ...).
_MAPPING_PATH = re.compile(r"[^.\s{}]+(?:\.[^.\s{}]+)*")
_INDEX = re.compile(r"[0-9]+")
_ABSOLUTE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _lookup(data: Any, path: str | None) -> Any:
    """`get_by_path`, telling a missing value (`MISSING`) from a null one."""
    if not path or path == "$":
        return data
    current = data
    for segment in path.split("."):
        if isinstance(current, dict):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list) and _INDEX.fullmatch(segment) and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return MISSING
    return current


def get_by_path(data: Any, path: str | None) -> Any:
    """The value at a dot path (`body.contacts.0.id`: keys, and numeric segments that index
    lists), or None when there is none. An empty path or `$` is `data` itself."""
    value = _lookup(data, path)
    return None if value is MISSING else value


def _text(value: Any) -> str:
    """A value as text placed in a larger string: missing and null are empty, booleans are
    `true`/`false` (as JavaScript writes them), objects and lists compact JSON."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def _resolve(expression: str, context: JsonDict) -> Any:
    return _lookup(context, expression) if _TEMPLATE_PATH.fullmatch(expression) else MISSING


def _render(template: Any, context: JsonDict, *, drop_missing: bool) -> Any:
    if isinstance(template, str):
        whole = _EXPRESSION.fullmatch(template)
        if whole:
            return _resolve(whole.group(1), context)
        return _EXPRESSION.sub(lambda match: _text(_resolve(match.group(1), context)), template)
    if isinstance(template, dict):
        rendered = {
            key: _render(value, context, drop_missing=drop_missing) for key, value in template.items()
        }
        if drop_missing:
            return {key: value for key, value in rendered.items() if value is not MISSING}
        return rendered
    if isinstance(template, list):
        return [_render(value, context, drop_missing=drop_missing) for value in template]
    return template


def _missing_as_none(value: Any) -> Any:
    if value is MISSING:
        return None
    if isinstance(value, dict):
        return {key: _missing_as_none(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_missing_as_none(item) for item in value]
    return value


def render(template: Any, context: JsonDict, *, drop_missing: bool = False) -> Any:
    """Render App Connect's `{{dot.path}}` templates in `template`, walking dicts and lists
    (keys are not rendered). A string that is exactly one expression becomes the value
    itself, keeping its type (None when missing); in any other string each expression is
    replaced by the value as text (missing and null: ""). `drop_missing` leaves out the
    dict entries whose single expression found nothing, as JSON.stringify leaves out
    `undefined` (a request body)."""
    return _missing_as_none(_render(template, context, drop_missing=drop_missing))


class UnsafeUrl(ValueError):
    """A rendered URL would not have the path its template gives it."""


def render_url(template: str, context: JsonDict) -> str:
    """Render a URL template: each value an expression places is percent-encoded whole
    (`quote(value, safe="")`), as a path segment before the template's `?` and as a query
    value after it, so no value can add a segment, a query or a fragment.

    Raises `UnsafeUrl` when a value placed in the path is empty (`/activities/` would be
    another resource) or the path holds a `.` or `..` segment."""
    pieces: list[str] = []
    in_path = True
    position = 0
    for match in _EXPRESSION.finditer(template):
        literal = template[position : match.start()]
        pieces.append(literal)
        if "?" in literal or "#" in literal:
            in_path = False
        value = _text(_resolve(match.group(1), context))
        if in_path and not value:
            raise UnsafeUrl("{{" + match.group(1) + "}} is empty where the URL's path needs it")
        pieces.append(quote(value, safe=""))
        position = match.end()
    pieces.append(template[position:])
    url = "".join(pieces)
    path = re.split(r"[?#]", url, maxsplit=1)[0]
    if _ABSOLUTE.match(path):
        path = urlsplit(path).path
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        raise UnsafeUrl(f"{template!r} would hold a '.' or '..' segment")
    return url


def join_url(base_url: str, url: str) -> str:
    """`url` under `base_url`, unless `url` is absolute (App Connect's `joinUrl`)."""
    if _ABSOLUTE.match(url):
        return url
    if not url:
        return base_url
    return f"{base_url.rstrip('/')}/{url.lstrip('/')}"


def template_paths(template: Any) -> list[str]:
    """The dot paths the templates in `template` name, in order (keys not included)."""
    if isinstance(template, str):
        return [match.group(1) for match in _EXPRESSION.finditer(template)]
    if isinstance(template, dict):
        return [path for value in template.values() for path in template_paths(value)]
    if isinstance(template, list):
        return [path for value in template for path in template_paths(value)]
    return []


# ============================================================================================
# The format and its validation
# ============================================================================================


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Variables every operation has (crm-connectors.md §3.4).
COMMON_VARIABLES: Final = _names("user apiKey secretKey authHeader")

_CALL_VARIABLES = _names(
    "subject note startTime endTime composedLogDetails additionalSubmission aiNote transcript"
    " voicemailLink voicemailMessageId hashedAccountId isFromSSCL ringSenseTranscript"
    " ringSenseSummary ringSenseAIScore ringSenseBulletedSummary ringSenseLink"
)
_MESSAGE_VARIABLES = _names(
    "contactInfo message creationTime additionalSubmission recordingLink faxDocLink"
    " faxDownloadLink imageLink videoLink correspondents ownerName assigneeName"
    " sharedSMSLogContent logKey"
)

# Each operation (App Connect's interface names, plus our findCallLog and findMessageLog)
# and the variables its templates may name besides COMMON_VARIABLES: App Connect's
# "Operation Variables" table, with what we also hand over (`logKey`; updateMessageLog
# gets the message's links too, as App Connect's own sample config expects).
OPERATION_VARIABLES: Final[dict[str, frozenset[str]]] = {
    "getUserInfo": _names("hostname platform userEmail additionalInfo"),
    "findContact": _names("phoneNumber parsedPhoneNumber overridingFormat isExtension"),
    "findContactWithName": _names("name"),
    "createContact": _names("phoneNumber newContactName newContactType additionalSubmission"),
    "createCallLog": _CALL_VARIABLES | _names("contactInfo callLog logKey"),
    "getCallLog": _names("thirdPartyLogId contactId"),
    "updateCallLog": _CALL_VARIABLES
    | _names(
        "thirdPartyLogId existingCallLog recordingLink recordingDownloadLink duration result legs"
        " existingCallLogDetails"
    ),
    "upsertCallDisposition": _names("thirdPartyLogId existingCallLog dispositions"),
    "createMessageLog": _MESSAGE_VARIABLES,
    "updateMessageLog": _MESSAGE_VARIABLES | _names("thirdPartyLogId existingMessageLog"),
    "getUserList": _names(""),
    "getLicenseStatus": _names("userId platform"),
    "unAuthorize": _names(""),
    "findCallLog": _names("logKey contactId"),
    "findMessageLog": _names("logKey contactId"),
}

# The operations a working connector needs (the contract's abstract methods): without one,
# its call is refused (CrmRejected). The others are optional (NotImplementedError).
REQUIRED_OPERATIONS: Final = _names(
    "getUserInfo findContact createContact createCallLog updateCallLog createMessageLog"
)

_LIST_ITEM_KEYS = _names(
    "idPath namePath phonePath typePath titlePath companyPath createdDatePath"
    " mostRecentActivityDatePath additionalInfoPath"
)
# responseMapping keys by operation (crm-connectors.md §3.5); `type` ("object" or "list")
# is descriptive only, as in App Connect's sample. Operations absent here map nothing.
MAPPING_KEYS: Final[dict[str, frozenset[str]]] = {
    "getUserInfo": _names(
        "idPath namePath timezoneNamePath overridingApiKeyPath messagePath platformAdditionalInfoPaths"
    ),
    "findContact": _names("listPath item"),
    "findContactWithName": _names("listPath item"),
    "createContact": _names("idPath namePath typePath"),
    "createCallLog": _names("idPath"),
    "createMessageLog": _names("idPath"),
    "getCallLog": _names("subjectPath notePath fullBodyPath"),
    "getUserList": _names("listPath idPath namePath emailPath"),
    "getLicenseStatus": _names("isLicenseValidPath licenseStatusPath licenseStatusDescriptionPath"),
    "findCallLog": _names("listPath idPath"),
    "findMessageLog": _names("listPath idPath"),
}

# What no template may place in a URL (nor any object holding it, such as `{{user}}`).
SECRET_PATHS: Final = (
    "apiKey",
    "secretKey",
    "authHeader",
    "user.accessToken",
    "user.refreshToken",
    "additionalInfo.password",
)

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")
LOG_FORMATS: Final = ("text/plain", "text/html", "text/markdown")
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
MAX_TIMEOUT_SECONDS: Final = 300.0
# A config larger or deeper than this is refused before anything else is looked at.
MAX_CONFIG_BYTES: Final = 256 * 1024
MAX_CONFIG_DEPTH: Final = 32

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)
# Headers that frame the request or pick its destination: never set by a config.
_FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "te", "upgrade"})

_TOP_KEYS = ("meta", "auth", "requestDefaults", "operations")
_META_KEYS = ("name", "displayName", "logFormat", "contactTypes")
_AUTH_KEYS = ("type", "scheme", "headerName", "credentialTemplate", "encode")
_OAUTH_KEYS = ("clientId", "clientSecret", "tokenUrl", "authUrl", "redirectUri", "scope", "tokenAuthMethod")
_PAGE_KEYS = ("title", "warning", "content")
_PAGE_FIELD_KEYS = ("const", "title", "type", "required", "description", "placeholder", "hidden")
_DEFAULTS_KEYS = ("baseUrl", "timeoutSeconds", "defaultHeaders", "allowedHosts")
_OPERATION_KEYS = ("method", "url", "headers", "query", "body", "auth", "responseMapping")
_TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class ConfigError(Exception):
    """A proxy config is not valid; `errors` lists every problem, each naming its place."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = list(errors)


def _expression(path: str) -> str:
    return "{{" + path + "}}"


def _is_secret(path: str) -> bool:
    return any(secret == path or secret.startswith(path + ".") for secret in SECRET_PATHS)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_CONFIG_DEPTH:
            break
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return deepest


class _Checker:
    """Collects the problems of one config."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def add(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def object(
        self, path: str, value: Any, *, known: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.add(path, "must be an object")
            return None
        for key in value:
            if key not in known:
                self.add(f"{path}.{key}", f"unknown key (known: {', '.join(known)})")
        for key in required:
            if key not in value:
                self.add(f"{path}.{key}", "is required")
        return value

    def string(self, path: str, value: Any, *, empty: bool = False) -> str | None:
        if not isinstance(value, str) or (not empty and not value.strip()):
            self.add(path, "must be a non-empty string" if not empty else "must be a string")
            return None
        return value

    def templates(
        self, path: str, value: Any, *, variables: frozenset[str], operation: str, in_url: bool
    ) -> None:
        """Every template in `value` names a known variable by a dot path; none in a URL
        names a secret; no key is templated; no brace is left unmatched."""
        if isinstance(value, dict):
            for key, item in value.items():
                if "{{" in str(key) or "}}" in str(key):
                    self.add(f"{path}.{key}", "keys are not templates (only values are rendered)")
                self.templates(f"{path}.{key}", item, variables=variables, operation=operation, in_url=in_url)
            return
        if isinstance(value, list):
            for index, item in enumerate(value):
                self.templates(
                    f"{path}.{index}", item, variables=variables, operation=operation, in_url=in_url
                )
            return
        if not isinstance(value, str):
            return
        rest = _EXPRESSION.sub("", value)
        if "{{" in rest or "}}" in rest:
            self.add(path, f"{value!r} has an unmatched '{{{{' or '}}}}'")
        for expression in (match.group(1) for match in _EXPRESSION.finditer(value)):
            if not _TEMPLATE_PATH.fullmatch(expression):
                self.add(path, f"{_expression(expression)} is not a dot path (name.key.0.key)")
                continue
            head = expression.split(".", 1)[0]
            if head not in variables:
                known = ", ".join(sorted(variables))
                self.add(
                    path,
                    f"{_expression(expression)} names an unknown variable {head!r}"
                    f" ({operation} has: {known})",
                )
            elif in_url and _is_secret(expression):
                self.add(
                    path, f"{_expression(expression)} would put a secret in the URL; send it in a header"
                )

    def headers(self, path: str, value: Any, *, variables: frozenset[str], operation: str) -> None:
        if not isinstance(value, dict):
            self.add(path, "must be an object of header names and values")
            return
        for name, item in value.items():
            if not _HEADER_NAME.fullmatch(name):
                self.add(f"{path}.{name}", "is not a valid header name")
            elif name.lower() in _FORBIDDEN_HEADERS:
                self.add(f"{path}.{name}", "may not be set by a config")
            if not isinstance(item, str):
                self.add(f"{path}.{name}", "must be a string")
            elif "\r" in item or "\n" in item:
                self.add(f"{path}.{name}", "may not hold a line break")
        self.templates(path, value, variables=variables, operation=operation, in_url=False)

    def url(self, path: str, value: Any, *, hosts: frozenset[str], base_host: str) -> None:
        """An operation's url: a path under baseUrl, or an absolute http(s) URL on an
        allowed host whose scheme and host are literal."""
        if not isinstance(value, str):
            self.add(path, "must be a string")
            return
        if any(ch.isspace() or ord(ch) < 32 for ch in value):
            self.add(path, "may not hold spaces or control characters")
            return
        literal_path = re.split(r"[?#]", value, maxsplit=1)[0]
        if _SCHEME.match(value):
            if not _ABSOLUTE.match(value):
                self.add(path, f"{value!r} must be a path (/…), or an absolute http(s)://host/… URL")
                return
            scheme, rest = value.split("://", 1)
            authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
            if "{{" in authority or "}}" in authority or "{{" in scheme:
                self.add(path, "the scheme and host may not be templated")
                return
            try:
                parts = urlsplit(f"{scheme}://{authority}")
                host = (parts.hostname or "").lower()
                parts.port  # noqa: B018 - raises on a port that is not a number
            except ValueError:
                self.add(path, f"{value!r} is not a valid URL")
                return
            if "@" in authority:
                self.add(path, "may not carry credentials (user@host)")
            if scheme.lower() not in ("https", "http") or (
                scheme.lower() == "http" and host not in LOOPBACK_HOSTS
            ):
                self.add(path, "must be https (http only for 127.0.0.1 or localhost)")
            if host not in hosts:
                self.add(
                    path,
                    f"goes to host {host!r}, which is neither the baseUrl's host ({base_host}) "
                    "nor in requestDefaults.allowedHosts",
                )
            literal_path = urlsplit(literal_path).path
        if any(segment in (".", "..") for segment in literal_path.split("/")):
            self.add(path, "may not hold '.' or '..' segments")

    def mapping_path(self, path: str, value: Any) -> None:
        if not isinstance(value, str) or (value not in ("", "$") and not _MAPPING_PATH.fullmatch(value)):
            self.add(path, "must be a dot path such as body.items.0.id")


def _base_url_host(checker: _Checker, value: Any) -> str:
    """The host of a valid baseUrl, or "" (with the problem added)."""
    path = "requestDefaults.baseUrl"
    if not isinstance(value, str) or not value:
        checker.add(path, "is required: the https URL every operation's path is joined to")
        return ""
    if "{{" in value or "}}" in value:
        checker.add(path, "may not be templated")
        return ""
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        checker.add(path, f"{value!r} is not a valid URL")
        return ""
    secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)
    if not host or not secure or any(ch.isspace() for ch in value):
        checker.add(path, "must be an https URL (http only for 127.0.0.1 or localhost)")
        return ""
    if parts.username is not None or parts.password is not None:
        checker.add(path, "may not carry credentials (user@host)")
    if parts.query or parts.fragment:
        checker.add(path, "may not have a query or a fragment")
    return host


def _check_meta(checker: _Checker, meta: Any) -> None:
    meta = checker.object("meta", meta, known=_META_KEYS, required=("name",))
    if meta is None:
        return
    name = meta.get("name")
    if "name" in meta and (not isinstance(name, str) or not PLATFORM_NAME.fullmatch(name)):
        checker.add(
            "meta.name", "must start with a letter and hold only letters, digits, '_' and '-' (64 at most)"
        )
    if "displayName" in meta:
        checker.string("meta.displayName", meta["displayName"])
    if "logFormat" in meta and meta["logFormat"] not in LOG_FORMATS:
        checker.add("meta.logFormat", f"must be one of {', '.join(LOG_FORMATS)}")
    if "contactTypes" in meta:
        types = meta["contactTypes"]
        if not isinstance(types, list) or not types:
            checker.add("meta.contactTypes", "must be a non-empty list of {display, value}")
            return
        for index, item in enumerate(types):
            item = checker.object(
                f"meta.contactTypes.{index}", item, known=("display", "value"), required=("display", "value")
            )
            if item is not None:
                for key in ("display", "value"):
                    if key in item:
                        checker.string(f"meta.contactTypes.{index}.{key}", item[key])


def _check_auth_block(
    checker: _Checker, path: str, auth: dict[str, Any], *, variables: frozenset[str], operation: str
) -> None:
    """The header-building part of `auth`, top-level or an operation's override."""
    if "type" in auth and auth["type"] not in (AuthType.API_KEY, AuthType.OAUTH):
        checker.add(f"{path}.type", "must be apiKey or oauth")
    if "encode" in auth and auth["encode"] not in ("base64", "none"):
        checker.add(f"{path}.encode", "must be base64 or none")
    if "headerName" in auth:
        name = auth["headerName"]
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            checker.add(f"{path}.headerName", "is not a valid header name")
        elif name.lower() in _FORBIDDEN_HEADERS:
            checker.add(f"{path}.headerName", "may not be set by a config")
    if "scheme" in auth:
        scheme = auth["scheme"]
        if not isinstance(scheme, str) or not _HEADER_NAME.fullmatch(scheme):
            checker.add(f"{path}.scheme", "must be one word, such as Basic or Bearer")
    if "credentialTemplate" in auth:
        template = auth["credentialTemplate"]
        if not isinstance(template, str) or "\r" in template or "\n" in template:
            checker.add(f"{path}.credentialTemplate", "must be a one-line string")
        else:
            checker.templates(
                f"{path}.credentialTemplate", template, variables=variables, operation=operation, in_url=False
            )


def _check_absolute(checker: _Checker, path: str, value: Any, *, hosts: frozenset[str] | None) -> None:
    """An OAuth endpoint: an https URL (http for loopback), on an allowed host if `hosts`."""
    if not isinstance(value, str) or not value:
        checker.add(path, "must be an https URL")
        return
    try:
        parts = urlsplit(value)
        host = (parts.hostname or "").lower()
    except ValueError:
        checker.add(path, f"{value!r} is not a valid URL")
        return
    if (
        "{{" in value
        or not host
        or not (parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS))
    ):
        checker.add(path, "must be an https URL (http only for 127.0.0.1 or localhost), not templated")
    elif hosts is not None and host not in hosts:
        checker.add(
            path,
            f"goes to host {host!r}, which is neither the baseUrl's host nor in requestDefaults.allowedHosts "
            "(it receives the client secret and the users' tokens)",
        )


def _check_auth(checker: _Checker, auth: Any, *, hosts: frozenset[str] | None) -> None:
    auth = checker.object("auth", auth, known=(*_AUTH_KEYS, *_OAUTH_KEYS, "page"), required=("type",))
    if auth is None:
        return
    # The top-level auth serves every operation: only the variables they all have.
    _check_auth_block(checker, "auth", auth, variables=COMMON_VARIABLES, operation="every operation")
    if auth.get("type") == AuthType.OAUTH:
        for key in ("clientId", "authUrl", "tokenUrl"):
            if key not in auth:
                checker.add(f"auth.{key}", "is required for OAuth")
        if "clientId" in auth:
            checker.string("auth.clientId", auth["clientId"])
        if "authUrl" in auth:
            _check_absolute(checker, "auth.authUrl", auth["authUrl"], hosts=None)
        if "tokenUrl" in auth:
            _check_absolute(checker, "auth.tokenUrl", auth["tokenUrl"], hosts=hosts)
    for key in ("clientSecret", "scope"):
        if key in auth:
            checker.string(f"auth.{key}", auth[key], empty=True)
    if "redirectUri" in auth:
        _check_absolute(checker, "auth.redirectUri", auth["redirectUri"], hosts=None)
    if "tokenAuthMethod" in auth and auth["tokenAuthMethod"] not in _TOKEN_AUTH_METHODS:
        checker.add("auth.tokenAuthMethod", f"must be one of {', '.join(_TOKEN_AUTH_METHODS)}")
    if "page" in auth:
        page = checker.object("auth.page", auth["page"], known=_PAGE_KEYS)
        if page is not None:
            for key in ("title", "warning"):
                if key in page:
                    checker.string(f"auth.page.{key}", page[key], empty=True)
            content = page.get("content", [])
            if not isinstance(content, list):
                checker.add("auth.page.content", "must be a list of fields")
                content = []
            for index, field in enumerate(content):
                where = f"auth.page.content.{index}"
                field = checker.object(where, field, known=_PAGE_FIELD_KEYS, required=("const", "title"))
                if field is None:
                    continue
                if "const" in field and not (
                    isinstance(field["const"], str) and _FIELD_NAME.fullmatch(field["const"])
                ):
                    checker.add(f"{where}.const", "must be a field name (letters, digits, '_')")
                for key in ("required", "hidden"):
                    if key in field and not isinstance(field[key], bool):
                        checker.add(f"{where}.{key}", "must be true or false")


def _check_defaults(checker: _Checker, defaults: Any) -> tuple[str, frozenset[str]]:
    """requestDefaults; returns the baseUrl's host and every allowed host."""
    defaults = checker.object("requestDefaults", defaults, known=_DEFAULTS_KEYS, required=("baseUrl",))
    if defaults is None:
        return "", frozenset()
    base_host = _base_url_host(checker, defaults.get("baseUrl")) if "baseUrl" in defaults else ""
    hosts = {base_host} if base_host else set()
    allowed = defaults.get("allowedHosts", [])
    if not isinstance(allowed, list):
        checker.add("requestDefaults.allowedHosts", "must be a list of host names")
        allowed = []
    for index, host in enumerate(allowed):
        if not isinstance(host, str) or not _HOSTNAME.fullmatch(host):
            checker.add(
                f"requestDefaults.allowedHosts.{index}", "must be a lower-case host name (api.example.com)"
            )
        else:
            hosts.add(host)
    if "timeoutSeconds" in defaults:
        timeout = defaults["timeoutSeconds"]
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 < timeout <= MAX_TIMEOUT_SECONDS
        ):
            checker.add(
                "requestDefaults.timeoutSeconds",
                f"must be a number of seconds, above 0 and at most {MAX_TIMEOUT_SECONDS:g}",
            )
    if "defaultHeaders" in defaults:
        checker.headers(
            "requestDefaults.defaultHeaders",
            defaults["defaultHeaders"],
            variables=COMMON_VARIABLES,
            operation="every operation",
        )
    return base_host, frozenset(hosts)


def _check_mapping(checker: _Checker, path: str, name: str, mapping: Any) -> None:
    known = MAPPING_KEYS.get(name, frozenset())
    mapping = checker.object(path, mapping, known=tuple(sorted(known | {"type"})))
    if mapping is None:
        return
    if "type" in mapping and mapping["type"] not in ("object", "list"):
        checker.add(f"{path}.type", "must be object or list")
    for key, value in mapping.items():
        if key in ("type", "item", "platformAdditionalInfoPaths") or key not in known:
            continue
        checker.mapping_path(f"{path}.{key}", value)
    if "item" in mapping:
        item = checker.object(f"{path}.item", mapping["item"], known=tuple(sorted(_LIST_ITEM_KEYS)))
        for key, value in (item or {}).items():
            if key in _LIST_ITEM_KEYS:
                checker.mapping_path(f"{path}.item.{key}", value)
    if "platformAdditionalInfoPaths" in mapping:
        paths = mapping["platformAdditionalInfoPaths"]
        if not isinstance(paths, dict):
            checker.add(f"{path}.platformAdditionalInfoPaths", "must be an object of names and dot paths")
        else:
            for key, value in paths.items():
                if not _FIELD_NAME.fullmatch(str(key)):
                    checker.add(f"{path}.platformAdditionalInfoPaths.{key}", "is not a field name")
                checker.mapping_path(f"{path}.platformAdditionalInfoPaths.{key}", value)


def _check_operation(
    checker: _Checker, name: str, operation: Any, *, hosts: frozenset[str], base_host: str
) -> None:
    path = f"operations.{name}"
    operation = checker.object(path, operation, known=_OPERATION_KEYS, required=("url",))
    if operation is None:
        return
    variables = COMMON_VARIABLES | OPERATION_VARIABLES[name]
    method = operation.get("method", "GET")
    if not isinstance(method, str) or method.upper() not in METHODS:
        checker.add(f"{path}.method", f"{method!r} is not one of {', '.join(METHODS)}")
    elif method.upper() == "GET" and "body" in operation:
        checker.add(f"{path}.body", "a GET request has no body; use query")
    if "url" in operation:
        checker.url(f"{path}.url", operation["url"], hosts=hosts, base_host=base_host)
        if isinstance(operation["url"], str):
            checker.templates(
                f"{path}.url", operation["url"], variables=variables, operation=name, in_url=True
            )
    if "headers" in operation:
        checker.headers(f"{path}.headers", operation["headers"], variables=variables, operation=name)
    if "query" in operation:
        query = operation["query"]
        if not isinstance(query, dict):
            checker.add(f"{path}.query", "must be an object of parameter names and values")
        else:
            for key, value in query.items():
                scalars = value if isinstance(value, list) else [value]
                if any(isinstance(item, dict | list) for item in scalars):
                    checker.add(f"{path}.query.{key}", "must be a value or a list of values")
            checker.templates(f"{path}.query", query, variables=variables, operation=name, in_url=True)
    if "body" in operation:
        checker.templates(
            f"{path}.body", operation["body"], variables=variables, operation=name, in_url=False
        )
    if "auth" in operation:
        auth = checker.object(f"{path}.auth", operation["auth"], known=_AUTH_KEYS)
        if auth is not None:
            _check_auth_block(checker, f"{path}.auth", auth, variables=variables, operation=name)
    if "responseMapping" in operation:
        _check_mapping(checker, f"{path}.responseMapping", name, operation["responseMapping"])


def config_errors(config: Any) -> list[str]:
    """Every problem of a proxy config, each as `<place>: <what is wrong>` (e.g.
    `operations.findContact.url: ...`); an empty list for a valid config.

    Checked: the structure (known keys only, required ones present, types, methods, log
    formats, auth types and the OAuth fields); that templates name only their operation's
    variables by dot paths (`OPERATION_VARIABLES`); that the baseUrl is https (http only
    on loopback), that an absolute url stays on the baseUrl's host or `allowedHosts` with
    a literal scheme and host, and that no secret is placed in a URL or query."""
    if not isinstance(config, dict):
        return ["config: must be a JSON object"]
    try:
        size = len(json.dumps(config, allow_nan=False).encode())
    except (TypeError, ValueError):
        return ["config: must be plain JSON (objects, lists, strings, numbers, true/false/null)"]
    if size > MAX_CONFIG_BYTES:
        return [f"config: is {size} bytes; at most {MAX_CONFIG_BYTES} are accepted"]
    if _depth(config) > MAX_CONFIG_DEPTH:
        return [f"config: is nested more than {MAX_CONFIG_DEPTH} levels deep"]
    checker = _Checker()
    for key in config:
        if key not in _TOP_KEYS:
            checker.add(str(key), f"unknown key (known: {', '.join(_TOP_KEYS)})")
    for key in _TOP_KEYS:
        if key not in config:
            checker.add(key, "is required")
    if "meta" in config:
        _check_meta(checker, config["meta"])
    base_host, hosts = "", frozenset[str]()
    if "requestDefaults" in config:
        base_host, hosts = _check_defaults(checker, config["requestDefaults"])
    if "auth" in config:
        _check_auth(checker, config["auth"], hosts=hosts if base_host else None)
    operations = config.get("operations")
    if "operations" in config and not isinstance(operations, dict):
        checker.add("operations", "must be an object of operations by interface name")
    elif isinstance(operations, dict):
        known = ", ".join(OPERATION_VARIABLES)
        for name, operation in operations.items():
            if name not in OPERATION_VARIABLES:
                checker.add(f"operations.{name}", f"unknown operation (known: {known})")
                continue
            _check_operation(checker, name, operation, hosts=hosts, base_host=base_host)
    return checker.errors


# ============================================================================================
# Phone numbers and times as App Connect hands them to templates
# ============================================================================================


def phone_number_parse(raw: str, *, region: str | None = None) -> JsonDict:
    """`parsedPhoneNumber`: the shape of awesome-phonenumber's parse result that App Connect
    hands findContact (`valid`, `possible`, `regionCode`, `countryCode`, `number.{input,
    e164, international, national, rfc3966, significant}`)."""
    text = (raw or "").strip()
    try:
        parsed = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return {"valid": False, "possible": False, "number": {"input": raw}}
    fmt = phonenumbers.PhoneNumberFormat
    return {
        "valid": phonenumbers.is_valid_number(parsed),
        "possible": phonenumbers.is_possible_number(parsed),
        "regionCode": phonenumbers.region_code_for_number(parsed),
        "countryCode": parsed.country_code,
        "number": {
            "input": raw,
            "e164": phonenumbers.format_number(parsed, fmt.E164),
            "international": phonenumbers.format_number(parsed, fmt.INTERNATIONAL),
            "national": phonenumbers.format_number(parsed, fmt.NATIONAL),
            "rfc3966": phonenumbers.format_number(parsed, fmt.RFC3966),
            "significant": phonenumbers.national_significant_number(parsed),
        },
    }


def iso_time(value: Any, *, plus_seconds: Any = 0) -> str | None:
    """`value` as moment's `toISOString()` (UTC, milliseconds, `Z`), `plus_seconds` later;
    None when either is not a time or a number of seconds (server-side logging's
    "pending" duration)."""
    moment = rc_time_parse(value)
    if moment is None or isinstance(plus_seconds, bool):
        return None
    try:
        moment += timedelta(seconds=float(plus_seconds or 0))
    except (TypeError, ValueError, OverflowError):
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ============================================================================================
# The client
# ============================================================================================

MASK: Final = "••••"


def _message(text: str, message_type: str = "success", ttl: int = 2000) -> JsonDict:
    return {"message": text, "messageType": message_type, "ttl": ttl}


@dataclass(slots=True)
class _Request:
    """One operation's request, rendered."""

    operation: str
    method: str
    url: str  # without the query
    headers: dict[str, str]
    query: dict[str, Any]
    body: Any
    form: bool  # the body goes as application/x-www-form-urlencoded


def _query_value(value: Any) -> Any:
    return [_text(item) for item in value] if isinstance(value, list) else _text(value)


def _answer(response: requests.Response) -> Any:
    """The CRM's answer: JSON when it is JSON, else its text (None when empty)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _in_operation(exc: CrmError, operation: str) -> None:
    """Name the operation in `exc`'s message."""
    exc.args = (f"{exc.args[0] if exc.args else exc} ({operation})", *exc.args[1:])


def _latin1(text: str) -> bool:
    """Whether `text` can be sent as an HTTP header value (http.client encodes Latin-1)."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


class ProxyCrmClient(OAuthCrmClient):
    """A CRM described by a proxy config; one instance per config (and per revision).

    Shared by every thread of a process: the config is copied at construction and never
    changed, and nothing of a user is kept. Its `auth_type` is the config's `auth.type`;
    for an API-key config the contract's token refresh is a no-op (its users have no
    refresh token). Every request goes through `HttpCrmClient.request` (typed errors,
    Retry-After, OUTBOUND_HOST_MAP), with the config's `timeoutSeconds` capped by
    OUTBOUND_TIMEOUT_SECONDS, and only to the baseUrl's host or `allowedHosts`.
    """

    def __init__(self, platform: str, *, config: JsonDict, secret_key: str = "", proxy_id: str = "") -> None:
        """Validate `config` (`ConfigError` listing every problem) and build the client."""
        errors = config_errors(config)
        if errors:
            raise ConfigError(errors)
        super().__init__(platform)
        self.config: JsonDict = copy.deepcopy(config)
        self.secret_key = secret_key
        self.proxy_id = proxy_id
        self.meta: JsonDict = self.config["meta"]
        self.auth: JsonDict = self.config["auth"]
        self.defaults: JsonDict = self.config["requestDefaults"]
        self.operations: dict[str, JsonDict] = self.config["operations"]
        self.auth_type = self.auth["type"]  # type: ignore[misc]  # per config, not per class
        self.display_name: str = self.meta.get("displayName") or self.meta["name"]
        base_host = (urlsplit(self.defaults["baseUrl"]).hostname or "").lower()
        self.hosts = frozenset({base_host, *self.defaults.get("allowedHosts", [])})
        self.request_timeout = min(
            float(self.defaults.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS), self.timeout
        )
        find = self.operations.get("findContact") or {}
        used = {path.split(".", 1)[0] for path in template_paths(find)}
        # Phone formats are tried one after another only where the number is placed as given.
        self.tries_phone_formats = "phoneNumber" in used

    # manifest and capabilities

    def contact_types(self) -> list[JsonDict]:
        return list(self.meta.get("contactTypes") or [{"display": "Contact", "value": "Contact"}])

    def manifest(self) -> JsonDict:
        auth: JsonDict
        if self.auth_type == AuthType.OAUTH:
            auth = {"type": "oauth", "oauth": self.manifest_oauth()}
        else:
            page = self.auth.get("page") or {}
            content = [{"const": "apiKey", "title": "API key", "type": "string", "required": True}]
            content += [dict(f) for f in page.get("content") or [] if f.get("const") != "apiKey"]
            shown: JsonDict = {"title": page.get("title") or self.display_name, "content": content}
            if page.get("warning"):
                shown["warning"] = page["warning"]
            auth = {"type": "apiKey", "apiKey": {"page": shown}}
        return {
            "name": self.platform,
            "displayName": self.display_name,
            "auth": auth,
            "contactTypes": self.contact_types(),
            "canOpenLogPage": False,
            "page": {"useContactSearch": "findContactWithName" in self.operations},
        }

    def get_log_format_type(self) -> str:
        """`meta.logFormat`; plain text when the config names none."""
        return str(self.meta.get("logFormat") or "text/plain")

    def implemented_interfaces(self) -> dict[str, bool]:
        """The contract's map, with the optional interfaces the config has."""
        result = super().implemented_interfaces()
        result["getCallLog"] = "getCallLog" in self.operations
        result["updateMessageLog"] = "updateMessageLog" in self.operations
        result["findContactWithName"] = "findContactWithName" in self.operations
        return result

    # auth

    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        """The config's OAuth app: `auth.clientId`, `auth.clientSecret` (else the secret
        key), `tokenUrl`, `authUrl`, `redirectUri`, `scope`. A token URL offered by the
        caller is not used: the token endpoint receives the client secret."""
        auth = self.auth
        return OAuthInfo(
            client_id=str(auth.get("clientId") or ""),
            client_secret=str(auth.get("clientSecret") or self.secret_key),
            token_url=str(auth.get("tokenUrl") or ""),
            redirect_uri=str(auth.get("redirectUri") or EMBEDDABLE_REDIRECT_URI),
            auth_url=str(auth.get("authUrl") or ""),
            scope=str(auth.get("scope") or ""),
            token_auth_method=str(auth.get("tokenAuthMethod") or "client_secret_basic"),
        )

    def _user_context(self, user: CrmUser | None, access: str) -> JsonDict:
        if user is None:
            return {"accessToken": access}
        return {
            "accessToken": access,
            "id": user.id.removesuffix(f"-{self.platform}"),
            "hostname": user.hostname,
            "timezoneName": user.timezone_name,
            "timezoneOffset": user.timezone_offset,
            "platform": user.platform,
            "platformAdditionalInfo": user.platform_additional_info,
            "refreshToken": user.refresh_token or "",
            "tokenExpiry": user.token_expiry.isoformat() if user.token_expiry else None,
        }

    def _context(self, *, user: CrmUser | None, inputs: JsonDict, api_key: str = "") -> JsonDict:
        """An operation's template variables: its inputs, then the ones every operation
        has (which win, as in App Connect): `user`, `authHeader`, `apiKey`, `secretKey`."""
        access = (user.access_token if user is not None else "") or api_key
        if self.auth_type == AuthType.OAUTH:
            auth_header = f"Bearer {access}"
        else:
            auth_header = f"Basic {self.get_basic_auth(api_key=access)}"
        return {
            # An input we have no value for is missing, not null: a body leaves it out.
            **{key: value for key, value in inputs.items() if value is not None},
            "user": self._user_context(user, access),
            "authHeader": auth_header,
            "apiKey": access,
            "secretKey": self.secret_key,
        }

    def _auth_header(self, operation: JsonDict, context: JsonDict) -> tuple[str, str]:
        """(header name, value) as §3.2 says: a rendered `credentialTemplate` (base64 unless
        `encode: none`, after `scheme`); else an API key as `Basic base64(key:)`; else the
        OAuth access token after `scheme` (Bearer). An operation's `auth` replaces the top one."""
        auth = operation.get("auth") or self.auth
        name = str(auth.get("headerName") or "Authorization")
        scheme = str(auth.get("scheme") or "")
        if auth.get("credentialTemplate"):
            credentials = _text(render(auth["credentialTemplate"], context))
            if auth.get("encode") != "none":
                credentials = base64.b64encode(credentials.encode()).decode()
            return name, f"{scheme} {credentials}" if scheme else credentials
        if self.auth_type == AuthType.OAUTH:
            return name, f"{scheme or 'Bearer'} {context['apiKey']}"
        return name, str(context["authHeader"])

    def _prepare(self, name: str, context: JsonDict) -> _Request:
        operation = self.operations[name]
        try:
            url = join_url(self.defaults["baseUrl"], render_url(operation["url"], context))
        except UnsafeUrl as exc:
            raise CrmRejected(f"{self.platform}: {name} refused: {exc}") from exc
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        secure = parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS)
        if host not in self.hosts or not secure:
            raise CrmRejected(
                f"{self.platform}: {name} refused: {parts.scheme}://{host} is not the CRM's host "
                f"({', '.join(sorted(self.hosts))})"
            )
        headers: dict[str, tuple[str, str]] = {}
        for source in (self.defaults.get("defaultHeaders") or {}, operation.get("headers") or {}):
            for key, value in render(source, context).items():
                if value is not None:
                    headers[key.lower()] = (key, _text(value))
        auth_name, auth_value = self._auth_header(operation, context)
        headers[auth_name.lower()] = (auth_name, auth_value)
        for key, value in headers.values():
            if "\r" in value or "\n" in value or not value.isprintable() or not _latin1(value):
                raise CrmRejected(
                    f"{self.platform}: {name} refused: header {key} would hold a line break, a control "
                    "character or a character HTTP headers cannot carry"
                )
        query = {
            key: _query_value(value)
            for key, value in render(operation.get("query") or {}, context).items()
            if value is not None
        }
        method = str(operation.get("method") or "GET").upper()
        body = None if method == "GET" else render(operation.get("body", {}), context, drop_missing=True)
        content_type = headers.get("content-type", ("", ""))[1].lower()
        return _Request(
            operation=name,
            method=method,
            url=url,
            headers=dict(headers.values()),
            query=query,
            body=body,
            form=content_type.startswith("application/x-www-form-urlencoded") and isinstance(body, dict),
        )

    def _perform(self, name: str, context: JsonDict, *, record: list[JsonDict] | None = None) -> Any:
        """Send operation `name` rendered with `context`; the CRM's answer (JSON, or text).
        `record` (try it) receives the request as sent and its status."""
        call = self._prepare(name, context)
        kwargs: JsonDict = {"headers": call.headers, "timeout": self.request_timeout}
        if call.query:
            kwargs["params"] = call.query
        if call.body is not None:
            if call.form:
                kwargs["data"] = {key: _text(value) for key, value in call.body.items()}
            else:
                kwargs["json"] = call.body
        entry: JsonDict = {}
        if record is not None:
            sent = requests.models.PreparedRequest()
            sent.prepare_url(call.url, call.query)
            entry = {
                "operation": name,
                "method": call.method,
                "url": sent.url,
                "headers": dict(call.headers),
                "body": call.body,
                "status": None,
            }
            record.append(entry)
        try:
            response = self.request(call.method, call.url, **kwargs)
        except CrmError as exc:
            # No status when the CRM was never heard from (the error's default is not one).
            reached = not isinstance(exc.__cause__, requests.RequestException)
            entry["status"] = exc.status_code if reached else None
            _in_operation(exc, name)
            raise
        entry["status"] = response.status_code
        return _answer(response)

    def _operation(self, name: str) -> JsonDict:
        """The config's operation `name`: CrmRejected for a required one it lacks,
        NotImplementedError for an optional one."""
        operation = self.operations.get(name)
        if operation is None:
            if name in REQUIRED_OPERATIONS:
                raise CrmRejected(f"{self.platform}: the connector's config has no {name} operation")
            raise NotImplementedError(name)
        return operation

    def _mapped(
        self, name: str, answer: Any, key: str, *, default: str, required: bool, write: bool = False
    ) -> Any:
        """The value at the operation's `responseMapping[key]` (else `default`) in
        `{body: answer}`; CrmRejected naming both when `required` and nothing is there."""
        mapping = self.operations[name].get("responseMapping") or {}
        path = mapping.get(key) or default
        value = _lookup({"body": answer}, path)
        if required and (value is MISSING or value is None or value == ""):
            raise CrmRejected(
                f"{self.platform}: the answer to {name} has no value at {path!r} (responseMapping.{key})",
                uncertain=write,
            )
        return None if value is MISSING else value

    # login

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        """Log in with an API key (and the login page's other fields, `additionalInfo.*`):
        the getUserInfo operation. Credentials the CRM refuses are a failed login."""
        return self._user_info(api_key=api_key, hostname=hostname, additional_info=additional_info)

    def _user_info(
        self, *, api_key: str, hostname: str, additional_info: JsonDict, record: list[JsonDict] | None = None
    ) -> UserInfoResult:
        self._operation("getUserInfo")
        if not (api_key or "").strip():
            return UserInfoResult(
                successful=False, return_message=_message("Please enter your API key.", "warning", 3000)
            )
        inputs: JsonDict = {
            "hostname": hostname,
            "platform": self.platform,
            "userEmail": "",
            "additionalInfo": dict(additional_info or {}),
        }
        try:
            answer = self._perform(
                "getUserInfo", self._context(user=None, inputs=inputs, api_key=api_key), record=record
            )
        except CrmAuthError:
            return UserInfoResult(
                successful=False,
                return_message=_message(f"{self.display_name} refused these credentials.", "warning", 3000),
            )
        mapping = self.operations["getUserInfo"].get("responseMapping") or {}
        scope = {
            "body": answer,
            "additionalInfo": inputs["additionalInfo"],
            "apiKey": api_key,
            "hostname": hostname,
            "platform": self.platform,
        }
        id_path = mapping.get("idPath") or "body.id"
        raw_id = _lookup(scope, id_path)
        if raw_id is MISSING or raw_id is None or raw_id == "":
            raise CrmRejected(
                f"{self.platform}: the answer to getUserInfo has no value at {id_path!r}"
                " (responseMapping.idPath)"
            )
        name = _lookup(scope, mapping["namePath"]) if mapping.get("namePath") else raw_id
        timezone_name = (
            _lookup(scope, mapping["timezoneNamePath"]) if mapping.get("timezoneNamePath") else None
        )
        overriding = (
            _lookup(scope, mapping["overridingApiKeyPath"]) if mapping.get("overridingApiKeyPath") else None
        )
        message = _lookup(scope, mapping["messagePath"]) if mapping.get("messagePath") else None
        info = {k: v for k, v in inputs["additionalInfo"].items() if k not in ("password", "apiKey")}
        for key, path in (mapping.get("platformAdditionalInfoPaths") or {}).items():
            info[key] = get_by_path(scope, path)
        return UserInfoResult(
            successful=True,
            user_id=f"{_text(raw_id)}-{self.platform}",
            name=_text(name),
            timezone_name=_text(timezone_name),
            platform_additional_info=info,
            overriding_api_key=_text(overriding),
            return_message=_message(_text(message) or f"Connected to {self.display_name}.", ttl=1000),
        )

    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        """Whose freshly exchanged tokens these are: the getUserInfo operation with the
        access token (`apiKey` and `user.accessToken` in templates)."""
        result = self._user_info(api_key=tokens.access_token, hostname=hostname, additional_info={})
        result.overriding_api_key = ""  # an OAuth user's token is the token endpoint's
        return result

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        """The unAuthorize operation when the config has one (a session or token ended at
        the CRM); the caller forgets the credentials."""
        if "unAuthorize" in self.operations:
            self._perform("unAuthorize", self._context(user=user, inputs={}))
        return _message(f"Logged out of {self.display_name}.", ttl=1000)

    # contacts

    def _contacts(self, name: str, answer: Any, *, phone: str | None) -> list[JsonDict]:
        """The mapped contacts of a findContact / findContactWithName answer."""
        mapping = self.operations[name].get("responseMapping") or {}
        list_path = mapping.get("listPath") or "body"
        items = _lookup({"body": answer}, list_path)
        if items is None:
            return []
        if not isinstance(items, list):
            found = "nothing" if items is MISSING else type(items).__name__
            raise CrmRejected(
                f"{self.platform}: the answer to {name} has {found} at {list_path!r} "
                "(responseMapping.listPath), not a list"
            )
        item_map = mapping.get("item") or {}
        default_type = self.contact_types()[0]["value"]

        def field(item: Any, key: str, default: str) -> Any:
            value = _lookup(item, item_map.get(key) or default)
            return None if value is MISSING or value == "" else value

        contacts = []
        for index, item in enumerate(items):
            contact_id = field(item, "idPath", "id")
            if contact_id is None:
                path = item_map.get("idPath") or "id"
                raise CrmRejected(
                    f"{self.platform}: contact {index} of the answer to {name} has no value at {path!r} "
                    "(responseMapping.item.idPath)"
                )
            contacts.append(
                {
                    "id": _text(contact_id),
                    "name": _text(field(item, "namePath", "name")),
                    "type": _text(field(item, "typePath", "type")) or default_type,
                    "phone": field(item, "phonePath", "phone") or phone,
                    "title": _text(field(item, "titlePath", "title")),
                    "company": _text(field(item, "companyPath", "company")),
                    "createdDate": field(item, "createdDatePath", "createdDate"),
                    "mostRecentActivityDate": field(
                        item, "mostRecentActivityDatePath", "mostRecentActivityDate"
                    ),
                    "additionalInfo": field(item, "additionalInfoPath", "additionalInfo"),
                }
            )
        return contacts

    def _phone_terms(self, phone_number: str, overriding_format: str, is_extension: bool) -> list[str]:
        """What `{{phoneNumber}}` is tried with, in order: E.164, the national significant
        digits, then the user's overriding formats filled with those digits."""
        from connector.utils import overriding_formats_render

        parsed = phone_number_parse(phone_number)
        if not self.tries_phone_formats or is_extension or "e164" not in parsed["number"]:
            return [phone_number]
        digits = parsed["number"]["significant"]
        terms = [
            parsed["number"]["e164"],
            digits,
            *overriding_formats_render(overriding_format, digits=digits),
        ]
        return list(dict.fromkeys(term for term in terms if term))

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        """The findContact operation: with `{{phoneNumber}}` templates, one request per
        phone format (E.164, national digits, overriding formats) until one matches; with
        `{{parsedPhoneNumber.*}}` ones, one request. Always ends with NEW_CONTACT_OPTION."""
        return self._find_contact(
            user=user,
            phone_number=phone_number,
            overriding_format=overriding_format,
            is_extension=is_extension,
        )

    def _find_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        overriding_format: str,
        is_extension: bool,
        record: list[JsonDict] | None = None,
    ) -> FindContactResult:
        self._operation("findContact")
        from connector.conf import connector_settings

        inputs = {
            "parsedPhoneNumber": phone_number_parse(
                phone_number, region=connector_settings.DEFAULT_PHONE_REGION
            ),
            "overridingFormat": overriding_format,
            "isExtension": is_extension,
        }
        contacts: list[JsonDict] = []
        for term in self._phone_terms(phone_number, overriding_format, is_extension):
            context = self._context(user=user, inputs={**inputs, "phoneNumber": term})
            contacts = self._contacts(
                "findContact", self._perform("findContact", context, record=record), phone=phone_number
            )
            if contacts:
                break
        contacts.append(dict(NEW_CONTACT_OPTION))
        return FindContactResult(successful=True, contacts=contacts)

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        """The findContactWithName operation (`{{name}}`)."""
        self._operation("findContactWithName")
        answer = self._perform("findContactWithName", self._context(user=user, inputs={"name": name}))
        return FindContactResult(
            successful=True, contacts=self._contacts("findContactWithName", answer, phone=None)
        )

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        """The createContact operation; the new contact's id is read at `idPath` (default
        `body.id`), its name and type at `namePath` and `typePath` (else what was sent)."""
        self._operation("createContact")
        inputs = {
            "phoneNumber": phone_number,
            "newContactName": name,
            "newContactType": contact_type,
            "additionalSubmission": additional_submission,
        }
        answer = self._perform("createContact", self._context(user=user, inputs=inputs))
        contact_id = self._mapped(
            "createContact", answer, "idPath", default="body.id", required=True, write=True
        )
        mapped_name = self._mapped("createContact", answer, "namePath", default="body.name", required=False)
        mapped_type = self._mapped("createContact", answer, "typePath", default="body.type", required=False)
        return CreateContactResult(
            contact={
                "id": _text(contact_id),
                "name": _text(mapped_name) or name,
                "type": _text(mapped_type) or contact_type or self.contact_types()[0]["value"],
            },
            return_message=_message("Contact created."),
        )

    # call logs

    @staticmethod
    def _contact_info(contact: LogContact) -> JsonDict:
        return {
            "id": contact.id,
            "phoneNumber": contact.phone_number,
            "type": contact.type,
            "name": contact.name,
        }

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        """The createCallLog operation. Besides App Connect's variables (`subject` as its
        default "<direction> Call to|from <name>", `startTime`/`endTime` in ISO UTC), the
        config may store `{{logKey}}` to find the log again (findCallLog)."""
        self._operation("createCallLog")
        call = data.call_log
        direction = _text(call.get("direction"))
        subject = call.get("customSubject")
        if subject is None:
            subject = f"{direction} Call {'to' if direction == 'Outbound' else 'from'} {contact.name}"
        inputs = {
            **data.extras,
            "contactInfo": self._contact_info(contact),
            "callLog": call,
            "note": data.note,
            "additionalSubmission": data.additional_submission,
            "composedLogDetails": data.composed_log_details,
            "hashedAccountId": data.hashed_account_id,
            "isFromSSCL": data.is_from_sscl,
            "subject": subject,
            "startTime": iso_time(call.get("startTime")),
            "endTime": iso_time(call.get("startTime"), plus_seconds=call.get("duration")),
            "logKey": data.log_key,
        }
        answer = self._perform("createCallLog", self._context(user=user, inputs=inputs))
        log_id = self._mapped("createCallLog", answer, "idPath", default="body.id", required=True, write=True)
        return LogResult(log_id=_text(log_id), return_message=_message("Call logged"))

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        """The updateCallLog operation. A value we do not have (no new subject, no
        composed body) is missing, so a body field that is only that value is left out."""
        self._operation("updateCallLog")
        inputs = {
            **data.extras,
            "thirdPartyLogId": data.crm_log_id,
            "existingCallLog": {"thirdPartyLogId": data.crm_log_id, "contactId": data.contact_id},
            "recordingLink": data.recording_link,
            "subject": data.subject,
            "note": data.note,
            "startTime": iso_time(data.start_time),
            "endTime": iso_time(data.start_time, plus_seconds=data.duration),
            "duration": data.duration,
            "result": data.result,
            "additionalSubmission": data.additional_submission,
        }
        if data.composed_log_details:
            inputs["composedLogDetails"] = data.composed_log_details
        self._perform("updateCallLog", self._context(user=user, inputs=inputs))
        return UpdateLogResult(return_message=_message("Call log updated.", ttl=3000))

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        """The getCallLog operation: subject, note and fullBody at their mapped paths
        (defaults `body.subject`, `body.note`, `body.note`), and the whole answer."""
        self._operation("getCallLog")
        inputs = {"thirdPartyLogId": crm_log_id, "contactId": contact_id}
        answer = self._perform("getCallLog", self._context(user=user, inputs=inputs))
        return CallLogDetails(
            info={
                "subject": _text(
                    self._mapped("getCallLog", answer, "subjectPath", default="body.subject", required=False)
                ),
                "note": _text(
                    self._mapped("getCallLog", answer, "notePath", default="body.note", required=False)
                ),
                "fullBody": _text(
                    self._mapped("getCallLog", answer, "fullBodyPath", default="body.note", required=False)
                ),
                "fullLogResponse": answer,
            }
        )

    def _find_log(self, name: str, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        self._operation(name)
        if not log_key:
            return None
        inputs = {"logKey": log_key, "contactId": contact_id}
        answer = self._perform(name, self._context(user=user, inputs=inputs))
        mapping = self.operations[name].get("responseMapping") or {}
        list_path = mapping.get("listPath") or "body"
        items = _lookup({"body": answer}, list_path)
        if items is None:
            return None
        if not isinstance(items, list):
            raise CrmRejected(
                f"{self.platform}: the answer to {name} has no list at {list_path!r}"
                " (responseMapping.listPath)"
            )
        for item in items:
            found = _lookup(item, mapping.get("idPath") or "id")
            if found not in (MISSING, None, ""):
                return _text(found)
        return None

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The findCallLog operation (our extension): the first id its list holds, or None.
        Without it, NotImplementedError (such logs wait for an admin)."""
        return self._find_log("findCallLog", user=user, log_key=log_key, contact_id=contact_id)

    # message logs

    @staticmethod
    def _message_inputs(contact: LogContact, data: MessageLogInput) -> JsonDict:
        return {
            **data.links,
            "contactInfo": ProxyCrmClient._contact_info(contact),
            "message": data.message,
            "creationTime": iso_time(data.message.get("creationTime")),
            "additionalSubmission": data.additional_submission,
            "correspondents": data.correspondents,
            "ownerName": data.owner_name,
            "assigneeName": data.assignee_name,
            "sharedSMSLogContent": data.shared_content,
            "logKey": data.log_key,
        }

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        """The createMessageLog operation; the log id is read at `idPath` (default `body.id`)."""
        self._operation("createMessageLog")
        answer = self._perform(
            "createMessageLog", self._context(user=user, inputs=self._message_inputs(contact, data))
        )
        log_id = self._mapped(
            "createMessageLog", answer, "idPath", default="body.id", required=True, write=True
        )
        return LogResult(log_id=_text(log_id), return_message=_message("Message logged", ttl=1000))

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        """The updateMessageLog operation (`{{thirdPartyLogId}}`, the new `message`)."""
        self._operation("updateMessageLog")
        inputs = {
            **self._message_inputs(contact, data),
            "thirdPartyLogId": crm_log_id,
            "existingMessageLog": {"thirdPartyLogId": crm_log_id},
        }
        self._perform("updateMessageLog", self._context(user=user, inputs=inputs))
        return UpdateLogResult(return_message=_message("Message log updated", ttl=3000))

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The findMessageLog operation (our extension); see `find_call_log`."""
        return self._find_log("findMessageLog", user=user, log_key=log_key, contact_id=contact_id)

    # try it

    def try_it(self, *, api_key: str, additional_info: JsonDict, phone_number: str) -> JsonDict:
        """Run getUserInfo, then findContact for `phone_number`, with these credentials,
        storing nothing: `{"requests": [{operation, method, url, headers, body, status}],
        "userInfo": {...} | None, "contacts": [...], "error": str | None}`, with every
        credential masked (the auth header, and any value holding the API key, the secret
        key, a password or a token the CRM returned). Makes CRM calls: never inside a
        database transaction."""
        from connector.db import connection_release_before_crm_call
        from connector.models import CrmUser
        from connector.utils import InvalidPhoneNumber, phone_number_normalize

        connection_release_before_crm_call(keep=True, operation="tryIt")
        record: list[JsonDict] = []
        result: JsonDict = {"requests": record, "userInfo": None, "contacts": [], "error": None}
        secrets = [api_key, self.secret_key, str((additional_info or {}).get("password") or "")]
        try:
            info = self._user_info(
                api_key=api_key, hostname="", additional_info=additional_info, record=record
            )
            secrets.append(info.overriding_api_key)
            if not info.successful:
                result["error"] = (info.return_message or {}).get("message") or "Login failed."
            else:
                result["userInfo"] = {
                    "id": info.user_id,
                    "name": info.name,
                    "timezoneName": info.timezone_name,
                    "platformAdditionalInfo": info.platform_additional_info,
                    "overridingApiKey": info.overriding_api_key,
                    "message": (info.return_message or {}).get("message"),
                }
                if phone_number.strip():
                    user = CrmUser(
                        id=info.user_id,
                        platform=self.platform,
                        access_token=info.overriding_api_key or api_key,
                        refresh_token="",
                    )
                    user.platform_additional_info = info.platform_additional_info
                    found = self._find_contact(
                        user=user,
                        phone_number=phone_number_normalize(phone_number),
                        overriding_format="",
                        is_extension=False,
                        record=record,
                    )
                    result["contacts"] = [c for c in found.contacts or [] if not c.get("isNewContact")]
        except InvalidPhoneNumber as exc:
            result["error"] = str(exc)
        except (CrmError, NotImplementedError) as exc:
            result["error"] = str(exc) or type(exc).__name__
        return self._masked(result, secrets)

    def _auth_header_names(self) -> set[str]:
        names = {str(self.auth.get("headerName") or "Authorization").lower()}
        for operation in self.operations.values():
            names.add(str((operation.get("auth") or {}).get("headerName") or "Authorization").lower())
        return names

    def _masked(self, result: JsonDict, secrets: list[str]) -> JsonDict:
        """`result` with the auth headers and every secret (as given, and base64-encoded
        as credentials are sent) replaced by MASK."""
        forms: set[str] = set()
        for secret in filter(None, secrets):
            forms.add(secret)
            for raw in (secret, f"{secret}:"):
                forms.add(base64.b64encode(raw.encode()).decode())
                forms.update((quote(raw, safe=""), quote_plus(raw, safe="")))
        ordered = sorted(forms, key=len, reverse=True)

        def scrub(value: Any) -> Any:
            if isinstance(value, dict):
                return {key: scrub(item) for key, item in value.items()}
            if isinstance(value, list):
                return [scrub(item) for item in value]
            if not isinstance(value, str):
                return value
            if value in forms:
                return MASK
            for secret in ordered:
                if len(secret) >= 4:
                    value = value.replace(secret, MASK)
            return value

        header_names = self._auth_header_names()
        for entry in result["requests"]:
            entry["headers"] = {
                name: MASK if name.lower() in header_names else value
                for name, value in entry["headers"].items()
            }
        masked: JsonDict = scrub(result)
        return masked
