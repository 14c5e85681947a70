"""HubSpot (platform `hubspot`): contacts, calls and text conversations in a HubSpot account.

Users connect with OAuth (a HubSpot app: the v3 token endpoint, every parameter in the
form body) or, through POST /apiKeyLogin, with a private app's access token; both are sent
as a Bearer token to https://api.hubapi.com.

HubSpot's public documentation (developers.hubspot.com) this follows:
- OAuth: "Manage OAuth access tokens using the v3 APIs" (/docs/api-reference/auth-oauth-v3/guide),
  "OAuth token endpoint" POST /oauth/v3/token, "Token introspection endpoint"
  POST /oauth/v3/token/introspect; "Revoke an OAuth token" POST /oauth/2026-03/token/revoke
  (/docs/api-reference/latest/authentication/oauth-tokens/revoke-token), which the changelog
  "v1 OAuth API Deprecation" names as the successor of DELETE /oauth/v1/refresh-tokens/:token.
- "Retrieve account details" GET /account-info/v3/details; "CRM API | Owners"
  GET /crm/v3/owners/{ownerId}?idProperty=userId.
- "Search the CRM" POST /crm/v3/objects/{object}/search (filter groups OR'ed, the IN
  operator, at most five groups); contacts POST /crm/v3/objects/contacts.
- "Engagements | Calls" /crm/v3/objects/calls (hs_timestamp, hs_call_title, hs_call_body,
  hs_call_direction, hs_call_duration in milliseconds, hs_call_status, hs_call_from_number,
  hs_call_to_number, hubspot_owner_id; association type 194, call to contact); the
  calling-extensions recordings guide for hs_call_external_id.
- "Engagements | Communications" /crm/v3/objects/communications (hs_communication_channel_type
  SMS, hs_communication_logged_from CRM, hs_communication_body, hs_timestamp; association
  type 81, communication to contact).
- Associations v4 GET /crm/v4/objects/{type}/{id}/associations/{toType}; batch read
  POST /crm/v3/objects/{type}/batch/read.
- "API usage guidelines": 429s carry X-HubSpot-RateLimit-* headers (handled by `request`).
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import phonenumbers

from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogDetails,
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    CrmAuthError,
    CrmRejected,
    CrmUnavailable,
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

if TYPE_CHECKING:
    from connector.models import CrmUser
from connector.utils import overriding_formats_render, rc_time_parse

API = "https://api.hubapi.com"
AUTH_URL = "https://app.hubspot.com/oauth/authorize"
TOKEN_URL = f"{API}/oauth/v3/token"
INTROSPECT_URL = f"{API}/oauth/v3/token/introspect"
REVOKE_URL = f"{API}/oauth/2026-03/token/revoke"
# What the calls make need: contacts (search, create; calls and communications are covered
# by the contact scopes), owners (the user's owner id at login) and `oauth` (account details).
SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.owners.read")

CONTACT_TYPE = "contact"
CALL_TO_CONTACT = 194
COMMUNICATION_TO_CONTACT = 81
CONTACT_PROPERTIES = [
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "createdate",
    "lastmodifieddate",
    "notes_last_updated",
]
CALL_PROPERTIES = [
    "hs_call_title",
    "hs_call_body",
    "hs_call_direction",
    "hs_call_duration",
    "hs_call_status",
    "hs_timestamp",
    "hs_call_from_number",
    "hs_call_to_number",
    "hs_call_external_id",
    "hubspot_owner_id",
]
# A lookup returns at most this many contacts (a search page holds up to 200).
MAX_MATCHES = 50
# Batch reads take at most 100 ids; association pages hold at most 500.
BATCH_SIZE = 100
ASSOCIATION_PAGE = 500
# RingCentral call results that have a HubSpot call status of their own; others: COMPLETED.
CALL_STATUS = {"missed": "MISSED", "busy": "BUSY", "no answer": "NO_ANSWER"}
MESSAGE_LABELS = {
    "SMS": "SMS conversation",
    "Pager": "Text conversation",
    "Fax": "Fax",
    "VoiceMail": "Voicemail",
}
# Our key for a log, as HubSpot holds it: "rcac-" and 20 hex digits of its SHA-256.
KEY_STAMP = re.compile(r"rcac-[0-9a-f]{20}")
NOTE_LINE = re.compile(r"- (?:Note|Agent notes): (.*?)(?=\n- [A-Z][A-Za-z /]*:|\n$|$)", re.DOTALL)


def _success(message: str, ttl: int = 2000) -> JsonDict:
    return {"message": message, "messageType": "success", "ttl": ttl}


def _warning(message: str, ttl: int = 5000) -> JsonDict:
    return {"message": message, "messageType": "warning", "ttl": ttl}


def key_stamp(log_key: str) -> str:
    """The token a log is kept under at HubSpot: the call's `hs_call_external_id`, or a
    `(ref: ...)` mark after the message's line in a communication's body."""
    return "rcac-" + hashlib.sha256(log_key.encode()).hexdigest()[:20]


def plain_to_html(text: str) -> str:
    """Plain text as HubSpot's rich-text bodies show it: escaped, newlines as `<br>`."""
    return html.escape(text, quote=False).replace("\r\n", "\n").replace("\n", "<br>")


def html_to_plain(body: str) -> str:
    """A rich-text body back as plain text (the inverse of `plain_to_html`, and tolerant of
    HubSpot wrapping it in paragraphs), with one trailing newline when not empty."""
    text = re.sub(r"(?i)<br\s*/?>", "\n", body or "")
    text = re.sub(r"(?i)</(?:p|div|li|h[1-6])\s*>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]*>", "", text)).rstrip("\n")
    return text + "\n" if text else ""


def note_from_body(body: str) -> str:
    """The agent note of a composed plain-text body (`- Note: ...`), or ""."""
    match = NOTE_LINE.search(body)
    return match.group(1).strip() if match else ""


def _note_upsert(body: str, note: str) -> str:
    if NOTE_LINE.search(body):
        return NOTE_LINE.sub(lambda _: f"- Note: {note}", body, count=1)
    return f"- Note: {note}\n" + body


def _timestamp(value: Any) -> str | None:
    """A RingCentral time (ISO 8601, or epoch milliseconds from server-side logging) as
    the UTC form HubSpot's `hs_timestamp` takes; None when it cannot be read."""
    moment = rc_time_parse(value)
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _now() -> str:
    stamp = _timestamp(datetime.now(tz=UTC).isoformat())
    assert stamp is not None
    return stamp


def _duration_ms(value: Any) -> str | None:
    """Seconds as the milliseconds of `hs_call_duration`; None for "pending" and the like."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return str(max(round(seconds * 1000), 0))


def phone_formats(phone_number: str, overriding_format: str) -> list[str]:
    """The stored forms a number is looked up by, in order: as given (E.164), its national
    significant digits, the national and international formats, then each overriding format
    with its `*`/`#` filled in turn by the national digits (formats that do not take all
    the digits left out). Duplicates dropped."""
    candidates = [phone_number]
    try:
        parsed = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is not None:
        national = phonenumbers.national_significant_number(parsed)
        candidates += [
            national,
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL),
            phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
            *overriding_formats_render(overriding_format, digits=national),
        ]
    seen: dict[str, None] = {}
    for candidate in candidates:
        if candidate:
            seen.setdefault(candidate, None)
    return list(seen)


def _contact_name(properties: JsonDict) -> str:
    return " ".join(filter(None, [properties.get("firstname"), properties.get("lastname")])).strip()


class HubspotCrmClient(OAuthCrmClient):
    """HubSpot through its public REST API (api.hubapi.com). Holds no user state: each call
    authenticates with the user's access token (OAuth) or private app token."""

    # manifest

    def manifest(self) -> JsonDict:
        return {
            "name": self.platform,
            "displayName": "HubSpot",
            "auth": {"type": "oauth", "oauth": self.manifest_oauth()},
            "contactTypes": [{"display": "Contact", "value": CONTACT_TYPE}],
            "canOpenLogPage": False,
            "page": {"useContactSearch": True},
        }

    def get_log_format_type(self) -> str:
        """Plain text: our server composes it; it is written to HubSpot's rich-text bodies
        escaped, with `<br>` line breaks, and read back as plain text."""
        return "text/plain"

    # auth

    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        return self.oauth_app(
            "hubspot",
            token_url=token_url or TOKEN_URL,
            auth_url=AUTH_URL,
            scope="scope=" + " ".join(SCOPES),
            revoke_url=REVOKE_URL,
            token_auth_method="client_secret_post",
        )

    def auth_headers(self, user: CrmUser) -> dict[str, str]:
        """Both kinds of credential go as a Bearer token: the OAuth access token, or (when
        `platform_additional_info["authMode"] == "apiToken"`) the private app's token."""
        if (user.platform_additional_info or {}).get("authMode") == "apiToken":
            return {"Authorization": f"Bearer {user.access_token or ''}"}
        return self.bearer(user)

    def _call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> JsonDict:
        """One API request (through `request`: typed errors, safe retries); its JSON body."""
        response = self.request(method, API + path, headers=headers, json=json, params=params)
        if not response.content:
            return {}
        try:
            body = response.json()
        except ValueError as exc:
            raise CrmUnavailable(
                f"{self.platform} answered {method} {path} with something other than JSON",
                uncertain=method.upper() != "GET",
            ) from exc
        return body if isinstance(body, dict) else {"results": body}

    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        """Introspects the new access token (POST /oauth/v3/token/introspect, with the app's
        credentials) for `hub_id`, `user_id` and `user` (email); then the user's owner
        (GET /crm/v3/owners/{user_id}?idProperty=userId: owner id and name) and the
        account's time zone (GET /account-info/v3/details). User id: "<user_id>-hubspot"."""
        response = self.request(
            "POST",
            INTROSPECT_URL,
            data={
                "client_id": info.client_id,
                "client_secret": info.client_secret,
                "token": tokens.access_token,
                "token_type_hint": "access_token",
            },
        )
        try:
            meta = response.json()
        except ValueError as exc:
            raise CrmUnavailable(f"{self.platform}'s token introspection answered other than JSON") from exc
        if not isinstance(meta, dict) or not meta.get("active") or not meta.get("user_id"):
            return UserInfoResult(
                successful=False, return_message=_warning("HubSpot did not accept the new access token.")
            )
        headers = {"Authorization": f"Bearer {tokens.access_token}"}
        owner = self._owner_by_user_id(str(meta["user_id"]), headers=headers)
        account = self._call("GET", "/account-info/v3/details", headers=headers)
        extra: JsonDict = {
            "authMode": "oauth",
            "hubId": meta.get("hub_id"),
            "hubDomain": meta.get("hub_domain") or "",
            "email": meta.get("user") or "",
            "uiDomain": account.get("uiDomain") or "",
        }
        if owner.get("id"):
            extra["ownerId"] = str(owner["id"])
        name = _contact_name({"firstname": owner.get("firstName"), "lastname": owner.get("lastName")})
        return UserInfoResult(
            successful=True,
            user_id=f"{meta['user_id']}-{self.platform}",
            name=name or str(meta.get("user") or ""),
            timezone_name=str(account.get("timeZone") or ""),
            timezone_offset=str(account.get("utcOffset") or ""),
            platform_additional_info=extra,
            return_message=_success("Connected to HubSpot.", 1000),
        )

    def _owner_by_user_id(self, user_id: str, *, headers: dict[str, str]) -> JsonDict:
        """The owner record of a HubSpot user, or {} when HubSpot has none for it (404) or the
        app was not granted `crm.objects.owners.read` (403): logs then carry no owner."""
        try:
            return self._call(
                "GET", f"/crm/v3/owners/{user_id}", headers=headers, params={"idProperty": "userId"}
            )
        except CrmRejected as exc:
            if exc.status_code == 404:
                return {}
            raise
        except CrmAuthError as exc:
            if exc.status_code == 403:
                return {}
            raise

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        """A private app's access token (POST /apiKeyLogin): GET /account-info/v3/details with
        it as a Bearer token. Such a token belongs to the account, not to a person, so the
        user id is the account's: "portal<portalId>-hubspot"."""
        token = (api_key or "").strip()
        if not token:
            return UserInfoResult(
                successful=False, return_message=_warning("A private app token is required.")
            )
        try:
            account = self._call(
                "GET", "/account-info/v3/details", headers={"Authorization": f"Bearer {token}"}
            )
        except CrmAuthError:
            return UserInfoResult(
                successful=False,
                return_message=_warning("HubSpot refused this private app token.", 3000),
            )
        portal = account.get("portalId")
        if not portal:
            return UserInfoResult(successful=False, return_message=_warning("HubSpot named no account."))
        return UserInfoResult(
            successful=True,
            user_id=f"portal{portal}-{self.platform}",
            name=f"HubSpot account {portal}",
            timezone_name=str(account.get("timeZone") or ""),
            timezone_offset=str(account.get("utcOffset") or ""),
            platform_additional_info={
                "authMode": "apiToken",
                "hubId": portal,
                "uiDomain": account.get("uiDomain") or "",
            },
            return_message=_success("Connected to HubSpot.", 1000),
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        """OAuth users: revokes the refresh token (POST /oauth/2026-03/token/revoke, form
        `token`, `token_type_hint=refresh_token`, `client_id`, `client_secret`); the access
        token lapses within 30 minutes. A private app token is the account's to delete in
        HubSpot; nothing is sent for it. The caller forgets the stored tokens."""
        if (user.platform_additional_info or {}).get("authMode") == "apiToken":
            return _success("Logged out of HubSpot.", 1000)
        self.oauth_revoke(
            info=self.oauth_info_for_user(user),
            token=user.refresh_token or "",
            token_type_hint="refresh_token",
        )
        return _success("Logged out of HubSpot.", 1000)

    def auth_validation(self, *, user: CrmUser) -> tuple[bool, JsonDict | None]:
        """GET /account-info/v3/details with the user's credentials: any answer but 401/403
        means they still work."""
        try:
            self._call("GET", "/account-info/v3/details", headers=self.auth_headers(user))
        except CrmAuthError:
            return False, _warning("The HubSpot connection is no longer valid. Please connect again.")
        return True, _success("Authentication is valid.", 1000)

    # contacts

    def _contact_info(self, result: JsonDict, *, phone: str) -> JsonDict:
        properties = result.get("properties") or {}
        contact_id = str(result.get("id"))
        return {
            "id": contact_id,
            "name": _contact_name(properties) or phone or f"Contact {contact_id}",
            "type": CONTACT_TYPE,
            "phone": phone,
            "createdDate": properties.get("createdate") or result.get("createdAt"),
            "mostRecentActivityDate": properties.get("notes_last_updated") or None,
            "additionalInfo": None,
        }

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        """POST /crm/v3/objects/contacts/search: `phone IN [...]` OR `mobilephone IN [...]`
        over `phone_formats` (IN matches exactly, like EQ, and keeps the request within
        HubSpot's five filter groups however many overriding formats there are). HubSpot's
        search sees a contact only some seconds after it was created."""
        if is_extension:
            return FindContactResult(successful=False, contacts=[])
        formats = phone_formats(phone_number, overriding_format)
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": name, "operator": "IN", "values": formats}]}
                for name in ("phone", "mobilephone")
            ],
            "properties": CONTACT_PROPERTIES,
            "limit": MAX_MATCHES,
        }
        found = self._call(
            "POST", "/crm/v3/objects/contacts/search", headers=self.auth_headers(user), json=body
        )
        contacts = [self._contact_info(result, phone=phone_number) for result in found.get("results") or []]
        contacts.append(dict(NEW_CONTACT_OPTION))
        return FindContactResult(successful=True, contacts=contacts)

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        """POST /crm/v3/objects/contacts/search with `query` (HubSpot's text search over
        names, email, phone and company)."""
        if not name.strip():
            return FindContactResult(successful=True, contacts=[])
        body = {"query": name.strip(), "properties": CONTACT_PROPERTIES, "limit": MAX_MATCHES}
        found = self._call(
            "POST", "/crm/v3/objects/contacts/search", headers=self.auth_headers(user), json=body
        )
        contacts = []
        for result in found.get("results") or []:
            properties = result.get("properties") or {}
            phone = properties.get("phone") or properties.get("mobilephone") or ""
            contacts.append(self._contact_info(result, phone=phone))
        return FindContactResult(successful=True, contacts=contacts)

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        """POST /crm/v3/objects/contacts `{properties: {firstname, lastname, phone}}`: the
        name's first word is the first name, the rest the last name."""
        if contact_type not in ("", CONTACT_TYPE):
            raise CrmRejected(f"HubSpot has no contact type {contact_type!r}")
        first, _, last = " ".join(name.split()).partition(" ")
        properties = {"firstname": first, "phone": phone_number}
        if last:
            properties["lastname"] = last
        created = self._call(
            "POST",
            "/crm/v3/objects/contacts",
            headers=self.auth_headers(user),
            json={"properties": properties},
        )
        contact_name = _contact_name(created.get("properties") or {}) or " ".join(name.split())
        return CreateContactResult(
            contact={"id": str(created["id"]), "name": contact_name, "type": CONTACT_TYPE},
            return_message=_success("Contact created."),
        )

    # call logs

    @staticmethod
    def _owner_id(user: CrmUser) -> str:
        return str((user.platform_additional_info or {}).get("ownerId") or "")

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        """POST /crm/v3/objects/calls with the call's properties, `hs_call_external_id` set to
        the log key's stamp, and the contact association (type 194)."""
        call = data.call_log
        direction = str(call.get("direction") or "")
        inbound = direction.lower() == "inbound"
        who = contact.name or contact.phone_number
        if direction:
            default_subject = f"{direction} Call {'from' if inbound else 'to'} {who}".strip()
        else:
            default_subject = f"Call with {who}".strip()
        body = data.composed_log_details or (f"- Note: {data.note}\n" if data.note else "")
        properties: JsonDict = {
            "hs_timestamp": _timestamp(call.get("startTime")) or _now(),
            "hs_call_title": call.get("customSubject") or default_subject,
            "hs_call_body": plain_to_html(body),
            "hs_call_status": self._call_status(call.get("result")),
            "hs_call_from_number": (call.get("from") or {}).get("phoneNumber") or "",
            "hs_call_to_number": (call.get("to") or {}).get("phoneNumber") or "",
        }
        if direction:
            properties["hs_call_direction"] = direction.upper()
        duration = _duration_ms(call.get("duration"))
        if duration is not None:
            properties["hs_call_duration"] = duration
        if data.log_key:
            properties["hs_call_external_id"] = key_stamp(data.log_key)
        if self._owner_id(user):
            properties["hubspot_owner_id"] = self._owner_id(user)
        created = self._call(
            "POST",
            "/crm/v3/objects/calls",
            headers=self.auth_headers(user),
            json={
                "properties": properties,
                "associations": [self._association(contact.id, CALL_TO_CONTACT)],
            },
        )
        return LogResult(log_id=str(created["id"]), return_message=_success("Call logged"))

    @staticmethod
    def _association(contact_id: str, type_id: int) -> JsonDict:
        return {
            "to": {"id": str(contact_id)},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
        }

    @staticmethod
    def _call_status(result: Any) -> str:
        return CALL_STATUS.get(str(result or "").strip().lower(), "COMPLETED")

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        """PATCH /crm/v3/objects/calls/{id} with what changed: title, body (the recomposed
        details; or, when none were composed, the stored body with its note replaced),
        timestamp, duration, status."""
        headers = self.auth_headers(user)
        properties: JsonDict = {}
        body = data.composed_log_details
        if not body and data.note is not None:
            current = self._call(
                "GET",
                f"/crm/v3/objects/calls/{data.crm_log_id}",
                headers=headers,
                params={"properties": "hs_call_body"},
            )
            body = _note_upsert(
                html_to_plain((current.get("properties") or {}).get("hs_call_body") or ""), data.note
            )
        if body:
            properties["hs_call_body"] = plain_to_html(body)
        if data.subject:
            properties["hs_call_title"] = data.subject
        start = _timestamp(data.start_time)
        if start:
            properties["hs_timestamp"] = start
        duration = _duration_ms(data.duration)
        if duration is not None:
            properties["hs_call_duration"] = duration
        if data.result:
            properties["hs_call_status"] = self._call_status(data.result)
        if properties:
            self._call(
                "PATCH",
                f"/crm/v3/objects/calls/{data.crm_log_id}",
                headers=headers,
                json={"properties": properties},
            )
        updated_note = note_from_body(body) if body else data.note
        return UpdateLogResult(updated_note=updated_note, return_message=_success("Call log updated."))

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        """GET /crm/v3/objects/calls/{id}?properties=...: subject, the agent note, and the
        body as plain text (`fullBody`, the base the server recomposes on update)."""
        found = self._call(
            "GET",
            f"/crm/v3/objects/calls/{crm_log_id}",
            headers=self.auth_headers(user),
            params={"properties": ",".join(CALL_PROPERTIES)},
        )
        properties = found.get("properties") or {}
        body = html_to_plain(properties.get("hs_call_body") or "")
        return CallLogDetails(
            info={
                "subject": properties.get("hs_call_title") or "",
                "note": note_from_body(body),
                "fullBody": body,
                "fullLogResponse": found,
            }
        )

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The call whose `hs_call_external_id` is the key's stamp: first POST
        /crm/v3/objects/calls/search (EQ); since HubSpot's search sees a new call only after
        some seconds, then the contact's calls themselves (associations, batch read)."""
        if not log_key:
            return None
        stamp = key_stamp(log_key)
        headers = self.auth_headers(user)
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": "hs_call_external_id", "operator": "EQ", "value": stamp}]}
            ],
            "properties": ["hs_call_external_id"],
            "limit": 1,
        }
        try:
            found = self._call("POST", "/crm/v3/objects/calls/search", headers=headers, json=body)
        except CrmRejected:
            # A portal whose search refuses this filter (400): the contact's calls still answer.
            found = {}
        for result in found.get("results") or []:
            if (result.get("properties") or {}).get("hs_call_external_id") == stamp:
                return str(result["id"])
        return self._associated_find(
            headers=headers,
            contact_id=contact_id,
            to_type="calls",
            prop="hs_call_external_id",
            holds=lambda value: value == stamp,
        )

    def _associated_ids(self, *, headers: dict[str, str], contact_id: str, to_type: str) -> list[str]:
        """Ids of every `to_type` record associated with the contact, newest (highest) first."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": ASSOCIATION_PAGE}
            if after:
                params["after"] = after
            page = self._call(
                "GET",
                f"/crm/v4/objects/contacts/{contact_id}/associations/{to_type}",
                headers=headers,
                params=params,
            )
            ids += [str(item["toObjectId"]) for item in page.get("results") or [] if item.get("toObjectId")]
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                break
        return sorted(set(ids), key=lambda value: (len(value), value), reverse=True)

    def _associated_find(
        self,
        *,
        headers: dict[str, str],
        contact_id: str,
        to_type: str,
        prop: str,
        holds: Callable[[str], bool],
    ) -> str | None:
        """The first of the contact's `to_type` records (newest first) whose `prop` `holds`:
        GET /crm/v4/objects/contacts/{id}/associations/{to_type}, then POST
        /crm/v3/objects/{to_type}/batch/read in pages of 100. Read from the records
        themselves, so it sees a record as soon as it was created."""
        if not contact_id:
            return None
        ids = self._associated_ids(headers=headers, contact_id=contact_id, to_type=to_type)
        for chunk in _chunks(ids, BATCH_SIZE):
            batch = self._call(
                "POST",
                f"/crm/v3/objects/{to_type}/batch/read",
                headers=headers,
                json={"properties": [prop], "inputs": [{"id": record_id} for record_id in chunk]},
            )
            by_id = {str(item.get("id")): item for item in batch.get("results") or []}
            for record_id in chunk:  # newest first, whatever order the batch came back in
                item = by_id.get(record_id)
                if item is not None and holds(str((item.get("properties") or {}).get(prop) or "")):
                    return record_id
        return None

    # message logs

    @staticmethod
    def _message_line(data: MessageLogInput) -> str:
        message = data.message
        sender = message.get("from") or {}
        who = sender.get("name") or sender.get("phoneNumber") or ""
        text = " ".join(str(message.get("subject") or "").split())
        head = " ".join(
            filter(None, [str(message.get("creationTime") or ""), str(message.get("direction") or "")])
        )
        line = f"{head} {who}: {text}".strip()
        links = [f"{name}: {link}" for name, link in sorted(data.links.items()) if link]
        return " ".join([line, *links])

    def _stamped(self, line: str, log_key: str) -> str:
        line_html = html.escape(line, quote=False)
        return f"{line_html} (ref: {key_stamp(log_key)})" if log_key else line_html

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        """POST /crm/v3/objects/communications: an SMS communication (HubSpot's object for
        logging texts on the timeline; voicemails and faxes too, labelled in the body)
        associated with the contact (type 81). Body: a bold title, then one line per
        message, each followed by its key's stamp."""
        if data.shared_content is not None:
            title = str(data.shared_content.get("subject") or "")
            lines = plain_to_html(str(data.shared_content.get("body") or "").rstrip("\n"))
            if data.log_key:
                lines += f"<br>(ref: {key_stamp(data.log_key)})"
        else:
            label = MESSAGE_LABELS.get(str(data.message.get("type") or "SMS"), "Conversation")
            title = f"{label} with {contact.name or contact.phone_number}"
            lines = self._stamped(self._message_line(data), data.log_key)
        properties: JsonDict = {
            "hs_communication_channel_type": "SMS",
            "hs_communication_logged_from": "CRM",
            "hs_communication_body": f"<b>{html.escape(title, quote=False)}</b><br>{lines}",
            "hs_timestamp": _timestamp(data.message.get("creationTime")) or _now(),
        }
        if self._owner_id(user):
            properties["hubspot_owner_id"] = self._owner_id(user)
        created = self._call(
            "POST",
            "/crm/v3/objects/communications",
            headers=self.auth_headers(user),
            json={
                "properties": properties,
                "associations": [self._association(contact.id, COMMUNICATION_TO_CONTACT)],
            },
        )
        return LogResult(log_id=str(created["id"]), return_message=_success("Message logged", 1000))

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        """GET /crm/v3/objects/communications/{id}, then PATCH it with the message's line
        appended (nothing is sent when the body already holds the key's stamp). Shared SMS:
        the body becomes the new conversation, the stamps of the messages before kept."""
        headers = self.auth_headers(user)
        path = f"/crm/v3/objects/communications/{crm_log_id}"
        current = self._call("GET", path, headers=headers, params={"properties": "hs_communication_body"})
        body = str((current.get("properties") or {}).get("hs_communication_body") or "")
        if data.shared_content is not None:
            title = html.escape(str(data.shared_content.get("subject") or ""), quote=False)
            stamps = list(
                dict.fromkeys(KEY_STAMP.findall(body) + ([key_stamp(data.log_key)] if data.log_key else []))
            )
            new_body = f"<b>{title}</b><br>" + plain_to_html(
                str(data.shared_content.get("body") or "").rstrip("\n")
            )
            if stamps:
                new_body += "<br>(ref: " + ", ".join(stamps) + ")"
        elif data.log_key and key_stamp(data.log_key) in body:
            return UpdateLogResult(return_message=_success("Message log updated", 1000))
        else:
            new_body = body + "<br>" + self._stamped(self._message_line(data), data.log_key)
        self._call("PATCH", path, headers=headers, json={"properties": {"hs_communication_body": new_body}})
        return UpdateLogResult(return_message=_success("Message log updated", 1000))

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The contact's communication whose body holds the key's stamp (the contact's
        communications read themselves: associations, then batch read of the bodies)."""
        if not log_key:
            return None
        stamp = key_stamp(log_key)
        return self._associated_find(
            headers=self.auth_headers(user),
            contact_id=contact_id,
            to_type="communications",
            prop="hs_communication_body",
            holds=lambda value: stamp in value,
        )


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
