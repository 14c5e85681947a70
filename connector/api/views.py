"""App Connect's connector HTTP API: one thin view per operation.

Each view validates its input with a serializer, calls a service and serializes the
outcome. Paths, field names, status codes and message strings follow the published
Node.js server (../shared/spec/appconnect-api.md); where we differ on purpose the
docstring says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

from django.http import HttpRequest, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from connector.api import schema  # noqa: F401  (registers the schema extensions)
from connector.api import serializers as io
from connector.api.authentication import (
    REFRESHED_TOKEN_HEADER,
    JwtIdentity,
    TokenState,
    jwt_encode,
    jwt_read,
)
from connector.api.renderers import MarkupSafeJSONRenderer
from connector.conf import connector_settings
from connector.crm.registry import crm_registry
from connector.exceptions import (
    AUTHORIZE_CRM_TEXT,
    AdminValidationFailed,
    AuthenticationFailed,
    ConnectorNotFound,
    ErrorObject,
    InvalidInput,
    PlainTextError,
    return_message,
)
from connector.models import CrmUser
from connector.ringcentral import RcExtension, RingCentralError, rc_extension_get
from connector.selectors import crm_user_get
from connector.services import (
    ContactLookup,
    contact_find,
    contact_find_by_name,
    crm_user_auth_validate,
    crm_user_login_with_api_key,
    crm_user_login_with_oauth,
    crm_user_logout,
    user_settings_update,
)
from connector.utils import hash_value
from logs.selectors import call_logs_lookup
from logs.services import (
    CallLogPatch,
    CallLogRequest,
    LogOutcome,
    MessageLogRequest,
    call_log_create,
    call_log_details_get,
    call_log_update,
    call_note_cache,
    message_log_create,
)
from rules.models import Account
from rules.parameters import settings_map_errors
from rules.selectors import (
    account_get_by_key,
    account_get_for_user,
    account_settings_map,
    admin_settings_map,
    user_settings_effective,
)
from rules.services import account_ensure, admin_settings_apply, placeholder_contact_create_manual
from sscl.selectors import server_logging_state
from sscl.services import ServerLoggingError, server_logging_apply

# What /api/docs/ shows is written for API users, here and in serializers.py; the
# docstrings are for developers and never reach the schema (DISABLE_DOCSTRING_DESCRIPTIONS).
_REFUSED = (
    "The request was refused and nothing was written. As JSON: invalid input (errors names each bad "
    "field, returnMessage is a message the client can show), or a failure of RingCentral or the CRM "
    "(error). As plain text: the JWT is missing or invalid (Please go to Settings and authorize CRM "
    "platform), or another refusal such as User not found."
)
TEXT = OpenApiResponse(OpenApiTypes.STR, description=_REFUSED)
ERROR_JSON = OpenApiResponse(io.ErrorOutputSerializer, description=_REFUSED)
# 400: missing or bad credentials are the peer's text; bad input is JSON.
ERRORS_400 = {(400, "application/json"): ERROR_JSON, (400, "text/plain"): TEXT}
REVOKED = {
    (401, "application/json"): OpenApiResponse(
        io.ErrorOutputSerializer,
        description="The CRM ended the user's session (it refused to renew its token): errorCode is "
        "CRM_SESSION_REVOKED and returnMessage says User session expired. Please connect again. Log in "
        "to the CRM again.",
    )
}
FORBIDDEN = {
    (403, "text/plain"): OpenApiResponse(
        OpenApiTypes.STR,
        description="Admin validation failed: the RingCentral user is not an administrator of the account.",
    )
}
JWT_PARAM = OpenApiParameter(
    "jwtToken",
    str,
    OpenApiParameter.QUERY,
    required=False,
    description="The App Connect JWT, for clients that cannot send the preferred Authorization: Bearer "
    "header.",
)
RC_ACCOUNT_PARAM = OpenApiParameter(
    "rcAccountId",
    str,
    required=False,
    description="App Connect's hashed RingCentral account id: whose administrator settings apply.",
)


HEALTH, AUTH, CONTACTS, CALLS, MESSAGES, SETTINGS = (
    "Server and platforms",
    "Logging in to a CRM",
    "Contacts",
    "Call logs",
    "Message logs",
    "Settings",
)


def _ok(description: str, body: Any = OpenApiTypes.OBJECT) -> OpenApiResponse:
    return OpenApiResponse(body, description=description)


class ConnectorApi(APIView):
    """Base of every App Connect route: JSON only, and the App Connect JWT read up front.

    The token is read before the view runs; when it has 7 days or less left, a fresh one
    goes back in `x-refreshed-jwt-token` (on every route, as the peer does). A Host not in
    ALLOWED_HOSTS is a 400, as Django's CommonMiddleware answers on the other pages (the
    API runs without it, config/handlers.py).
    """

    renderer_classes = [MarkupSafeJSONRenderer]
    # The text answered for a token that fails to verify; a few routes use another.
    invalid_token_text: ClassVar[str] = AUTHORIZE_CRM_TEXT
    # Refuse a Host not in ALLOWED_HOSTS.
    check_host: ClassVar[bool] = True

    token_state: TokenState
    identity: JwtIdentity | None

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        if self.check_host:
            request._request.get_host()  # raises DisallowedHost
        self.token_state, self.identity = jwt_read(request._request)
        super().initial(request, *args, **kwargs)

    # DRF's stubs say Response; at run time it takes any HttpResponse, and the text answers
    # App Connect expects (e.g. "Please go to Settings and authorize CRM platform") are plain ones.
    def finalize_response(  # type: ignore[override]
        self, request: Request, response: HttpResponse, *args: Any, **kwargs: Any
    ) -> HttpResponse:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[arg-type]
        identity = getattr(self, "identity", None)
        if identity is not None and identity.refreshed_token:
            response[REFRESHED_TOKEN_HEADER] = identity.refreshed_token
        return response

    def require_identity(self, *, invalid_text: str | None = None) -> JwtIdentity:
        """The JWT's identity, or the peer's 400 text for a missing or bad token."""
        if self.token_state is TokenState.VALID and self.identity is not None:
            return self.identity
        if self.token_state is TokenState.INVALID:
            raise AuthenticationFailed(invalid_text or self.invalid_token_text)
        raise AuthenticationFailed()

    @staticmethod
    def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
        """Validate `data`; bad input raises `InvalidInput` (400 JSON naming the fields)."""
        if not isinstance(data, dict):
            raise InvalidInput({"body": ["Send a JSON object."]})
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def query(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        """The query validated by `serializer_class` (see `_query_values`)."""
        values = _query_values(self.request, serializer_class._declared_fields)
        return self.validated(serializer_class, values)


def _query_values(request: Request, names: Iterable[str]) -> dict[str, str]:
    """The query parameters `names` that were given.

    A parameter given twice (`?a=1&a=2`: which one counts differs between servers) or
    whose bytes are not UTF-8 (Django reads them as U+FFFD) is a 400 naming it.
    """
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    for name in names:
        given = request.query_params.getlist(name)
        if len(given) > 1:
            errors[name] = ["Give this parameter once."]
        elif given and "\ufffd" in given[0]:
            errors[name] = ["Must be UTF-8 text."]
        elif given:
            values[name] = given[0]
    if errors:
        raise InvalidInput(errors)
    return values


# App Connect's hashed ids (sha256 in hex) and RingCentral's ids.
_HEADER_ID = re.compile(r"[!-~]{0,64}")


def _header_id(request: Request, name: str) -> str:
    """The id App Connect sends in header `name` (`rc-account-id`, `rc-extension-id`), or "".

    Anything but at most 64 printable ASCII characters is a 400 naming the header: the id
    is stored, and no id App Connect sends looks otherwise.
    """
    value = request.headers.get(name, "")
    if not _HEADER_ID.fullmatch(value):
        raise InvalidInput({name: ["Must be at most 64 printable ASCII characters."]})
    return value


# RingCentral access tokens are printable ASCII without spaces.
_RC_TOKEN = re.compile(r"[!-~]{1,4000}")


def _rc_access_token(request: Request) -> str:
    """The caller's RingCentral token: `X-RC-Access-Token`, else `rcAccessToken` in the
    body or the query. A leading `Bearer ` is dropped."""
    body = (
        request.data if request.method in ("POST", "PATCH", "PUT") and isinstance(request.data, dict) else {}
    )
    token = (
        request.headers.get("x-rc-access-token")
        or (body.get("rcAccessToken") if isinstance(body.get("rcAccessToken"), str) else "")
        or _query_values(request, ("rcAccessToken",)).get("rcAccessToken")
        or ""
    )
    return token[7:].strip() if token.lower().startswith("bearer ") else token.strip()


def _rc_extension(token: str) -> RcExtension:
    """Who a RingCentral token belongs to; RingCentral failures are 400 `{error}`."""
    if not token:
        raise ErrorObject("A RingCentral access token is required (X-RC-Access-Token).")
    if not _RC_TOKEN.fullmatch(token):
        # Not a token RingCentral could have issued; it would refuse it (and a header
        # cannot carry such text anyway).
        raise ErrorObject("Request failed with status code 401")
    try:
        return rc_extension_get(access_token=token)
    except RingCentralError as exc:
        raise ErrorObject(str(exc)) from exc


def _rc_admin(request: Request) -> RcExtension:
    """The caller's RingCentral extension, which must be an account admin (else 403)."""
    extension = _rc_extension(_rc_access_token(request))
    if not extension.is_admin:
        raise AdminValidationFailed()
    return extension


# --- health and manifest -----------------------------------------------------------------


class IsAliveApi(ConnectorApi):
    """GET /isAlive: `OK` in plain text; checks nothing, like the peer (not even the Host:
    health checks often call a process by its address)."""

    check_host = False

    @extend_schema(
        tags=[HEALTH],
        summary="Check that the server is up",
        description="Answers OK in plain text while the server takes requests. Nothing else is checked (no "
        "database, no CRM), so it suits a load balancer's health check. No authentication.",
        responses={(200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="OK")},
    )
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse("OK", content_type="text/plain; charset=utf-8")


def _server_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/")


class CrmManifestApi(ConnectorApi):
    """GET /crmManifest: the manifest of one platform (default: the configured default)."""

    @extend_schema(
        tags=[HEALTH],
        summary="Get a CRM platform's manifest",
        description="The manifest App Connect's client reads for a platform: its name, how users log in "
        "(OAuth or API key), its contact types, its settings and the fields of its forms. An unknown "
        "platform is a 400 with the text Platform not found. No authentication.",
        parameters=[
            OpenApiParameter(
                "platformName",
                str,
                required=False,
                description="The platform, as this server registers it (for example builtin). Default: the "
                "server's default platform.",
            )
        ],
        responses={
            200: _ok("The manifest: serverUrl, author, version, and the platform's entry under platforms."),
            **ERRORS_400,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        name = _query_values(request, ("platformName",)).get("platformName") or "default"
        platform = connector_settings.DEFAULT_PLATFORM if name == "default" else name
        try:
            client = crm_registry.get(platform)
        except ConnectorNotFound:
            raise PlainTextError("Platform not found") from None
        return Response(
            {
                "serverUrl": _server_url(request._request),
                "author": {"name": "App Connect Python connector server"},
                "version": "0.1.0",
                "platforms": {platform: client.manifest()},
            }
        )


class ImplementedInterfacesApi(ConnectorApi):
    """GET /implementedInterfaces: which connector functions the platform has."""

    @extend_schema(
        tags=[HEALTH],
        summary="List what a platform's connector can do",
        description="For each connector function (finding and creating contacts, logging calls and "
        "messages, logging out, ...), whether the platform's connector has it. A missing platform is a 400 "
        "with the text Please provide platform. No authentication.",
        parameters=[
            OpenApiParameter(
                "platform", str, required=True, description="The platform (for example builtin)."
            )
        ],
        responses={200: _ok("Each function's name, with true when the connector has it."), **ERRORS_400},
    )
    def get(self, request: Request) -> HttpResponse:
        platform = _query_values(request, ("platform",)).get("platform")
        if not platform:
            raise PlainTextError("Please provide platform.")
        return Response(crm_registry.get(platform).implemented_interfaces())


# --- login and logout --------------------------------------------------------------------


class ApiKeyLoginApi(ConnectorApi):
    """POST /apiKeyLogin: check an API key with the CRM and issue the App Connect JWT."""

    @extend_schema(
        tags=[AUTH],
        summary="Log in to a CRM with an API key",
        description="Checks the API key with the CRM and answers the App Connect JWT that authenticates "
        "every other call. The key is kept encrypted on the server and never returned. Send the user's "
        "RingCentral access token (X-RC-Access-Token header) to link the user to their RingCentral account, "
        "whose auto-logging rules then apply; the rc-extension-id header (App Connect's hashed extension "
        "id) is kept with the user. A missing platform is a 400 with the text Missing platform name; a key "
        "the CRM refuses is a 400 JSON.",
        request=io.ApiKeyLoginInputSerializer,
        responses={200: _ok("Logged in.", io.ApiKeyLoginOutputSerializer), **ERRORS_400},
    )
    def post(self, request: Request) -> HttpResponse:
        body = request.data if isinstance(request.data, dict) else {}
        if not body.get("platform"):
            raise PlainTextError("Missing platform name")
        data = self.validated(io.ApiKeyLoginInputSerializer, request.data)
        hashed_rc_extension_id = _header_id(request, "rc-extension-id")
        api_key = data.get("apiKey") or str((data.get("additionalInfo") or {}).get("apiKey") or "")
        rc_token = _rc_access_token(request)
        # A RingCentral token links the CRM user to the caller's account (and its rules).
        rc_account_id = _rc_extension(rc_token).account_id if rc_token else ""
        outcome = crm_user_login_with_api_key(
            platform=data["platform"],
            api_key=api_key,
            hostname=data.get("hostname", ""),
            additional_info={k: v for k, v in (data.get("additionalInfo") or {}).items() if k != "apiKey"},
            hashed_rc_extension_id=hashed_rc_extension_id,
            rc_account_id=rc_account_id,
            proxy_id=data.get("proxyId", ""),
        )
        if rc_account_id:
            account_ensure(rc_account_id=rc_account_id)
        return Response(
            {
                "jwtToken": jwt_encode(user_id=outcome.user_id, platform=data["platform"]),
                "name": outcome.name,
                "returnMessage": outcome.return_message,
            }
        )


def _callback_state(callback_uri: str, state: str) -> dict[str, str]:
    """App Connect's OAuth state: the `state` of `callback_uri`, else the query's, read as
    a query string (`platform=pipedrive&hostname=...`). The legacy form carries other text
    before `platform=` (`fillerString,platform=netsuite`)."""
    raw = (parse_qs(urlsplit(callback_uri).query).get("state") or [state])[0]
    values = {key: items[0] for key, items in parse_qs(raw).items()}
    if not values.get("platform") and "platform=" in raw:
        values["platform"] = re.split(r"[&,]", raw.split("platform=", 1)[1])[0]
    return values


class OAuthCallbackApi(ConnectorApi):
    """GET /oauth-callback: finish a CRM's OAuth consent and issue the App Connect JWT.

    `callbackUri` is the URL the CRM sent the browser back to, with `code` and `state`;
    the platform comes from the state (appconnect-api.md §2.5). The code is exchanged on
    the server with the platform's OAuth app (the account's own when an admin set one for
    `rcAccountId`); the client secret never leaves the server.

    Differs from the peer: the `rcAccountId` of the query links the user to that account
    only when the code was exchanged with the account's own OAuth app, or when a
    RingCentral token of the account comes with the request (`X-RC-Access-Token`); the
    peer trusts the query. The MCP flow (`sessionId` in the state) is not served.
    """

    @extend_schema(
        tags=[AUTH],
        summary="Finish logging in to a CRM with OAuth",
        description="Called once the CRM's consent page has sent the browser back: pass that address as "
        "callbackUri. The server exchanges the code with the CRM (the client secret never leaves the "
        "server), keeps the CRM's tokens encrypted, and answers the App Connect JWT that authenticates "
        "every other call. Neither callbackUri nor code is a 400 with the text Missing callbackUri; a state "
        "naming no platform is a 400 with the text Missing platform name.",
        parameters=[io.OAuthCallbackQuerySerializer],
        responses={200: _ok("Logged in.", io.OAuthCallbackOutputSerializer), **ERRORS_400},
    )
    def get(self, request: Request) -> HttpResponse:
        data = self.query(io.OAuthCallbackQuerySerializer)
        callback_uri = data.get("callbackUri", "")
        code = data.get("code", "")
        if not callback_uri or callback_uri == "undefined":
            if not code:
                raise PlainTextError("Missing callbackUri")
            callback_uri = f"{_server_url(request._request)}/oauth-callback?code={quote(code)}"
        state = _callback_state(callback_uri, data.get("state", ""))
        platform = state.get("platform", "")
        if not platform:
            raise PlainTextError("Missing platform name")
        if "code=" not in callback_uri and code:
            callback_uri += ("&" if "?" in callback_uri else "?") + f"code={quote(code)}"
        rc_token = _rc_access_token(request)
        outcome = crm_user_login_with_oauth(
            platform=platform,
            callback_uri=callback_uri,
            hostname=data.get("hostname") or state.get("hostname", ""),
            query={key: data[key] for key in ("tokenUrl", "apiUrl", "username", "userEmail") if key in data},
            rc_account_id=data.get("rcAccountId", ""),
            verified_rc_account_id=_rc_extension(rc_token).account_id if rc_token else "",
            hashed_rc_extension_id=_header_id(request, "rc-extension-id"),
            proxy_id=data.get("proxyId", ""),
        )
        if outcome.rc_account_id:
            account_ensure(rc_account_id=outcome.rc_account_id)
        return Response(
            {
                "jwtToken": jwt_encode(user_id=outcome.user_id, platform=platform),
                "name": outcome.name,
                "returnMessage": outcome.return_message,
            }
        )


class AuthValidationApi(ConnectorApi):
    """GET /authValidation: do the stored CRM credentials still work?

    Differs from the peer, whose handler only works for OAuth CRMs: API-key CRMs are
    asked too, through the connector's `auth_validation`.
    """

    invalid_token_text = "Invalid JWT token"

    @extend_schema(
        tags=[AUTH],
        summary="Check that the stored CRM login still works",
        description="Asks the CRM whether the user's stored credentials (OAuth tokens or API key) are "
        "still accepted. successful false means the user must log in to the CRM again; it is also the "
        "answer for a user this server does not know.",
        parameters=[JWT_PARAM],
        responses={
            200: _ok("successful (true when the CRM accepts the credentials), and the CRM's returnMessage."),
            **ERRORS_400,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        user = crm_user_get(user_id=identity.user_id, platform=identity.platform)
        if user is None:
            return Response({"successful": False})
        successful, message = crm_user_auth_validate(user=user)
        body: dict[str, Any] = {"successful": successful}
        if message is not None:
            body["returnMessage"] = message
        return Response(body)


class UnauthorizeApi(ConnectorApi):
    """POST /unAuthorize: log out of the CRM; answers the connector's `returnMessage`.

    Differs from the peer: a body other than a JSON object is a 400 (the peer ignores the
    body once its JSON parser has taken it).
    """

    invalid_token_text = "User not found"

    @extend_schema(
        tags=[AUTH],
        summary="Log out of the CRM",
        description="Forgets the user's CRM credentials on this server, and revokes them at the CRM when "
        "it allows. Calls with the same JWT then no longer reach the CRM. A body, if sent, must be a JSON "
        "object; nothing in it is read.",
        request=None,
        parameters=[JWT_PARAM],
        responses={200: _ok("The CRM's returnMessage, or an empty object."), **ERRORS_400},
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        # Nothing is read from the body, but a body that is not a JSON object is refused
        # (the peer's JSON parser refuses a malformed one on every route too).
        if not isinstance(request.data, dict):
            raise InvalidInput({"body": ["Send a JSON object."]})
        user = crm_user_get(user_id=identity.user_id)
        if user is None:
            raise PlainTextError("User not found")
        message = crm_user_logout(user=user)
        return Response(message if message is not None else {})


# --- contacts ----------------------------------------------------------------------------


def _connected_user(identity: JwtIdentity, *, by_platform: bool) -> CrmUser | None:
    user = crm_user_get(user_id=identity.user_id, platform=identity.platform if by_platform else None)
    return user if user is not None and user.is_connected else None


class ContactLookupApi(ConnectorApi):
    """GET /contact: find contacts by phone number. Never creates anything.

    Differs from the peer: the number is parsed at the edge (E.164, so any common format
    finds the same contact) and an unparseable or missing number is a 400 JSON.
    """

    @extend_schema(
        tags=[CONTACTS],
        summary="Find contacts by phone number",
        description="Looks the number up in the CRM; any common format finds the same contacts. Nothing "
        "is created: with no match the answer is successful true, a Contact not found warning, and the "
        "entry the client offers as Create new contact. An unreadable number is a 400 JSON naming "
        "phoneNumber; a user not connected to the CRM gets successful false.",
        parameters=[io.ContactLookupQuerySerializer, JWT_PARAM],
        responses={200: _ok("The contacts found.", io.ContactListOutputSerializer), **ERRORS_400, **REVOKED},
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.query(io.ContactLookupQuerySerializer)
        user = _connected_user(identity, by_platform=True)
        if user is None:
            lookup = ContactLookup(
                successful=False, contacts=None, return_message=return_message("Contact not found")
            )
        else:
            lookup = contact_find(
                user=user,
                phone_number=data["phoneNumber"],
                overriding_format=data.get("overridingFormat", ""),
                is_extension=data["isExtension"],
            )
        return Response(io.ContactListOutputSerializer(lookup).data)


class ContactSearchApi(ConnectorApi):
    """GET /custom/contact/search: find contacts by name."""

    invalid_token_text = "Invalid JWT token"

    @extend_schema(
        tags=[CONTACTS],
        summary="Find contacts by name",
        description="Searches the CRM's contacts by name, for the client's contact search. A user not "
        "connected to the CRM gets successful false and a No contact found warning.",
        parameters=[io.ContactSearchQuerySerializer, JWT_PARAM],
        responses={200: _ok("The contacts found.", io.ContactListOutputSerializer), **ERRORS_400, **REVOKED},
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.query(io.ContactSearchQuerySerializer)
        user = _connected_user(identity, by_platform=True)
        if user is None:
            lookup = ContactLookup(
                successful=False,
                contacts=None,
                return_message=return_message(f"No contact found with name {data['name']}"),
            )
        else:
            lookup = contact_find_by_name(user=user, name=data["name"])
        return Response(io.ContactListOutputSerializer(lookup).data)


class ContactCreateApi(ConnectorApi):
    """POST /contact: create a contact (the manual "Create new contact..." flow).

    Differs from the peer: `phoneNumber` and `newContactName` are required and the number
    must parse; `newContactType` must be one of the manifest's `contactTypes` (default:
    the first one).
    """

    @extend_schema(
        tags=[CONTACTS],
        summary="Create a contact",
        description="Creates a contact in the CRM, as the client's Create new contact form does. The "
        "number must be readable, and newContactType one of the manifest's contactTypes (default: the "
        "first); otherwise the answer is a 400 JSON naming the field. The new contact's id is what call "
        "and message logs are attached to.",
        request=io.ContactCreateInputSerializer,
        parameters=[JWT_PARAM],
        responses={
            200: _ok(
                "The contact created; successful false when the user is not connected to the CRM.",
                io.ContactCreateOutputSerializer,
            ),
            **ERRORS_400,
            **REVOKED,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.validated(io.ContactCreateInputSerializer, request.data)
        user = _connected_user(identity, by_platform=True)
        if user is None:
            return Response({"successful": False})
        client = crm_registry.get(user.platform)
        types = client.contact_type_values()
        contact_type = data.get("newContactType") or (types[0] if types else "")
        if types and contact_type not in types:
            raise InvalidInput({"newContactType": [f"Must be one of: {', '.join(types)}."]})
        contact, message = placeholder_contact_create_manual(
            user=user,
            client=client,
            phone_number=data["phoneNumber"],
            name=data["newContactName"],
            contact_type=contact_type,
            additional_submission=data.get("additionalSubmission") or {},
        )
        body = {"successful": contact is not None, "return_message": message, "contact": contact}
        return Response(io.ContactCreateOutputSerializer(body).data)


# --- call logs ---------------------------------------------------------------------------


def _extension_identity(request: Request, data: dict[str, Any], log_info: dict[str, Any]) -> tuple[str, str]:
    """(extension number, hashed extension id) as App Connect resolves them."""
    extension_number = str(data.get("extensionNumber") or log_info.get("extensionNumber") or "")
    hashed = data.get("hashedExtensionId") or str(log_info.get("hashedExtensionId") or "")
    raw_extension = data.get("rcExtensionId") or log_info.get("rcExtensionId")
    if not hashed and raw_extension:
        hashed = hash_value(str(raw_extension))
    return extension_number[:32], hashed[:64]


def _is_sscl(request: Request) -> bool:
    return request.headers.get("user-agent", "") == "SSCL"


class CallLogCreateApi(ConnectorApi):
    """POST /callLog: log a call into the CRM.

    Differs from the peer: the body is validated first (400 JSON naming bad fields);
    duplicates are refused per user, platform, session and extension identity, also
    under concurrency; without `contactId` the server's auto-logging rules decide.
    """

    @extend_schema(
        tags=[CALLS],
        summary="Log a call",
        description="Creates the CRM activity for a RingCentral call. The body is checked first: invalid "
        "fields are a 400 JSON naming each, and nothing is written. A call is logged once per user, "
        "platform, session and extension; another attempt answers successful false with Existing log for "
        "session. With contactId the call is logged against that contact. Without it the server's "
        "auto-logging rules decide: log against the contact found by the number, create a placeholder "
        "contact and log against it, or answer successful false with Contact not found for number so that "
        "the client asks the user. A caller who withheld their number is accepted (the party without "
        "phoneNumber) and left to the rules. Server-side call logging sends the header User-Agent: SSCL.",
        request=io.CallLogCreateInputSerializer,
        parameters=[JWT_PARAM],
        responses={
            200: _ok(
                "Whether the call was logged, and the CRM's id of the activity.",
                io.CallLogCreateOutputSerializer,
            ),
            **ERRORS_400,
            **REVOKED,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.validated(io.CallLogCreateInputSerializer, request.data)
        log_info = data["logInfo"]
        extension_number, hashed_extension_id = _extension_identity(request, data, log_info)
        account = _header_id(request, "rc-account-id") or (
            hash_value(str(log_info["accountId"])) if log_info.get("accountId") else ""
        )
        outcome = call_log_create(
            user_id=identity.user_id,
            request=CallLogRequest(
                log_info=log_info,
                phone_number=data["phone_number"],
                raw_number=data["raw_number"],
                contact_id=data.get("contactId") or "",
                contact_type=data.get("contactType") or "",
                contact_name=data.get("contactName") or "",
                note=data.get("note") or "",
                additional_submission=data.get("additionalSubmission") or {},
                extras={
                    k: data[k]
                    for k in io.CallLogCreateInputSerializer.extras_fields
                    if data.get(k) is not None
                },
                extension_number=extension_number,
                hashed_extension_id=hashed_extension_id,
                hashed_account_id=account,
                is_from_sscl=_is_sscl(request),
            ),
        )
        return Response(io.CallLogCreateOutputSerializer(outcome).data)


class CallLogLookupApi(ConnectorApi):
    """GET /callLog: which of these sessions are logged (at most the first 5)."""

    @extend_schema(
        tags=[CALLS],
        summary="Check whether calls are logged",
        description="For each session id (at most 5), whether the call is logged, and the CRM's id of its "
        "activity. With requireDetails=true each log is also read from the CRM. A user not connected to the "
        "CRM gets successful false.",
        parameters=[io.CallLogLookupQuerySerializer, JWT_PARAM],
        responses={
            200: _ok(
                "successful, and logs: one entry per session id, in the order asked, with matched, logId "
                "and, with requireDetails, logData."
            ),
            **ERRORS_400,
            **REVOKED,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.query(io.CallLogLookupQuerySerializer)
        user = _connected_user(identity, by_platform=False)
        if user is None:
            return Response({"successful": False})
        session_ids = [s.strip() for s in data["sessionIds"].split(",") if s.strip()][:5]
        if not session_ids:
            raise InvalidInput({"sessionIds": ["Give at least one session id."]})
        found = call_logs_lookup(
            user=user,
            session_ids=session_ids,
            hashed_extension_id=data.get("hashedExtensionId", ""),
            extension_number=data.get("extensionNumber", ""),
        )
        logs: list[dict[str, Any]] = []
        last_message = None
        client = crm_registry.get(user.platform) if data["requireDetails"] else None
        for session_id in session_ids:
            row = found.get(session_id)
            if row is None or session_id == "0":
                logs.append({"sessionId": session_id, "matched": False})
                continue
            entry: dict[str, Any] = {"sessionId": session_id, "matched": True, "logId": row.crm_log_id}
            if client is not None:
                details = call_log_details_get(user=user, client=client, log=row)
                if details.info is not None:
                    entry["logData"] = details.info
                last_message = details.return_message or last_message
            logs.append(entry)
        body: dict[str, Any] = {"successful": True, "logs": logs}
        if last_message is not None:
            body["returnMessage"] = last_message
        return Response(body)


class CallLogUpdateApi(ConnectorApi):
    """PATCH /callLog: update a logged call (note, subject, recording, final data)."""

    @extend_schema(
        tags=[CALLS],
        summary="Update a logged call",
        description="Changes the CRM activity of a logged call, found by sessionId and the extension "
        "identity: its note, subject, result, duration, recording link and other details. Only the fields "
        "sent change. A call that was never logged answers successful false.",
        request=io.CallLogUpdateInputSerializer,
        parameters=[JWT_PARAM],
        responses={
            200: _ok(
                "Whether the activity was updated, and the note it now holds.",
                io.CallLogUpdateOutputSerializer,
            ),
            **ERRORS_400,
            **REVOKED,
        },
    )
    def patch(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.validated(io.CallLogUpdateInputSerializer, request.data)
        extension_number, hashed_extension_id = _extension_identity(request, data, {})
        outcome: LogOutcome = call_log_update(
            user_id=identity.user_id,
            patch=CallLogPatch(
                session_id=data["sessionId"],
                extension_number=extension_number,
                hashed_extension_id=hashed_extension_id,
                subject=data.get("subject"),
                note=data.get("note"),
                start_time=data.get("startTime"),
                duration=data.get("duration"),
                has_duration="duration" in data,
                result=data.get("result"),
                direction=data.get("direction"),
                from_party=data.get("from") or {},
                to_party=data.get("to") or {},
                legs=data.get("legs") or [],
                recording_link=data.get("recordingLink"),
                additional_submission=data.get("additionalSubmission") or {},
                extras={
                    k: data[k]
                    for k in io.CallLogUpdateInputSerializer.extras_fields
                    if data.get(k) is not None
                },
            ),
        )
        return Response(io.CallLogUpdateOutputSerializer(outcome).data)


class CallNoteCacheApi(ConnectorApi):
    """POST /callLog/cacheNote: keep a note for an upcoming server-side call log.

    Differs from the peer: answers 400 without a token (the peer never answers), and
    the cached note is used when the server-side log arrives without one.
    """

    @extend_schema(
        tags=[CALLS],
        summary="Keep a note for a call logged later",
        description="Keeps the user's note for a call that server-side call logging will log later (for "
        "an hour): when that log arrives without a note, this one is written.",
        request=io.CallNoteCacheInputSerializer,
        parameters=[JWT_PARAM],
        responses={200: _ok("successful true, and returnMessage Note cache saved."), **ERRORS_400},
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.validated(io.CallNoteCacheInputSerializer, request.data)
        call_note_cache(user_id=identity.user_id, session_id=data["sessionId"], note=data["note"])
        return Response({"successful": True, "returnMessage": "Note cache saved"})


# --- message logs ------------------------------------------------------------------------


class MessageLogCreateApi(ConnectorApi):
    """POST /messageLog: log SMS, MMS, fax and voicemail messages of a conversation.

    Differs from the peer: validated first; `successful` is false when the CRM created
    nothing; already-logged messages are recognised per user and platform.
    """

    @extend_schema(
        tags=[MESSAGES],
        summary="Log messages of a conversation",
        description="Logs SMS, MMS, fax and voicemail messages in the CRM: the first new message creates "
        "the conversation's activity and later ones are added to it (one activity per conversationLogId). "
        "Messages already logged are skipped. Without contactId the server's auto-logging rules decide, as "
        "for calls. Invalid fields are a 400 JSON naming each, and nothing is written.",
        request=io.MessageLogCreateInputSerializer,
        parameters=[JWT_PARAM],
        responses={200: _ok("The messages logged.", io.MessageLogOutputSerializer), **ERRORS_400, **REVOKED},
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        data = self.validated(io.MessageLogCreateInputSerializer, request.data)
        info = data["logInfo"]
        outcome = message_log_create(
            user_id=identity.user_id,
            request=MessageLogRequest(
                messages=info["messages"],
                correspondents=info["correspondents"],
                phone_number=data["phone_number"],
                raw_number=data["raw_number"],
                conversation_id=info.get("conversationId") or "",
                conversation_log_id=info.get("conversationLogId") or "",
                owner_name=str((info.get("owner") or {}).get("name") or ""),
                assignee_name=str((info.get("assignee") or {}).get("name") or ""),
                rc_access_token=info.get("rcAccessToken") or "",
                contact_id=data.get("contactId") or "",
                contact_type=data.get("contactType") or "",
                contact_name=data.get("contactName") or "",
                additional_submission=data.get("additionalSubmission") or {},
            ),
        )
        return Response(io.MessageLogOutputSerializer(outcome).data)


# --- settings ----------------------------------------------------------------------------


def _admin_context(request: Request, user: CrmUser) -> Account | None:
    """The account whose admin settings apply: `rcAccountId` (App Connect's hashed id),
    else the RingCentral token's account, else the account the user is linked to."""
    context = _query_values(request, io.AccountContextQuerySerializer._declared_fields)
    account_key = ConnectorApi.validated(io.AccountContextQuerySerializer, context).get("rcAccountId")
    if account_key:
        return account_get_by_key(account_key=account_key)
    token = _rc_access_token(request)
    if token:
        try:
            extension = _rc_extension(token)
        except ErrorObject:
            extension = None  # the peer ignores a failed admin lookup here
        if extension is not None:
            return Account.objects.filter(rc_account_id=extension.account_id).first()
    return account_get_for_user(user=user)


class UserSettingsApi(ConnectorApi):
    """GET and POST /user/settings: the user's settings map.

    GET merges the account's admin settings over the user's as App Connect does
    (appconnect-api.md §2.16); differs in that, with no `rcAccountId` or RingCentral
    token, the account the user is linked to applies, and the rule settings' defaults
    are included. POST checks the values of the settings the server knows.
    """

    @extend_schema(
        tags=[SETTINGS],
        summary="Read the settings in force for the user",
        description="Every setting that applies to the user, keyed by setting id: the account "
        "administrator's settings merged over the user's own, each with its value, whether the user may "
        "change it (customizable), its default and its choices. The auto-logging rules are included, with "
        "the values the server applies. The account is the one rcAccountId names, else the one of the "
        "RingCentral access token (X-RC-Access-Token), else the account the user is linked to.",
        parameters=[JWT_PARAM, RC_ACCOUNT_PARAM],
        responses={200: _ok("The settings, keyed by setting id."), **ERRORS_400},
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        user = crm_user_get(user_id=identity.user_id)
        if user is None:
            raise PlainTextError("User not found")
        account = _admin_context(request, user)
        return Response(user_settings_effective(user=user, account=account))

    @extend_schema(
        tags=[SETTINGS],
        summary="Change the user's own settings",
        description="Stores the user's settings: each entry sent replaces the stored one, and "
        "settingKeysToRemove removes entries. The values of the settings this server knows (the "
        "auto-logging rules among them) are checked first; a wrong value is a 400 JSON naming it, and "
        "nothing is stored. Where the administrator does not let users change a setting, the "
        "administrator's value still applies.",
        request=io.UserSettingsUpdateInputSerializer,
        parameters=[JWT_PARAM],
        responses={
            200: _ok("userSettings: the user's own settings as stored, not merged with the administrator's."),
            **ERRORS_400,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity(invalid_text="Unknown platform")
        data = self.validated(io.UserSettingsUpdateInputSerializer, request.data)
        user = crm_user_get(user_id=identity.user_id)
        if user is None:
            raise PlainTextError("User not found")
        types = frozenset(crm_registry.get(user.platform).contact_type_values())
        errors = settings_map_errors(data["userSettings"], allow_unknown_keys=True, contact_types=types)
        if errors:
            raise InvalidInput({f"userSettings.{key}": messages for key, messages in errors.items()})
        stored = user_settings_update(
            user_id=identity.user_id,
            user_settings=data["userSettings"],
            keys_to_remove=data["settingKeysToRemove"],
        )
        return Response({"userSettings": stored})


class UserPreloadSettingsApi(ConnectorApi):
    """GET /user/preloadSettings: the account's admin settings before the user logs in."""

    @extend_schema(
        tags=[SETTINGS],
        summary="Read the account's settings before logging in",
        description="The settings the account administrator set, for a user not yet logged in to a CRM. "
        "Name the account with rcAccountId or with a RingCentral access token (X-RC-Access-Token); with "
        "neither, the answer is a 400 with the text Cannot find rc user login. No JWT needed.",
        parameters=[RC_ACCOUNT_PARAM],
        responses={
            200: _ok("userSettings: the administrator's settings, keyed by setting id."),
            **ERRORS_400,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        account_key = self.query(io.AccountContextQuerySerializer).get("rcAccountId")
        token = _rc_access_token(request)
        if account_key:
            account = account_get_by_key(account_key=account_key)
        elif token:
            extension = _rc_extension(token)
            account = Account.objects.filter(rc_account_id=extension.account_id).first()
        else:
            raise PlainTextError("Cannot find rc user login")
        return Response({"userSettings": admin_settings_map(account=account)})


class AdminSettingsApi(ConnectorApi):
    """GET and POST /admin/settings: a RingCentral account admin's settings for the account.

    Differs from the peer: GET never returns stored tokens; POST accepts only the
    settings the server knows (`adminSettings.userSettings`), checks every value, and
    stores nothing unless all of it is valid.
    """

    invalid_token_text = "User not found"

    @extend_schema(
        tags=[SETTINGS],
        summary="Read the account's administrator settings",
        description="Needs the App Connect JWT and the RingCentral access token of an administrator of the "
        "account (X-RC-Access-Token). Returns the settings the administrator set for every user of the "
        "account; stored tokens are never returned.",
        parameters=[JWT_PARAM],
        responses={
            200: _ok(
                "id (App Connect's hashed account id), userSettings, createdAt and updatedAt; or "
                "customConnector null and empty userSettings when nothing is set."
            ),
            **ERRORS_400,
            **FORBIDDEN,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        if crm_user_get(user_id=identity.user_id) is None:
            raise PlainTextError("User not found")
        extension = _rc_admin(request)
        account = Account.objects.filter(rc_account_id=extension.account_id).first()
        settings = account_settings_map(account=account) if account is not None else {}
        if account is None or not settings:
            return Response({"customConnector": None, "userSettings": {}})
        return Response(
            {
                "id": account.account_key,
                "userSettings": settings,
                "createdAt": account.created_at,
                "updatedAt": account.updated_at,
            }
        )

    @extend_schema(
        tags=[SETTINGS],
        summary="Set the account's administrator settings",
        description="Needs the RingCentral access token of an administrator of the account "
        "(X-RC-Access-Token); no JWT. Replaces the settings every user of the account gets: the "
        "auto-logging rules and App Connect's settings, each with its value and whether users may change "
        "it. Only settings this server knows are accepted, every value is checked, and nothing is stored "
        "unless all are valid.",
        request=io.AdminSettingsUpdateInputSerializer,
        responses={
            (200, "text/html"): OpenApiResponse(OpenApiTypes.STR, description="Admin settings updated"),
            **ERRORS_400,
            **FORBIDDEN,
        },
    )
    def post(self, request: Request) -> HttpResponse:
        extension = _rc_admin(request)
        data = self.validated(io.AdminSettingsUpdateInputSerializer, request.data)
        admin_settings_apply(
            rc_account_id=extension.account_id, settings=data["adminSettings"]["userSettings"]
        )
        return HttpResponse("Admin settings updated", content_type="text/html; charset=utf-8")


class ServerLoggingSettingsApi(ConnectorApi):
    """GET and POST /admin/serverLoggingSettings: server-side call logging for the caller's
    RingCentral account (see sscl).

    Differs from the peer, whose route only stores connector-specific
    `additionalFieldValues`: no connector here declares such fields, so only `{}` is
    accepted for them; `serverSideLogging` turns logging on or off with its options, which
    needs the RingCentral admin's token too (the peer checks no admin role here). The
    logs are written with the calling user's CRM credentials.
    """

    @extend_schema(
        tags=[SETTINGS],
        summary="Read the account's server-side call logging",
        description="Whether the server logs every call of the user's RingCentral account by itself "
        "(server-side call logging), whose CRM identity the logs carry, the numbers never logged, and "
        "the health of the RingCentral subscription that delivers the calls. additionalFields is always "
        "empty: no connector here declares extra server-side logging fields.",
        parameters=[JWT_PARAM],
        responses={
            200: _ok(
                "additionalFields, additionalFieldValues, and serverSideLogging: enabled, ownerMode, "
                "blockedNumbers, the CRM user whose credentials write the logs, and the subscription's "
                "status, expiry, last delivery and last error."
            ),
            **ERRORS_400,
        },
    )
    def get(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        user = crm_user_get(user_id=identity.user_id)
        if user is None:
            raise PlainTextError("User not found")
        return Response(server_logging_state(rc_account_id=user.rc_account_id))

    @extend_schema(
        tags=[SETTINGS],
        summary="Turn server-side call logging on or off",
        description="With serverSideLogging, turns server-side call logging on or off for the account "
        "and sets its options; that needs the RingCentral access token of an administrator of the "
        "account (X-RC-Access-Token) as well as the JWT, and the logs are then written with this user's "
        "CRM credentials. Without serverSideLogging nothing changes and the answer is the current state. "
        "additionalFieldValues must be {}: no connector here declares extra fields.",
        request=io.ServerLoggingSettingsInputSerializer,
        parameters=[JWT_PARAM],
        responses={200: _ok("The state after the change, as the GET answers it."), **ERRORS_400, **FORBIDDEN},
    )
    def post(self, request: Request) -> HttpResponse:
        identity = self.require_identity()
        user = crm_user_get(user_id=identity.user_id)
        if user is None:
            raise PlainTextError("User not found")
        data = self.validated(io.ServerLoggingSettingsInputSerializer, request.data)
        options = data.get("serverSideLogging")
        if options is None:
            return Response(server_logging_state(rc_account_id=user.rc_account_id))
        extension = _rc_admin(request)
        try:
            server_logging_apply(
                rc_account_id=extension.account_id,
                crm_user_id=user.pk,
                enabled=options["enabled"],
                owner_mode=options["ownerMode"],
                blocked_numbers=options["blockedNumbers"],
            )
        except ServerLoggingError as exc:
            raise ErrorObject(str(exc)) from exc
        return Response(server_logging_state(rc_account_id=extension.account_id))


# --- one URL, several operations ---------------------------------------------------------


class ContactApi(ContactLookupApi, ContactCreateApi):
    """/contact: GET looks up (`ContactLookupApi`), POST creates (`ContactCreateApi`)."""


class CallLogApi(CallLogCreateApi, CallLogLookupApi, CallLogUpdateApi):
    """/callLog: POST creates, GET looks up, PATCH updates."""
