"""The Pipedrive connector (platform `pipedrive`): persons, and call and message activities.

Users connect with OAuth (App Connect's way) or with their personal API token
(`POST /apiKeyLogin`). Calls go to the user's company host: the `api_domain` of the OAuth
token response, or `<company_domain>.pipedrive.com`; only `*.pipedrive.com` hosts ever
receive a token.

Pages this follows (request and response shapes):
- OAuth: developers.pipedrive.com/docs/api/v1/Oauth ("Getting the tokens", "Refreshing the
  tokens", "Revoking the tokens"); pipedrive.readme.io/docs/marketplace-oauth-authorization.
- API token: pipedrive.readme.io/docs/core-api-concepts-authentication (the token goes in
  the `x-api-token` header), as the official clients send it (pipedrive/client-nodejs
  docs/v1.md and docs/v2.md, "api_key: x-api-token, HTTP header").
- Who am I: developers.pipedrive.com/docs/api/v1/Users#getCurrentUser (`GET /v1/users/me`).
- Persons: developers.pipedrive.com/docs/api/v2/Persons (`searchPersons`, `getPersons`,
  `addPerson` with `phones: [{value, primary, label}]`; pipedrive/client-nodejs
  src/versions/v2/models/add-person-request.ts).
- Activities: developers.pipedrive.com/docs/api/v2/Activities (`addActivity`,
  `updateActivity`, `getActivity`, `getActivities` with `person_id`/`owner_id`/sorting;
  pipedrive/client-nodejs src/versions/v2/api/activities-api.ts); a person is linked as
  `participants: [{person_id, primary: true}]` (`person_id` itself is read-only in v2:
  pipedrive.readme.io "API v2 migration guide"); `updateActivity` takes the same body as
  `addActivity` (client-nodejs: `ActivitiesApiUpdateActivityRequest` carries an
  `AddActivityRequest`), so new `participants` move an activity to another person.
- Activity types: developers.pipedrive.com/docs/api/v1/ActivityTypes (`key_string` is
  what an activity's `type` holds).
- Rate limits: pipedrive.readme.io/docs/core-api-concepts-rate-limiting (`x-ratelimit-*`
  headers, 429 with `Retry-After`), handled by `HttpCrmClient.request`.

The body of a log is composed as plain text by our composer (`get_log_format_type`) and
sent to Pipedrive as HTML (its notes are HTML); reading a log back turns it into plain
text again, so an update recomposes it line by line. Each log carries the key our log
history keeps it under as a visible line, `[RingCentral log key: <key>]`, which
`find_call_log` / `find_message_log` look for among the person's activities.
"""

from __future__ import annotations

import html
import math
import re
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import urlsplit

import phonenumbers
import requests

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
    RelinkResult,
    UpdateLogResult,
    UserInfoResult,
)
from connector.models import CrmUser
from connector.utils import overriding_formats_render, rc_time_parse

AUTH_URL = "https://oauth.pipedrive.com/oauth/authorize"
TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"
REVOKE_URL = "https://oauth.pipedrive.com/oauth/revoke"
# The host for a user whose company host is not known (App Connect's default).
API_HOST = "api.pipedrive.com"
OAUTH_APP_KEY = "pipedrive"

API_TOKEN_MODE = "apiToken"
# Pipedrive has one kind of contact, the person. Its value is App Connect's type for
# Pipedrive contacts, so lookups, created contacts and the manifest all say the same.
CONTACT_TYPE = "contact"
# Activity types are looked up once a day per company (App Connect caches them 24 h).
ACTIVITY_TYPES_TTL_SECONDS = 24 * 3600
# A lookup reads at most this many matches (Pipedrive's page size; it allows up to 500).
SEARCH_LIMIT = 100
# `find_call_log` reads the person's newest activities, at most this many pages of 100.
FIND_LOG_PAGES = 3

KEY_LINE = "[RingCentral log key: {key}]"
_KEY_PATTERN = re.compile(r"\[RingCentral log key: [^\]\n]*\]")
_HOST_PATTERN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+pipedrive\.com")
_NOTE_PATTERN = re.compile(r"- (?:Note|Agent notes): (.*?)(?=\n- [A-Z][A-Za-z /]*:|\n\[|\n$|$)", re.DOTALL)


def _message(text: str, message_type: str = "success", ttl: int = 2000) -> JsonDict:
    return {"message": text, "messageType": message_type, "ttl": ttl}


def pipedrive_host(value: str) -> str:
    """The host of a Pipedrive URL or hostname (`https://acme.pipedrive.com`,
    `acme.pipedrive.com`), lower-cased; "" when it is not a `*.pipedrive.com` host."""
    text = (value or "").strip()
    try:
        host = urlsplit(text if "//" in text else f"//{text}").hostname or ""
    except ValueError:
        return ""
    host = host.rstrip(".")
    return host if _HOST_PATTERN.fullmatch(host) else ""


def plain_to_html(text: str) -> str:
    """A plain-text body as the HTML of a Pipedrive note: escaped, one `<br>` a line."""
    return html.escape(text, quote=False).replace("\n", "<br>")


def html_to_plain(note: str) -> str:
    """The text of a Pipedrive note: line breaks and block ends become newlines, other
    tags go, entities are decoded (the inverse of `plain_to_html`)."""
    text = re.sub(r"<br\s*/?>", "\n", note or "", flags=re.IGNORECASE)
    text = re.sub(r"</(?:p|div|li|ul|h[1-6])>", "\n", text, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]*>", "", text)
    return html.unescape(text)


def key_line(log_key: str) -> str:
    """The line that stores our log key with a Pipedrive activity (plain text)."""
    return KEY_LINE.format(key=log_key.replace("]", ")").replace("\n", " "))


def note_holds_key(note: str, log_key: str) -> bool:
    """Whether a note (HTML as Pipedrive keeps it) carries `log_key`'s line."""
    return bool(log_key) and key_line(log_key) in html_to_plain(note)


def duration_format(seconds: Any) -> str | None:
    """A call's duration in seconds as Pipedrive's `HH:MM`, rounded up to the minute;
    None when it is not a number of seconds (e.g. server-side logging's "pending")."""
    if isinstance(seconds, bool):
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or value < 0:
        return None
    minutes = math.ceil(value / 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _offset(value: str) -> timedelta | None:
    match = re.fullmatch(r"([+-])(\d{1,2}):?(\d{2})", (value or "").strip())
    if not match:
        return None
    sign = -1 if match.group(1) == "-" else 1
    return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))


def _local(moment: datetime, timezone_offset: str) -> tuple[datetime, str]:
    """`moment` in the user's time zone offset, and a suffix naming the zone when the
    offset is unknown (then UTC)."""
    offset = _offset(timezone_offset)
    if offset is None:
        return moment.astimezone(UTC), " UTC"
    try:
        return moment.astimezone(timezone(offset)), ""
    except ValueError:
        return moment.astimezone(UTC), " UTC"


class PipedriveCrmClient(OAuthCrmClient):
    """Pipedrive through its REST API (v2 where Pipedrive has it, v1 for the rest).

    Shared by every thread of a process; the only state it keeps is the activity types of
    each company (a day), under a lock.
    """

    display_name: ClassVar[str] = "Pipedrive"

    def __init__(self, platform: str, *, timeout: float | None = None) -> None:
        super().__init__(platform, timeout=timeout)
        self._types_lock = threading.Lock()
        self._types: dict[str, tuple[float, list[JsonDict]]] = {}

    # manifest and capabilities

    def manifest(self) -> JsonDict:
        return {
            "name": self.platform,
            "displayName": self.display_name,
            "auth": {"type": "oauth", "oauth": self.manifest_oauth()},
            "environment": {
                "type": "dynamic",
                "urlIdentifier": "*.pipedrive.com",
                "instructions": [
                    "Log in to your Pipedrive account",
                    "Copy the whole URL and paste it here",
                ],
            },
            "urlIdentifier": "*.pipedrive.com",
            "contactTypes": [{"display": "Person", "value": CONTACT_TYPE}],
            "contactPageUrl": "https://{hostname}/person/{contactId}",
            "logPageUrl": "https://{hostname}/activities/{logId}",
            "canOpenLogPage": False,
            "page": {"useContactSearch": True},
        }

    def get_log_format_type(self) -> str:
        """Plain text: our composer writes the body, this connector sends it as HTML."""
        return "text/plain"

    # auth

    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        """Pipedrive's one OAuth app (`PIPEDRIVE_*`); its scopes are chosen in Pipedrive's
        Developer Hub, not in the authorization URL, so the manifest's `scope` is empty."""
        return self.oauth_app(
            OAUTH_APP_KEY,
            token_url=token_url or TOKEN_URL,
            auth_url=AUTH_URL,
            scope="",
            revoke_url=REVOKE_URL,
            token_auth_method="client_secret_basic",
        )

    def auth_headers(self, user: CrmUser) -> dict[str, str]:
        """An API-token user's token in `x-api-token` (never in a URL); an OAuth user's
        access token as a Bearer token."""
        if user.platform_additional_info.get("authMode") == API_TOKEN_MODE:
            return {"x-api-token": user.access_token or ""}
        return self.bearer(user)

    def _me(self, *, host: str, headers: dict[str, str]) -> JsonDict:
        response = self.request("GET", f"https://{host}/v1/users/me", headers=headers)
        data = self._json(response).get("data")
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise CrmUnavailable(f"{self.platform} answered /v1/users/me without a user")
        return data

    def _user_info(self, me: JsonDict, *, host: str, auth_mode: str, message: str) -> UserInfoResult:
        company_host = pipedrive_host(f"{me.get('company_domain') or ''}.pipedrive.com")
        return UserInfoResult(
            successful=True,
            user_id=f"{me['id']}-{self.platform}",
            name=str(me.get("name") or ""),
            timezone_name=str(me.get("timezone_name") or ""),
            timezone_offset=str(me.get("timezone_offset") or ""),
            platform_additional_info={
                "authMode": auth_mode,
                "companyId": me.get("company_id"),
                "companyName": me.get("company_name"),
                "companyDomain": me.get("company_domain"),
            },
            overriding_hostname=host if host != API_HOST else (company_host or host),
            return_message=_message(message, ttl=1000),
        )

    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        """`GET /v1/users/me` on the company host the token response names (`api_domain`),
        which becomes the user's hostname."""
        host = pipedrive_host(str(tokens.raw.get("api_domain") or "")) or pipedrive_host(hostname) or API_HOST
        me = self._me(host=host, headers={"Authorization": f"Bearer {tokens.access_token}"})
        return self._user_info(me, host=host, auth_mode="oauth", message="Connected to Pipedrive.")

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        """Log in with a personal API token (`POST /apiKeyLogin`): whose it is, asked on
        `hostname` when that is a Pipedrive host, else on api.pipedrive.com. A token
        Pipedrive refuses is a failed login, not an error."""
        token = (api_key or "").strip()
        if not token:
            return UserInfoResult(
                successful=False,
                return_message=_message("Please enter your Pipedrive API token.", "warning", 3000),
            )
        host = pipedrive_host(hostname) or API_HOST
        try:
            me = self._me(host=host, headers={"x-api-token": token})
        except CrmAuthError:
            return UserInfoResult(
                successful=False,
                return_message=_message(
                    "Pipedrive refused this API token. Copy it again from Personal preferences > API.",
                    "warning",
                    3000,
                ),
            )
        return self._user_info(
            me, host=host, auth_mode=API_TOKEN_MODE, message="Connected to Pipedrive with your API token."
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        """OAuth: revoke the refresh token, then the access token, at Pipedrive's
        revocation endpoint (Basic client authentication). A personal API token cannot be
        revoked by an app: it is only forgotten here."""
        if user.platform_additional_info.get("authMode") == API_TOKEN_MODE:
            return _message(
                "Logged out of Pipedrive. Your API token itself stays valid; regenerate it in "
                "Pipedrive if it should stop working.",
                ttl=3000,
            )
        info = self.oauth_info_for_user(user)
        self.oauth_revoke(info=info, token=user.refresh_token or "", token_type_hint="refresh_token")
        self.oauth_revoke(info=info, token=user.access_token or "", token_type_hint="access_token")
        return _message("Logged out of Pipedrive.", ttl=1000)

    def auth_validation(self, *, user: CrmUser) -> tuple[bool, JsonDict | None]:
        """`GET /v1/users/me` with the stored credentials."""
        try:
            self._me(host=self._host(user), headers=self.auth_headers(user))
        except CrmAuthError:
            refused = "Pipedrive no longer accepts this connection. Please connect again."
            return False, _message(refused, "warning", 5000)
        return True, _message("Authentication is valid.", ttl=1000)

    # plumbing

    def _host(self, user: CrmUser) -> str:
        return pipedrive_host(user.hostname) or API_HOST

    def _call(self, method: str, user: CrmUser, path: str, **kwargs: Any) -> Any:
        """A Pipedrive API call for `user`; returns the answer's `data`."""
        return self._body(method, user, path, **kwargs).get("data")

    def _body(self, method: str, user: CrmUser, path: str, **kwargs: Any) -> JsonDict:
        """A Pipedrive API call for `user` (on the user's company host, with the user's
        credentials); returns the whole JSON answer (`data`, `additional_data`)."""
        headers = {"Accept": "application/json", **self.auth_headers(user)}
        response = self.request(method, f"https://{self._host(user)}{path}", headers=headers, **kwargs)
        return self._json(response)

    def _json(self, response: requests.Response) -> JsonDict:
        try:
            body = response.json()
        except ValueError as exc:
            raise CrmUnavailable(
                f"{self.platform} answered HTTP {response.status_code} without JSON",
                status_code=response.status_code,
                uncertain=response.request.method not in ("GET", "HEAD"),
            ) from exc
        return body if isinstance(body, dict) else {}

    def _owner_id(self, user: CrmUser) -> int:
        # Our user ids are "<Pipedrive user id>-<platform>" (see `_user_info`).
        raw = user.id.removesuffix(f"-{self.platform}")
        if not raw.isdigit():
            raise CrmRejected(f"{user.id} is not a Pipedrive user")
        return int(raw)

    @staticmethod
    def _person_id(contact_id: str) -> int | None:
        text = str(contact_id or "").strip()
        return int(text) if text.isdigit() else None

    # contacts

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        """Persons whose phone matches: `GET /api/v2/persons/search?fields=phone` with the
        national significant digits, then, if none matched, each of the user's overriding
        formats in order until one matches; then one `GET /api/v2/persons?ids=...` for the
        matches' creation and update times. Deals and leads are not looked up."""
        if is_extension:
            return FindContactResult(
                successful=False,
                contacts=[],
                return_message=_message(
                    "Logging against internal extension number is not supported.", "warning", 3000
                ),
            )
        digits = self._national_digits(phone_number)
        if digits is None:
            return FindContactResult(
                successful=False,
                contacts=[],
                return_message=_message(
                    "Logging against internal extension number is not supported.", "warning", 3000
                ),
            )
        items: list[JsonDict] = []
        for term in dict.fromkeys([digits, *overriding_formats_render(overriding_format, digits=digits)]):
            if len(term) < 2:
                continue
            items = self._search(user, term=term, field="phone")
            if items:
                break
        contacts = self._contacts(user, items, phone=phone_number)
        contacts.append(dict(NEW_CONTACT_OPTION))
        return FindContactResult(successful=True, contacts=contacts)

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        """Persons whose name matches (`GET /api/v2/persons/search?fields=name`)."""
        term = name.strip()
        if len(term) < 2:
            return FindContactResult(successful=True, contacts=[])
        items = self._search(user, term=term, field="name")
        return FindContactResult(successful=True, contacts=self._contacts(user, items, phone=None))

    @staticmethod
    def _national_digits(phone_number: str) -> str | None:
        text = (phone_number or "").strip()
        if not text.startswith("+"):
            return None
        try:
            parsed = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException:
            return None
        return str(phonenumbers.national_significant_number(parsed)) or None

    def _search(self, user: CrmUser, *, term: str, field: str) -> list[JsonDict]:
        data = self._call(
            "GET",
            user,
            "/api/v2/persons/search",
            params={"term": term, "fields": field, "limit": SEARCH_LIMIT},
        )
        items = (data.get("items") or []) if isinstance(data, dict) else []
        found: dict[str, JsonDict] = {}
        for entry in items:
            item = (entry or {}).get("item") or {}
            if item.get("id") is not None:
                found.setdefault(str(item["id"]), item)
        return list(found.values())

    def _contacts(self, user: CrmUser, items: list[JsonDict], *, phone: str | None) -> list[JsonDict]:
        if not items:
            return []
        # Search results carry no times; one list call reads them for all matches.
        data = self._call(
            "GET",
            user,
            "/api/v2/persons",
            params={"ids": ",".join(str(item["id"]) for item in items), "limit": len(items)},
        )
        rows = data if isinstance(data, list) else []
        persons = {str(p.get("id")): p for p in rows if isinstance(p, dict)}
        contacts = []
        for item in items:
            person = persons.get(str(item["id"]), {})
            phones = item.get("phones") or []
            contacts.append(
                {
                    "id": str(item["id"]),
                    "name": item.get("name") or person.get("name") or "",
                    "type": CONTACT_TYPE,
                    "phone": phone if phone is not None else (phones[0] if phones else ""),
                    "organization": ((item.get("organization") or {}).get("name")) or "",
                    "createdDate": person.get("add_time"),
                    # Pipedrive's last update of the person, as App Connect reports it.
                    "mostRecentActivityDate": person.get("update_time"),
                    "additionalInfo": None,
                }
            )
        return contacts

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        """`POST /api/v2/persons {name, phones: [{value: <E.164>, primary, label: "work"}]}`."""
        if contact_type not in ("", CONTACT_TYPE):
            raise CrmRejected(f"Pipedrive has no contact type {contact_type!r}; it creates persons")
        data = self._call(
            "POST",
            user,
            "/api/v2/persons",
            json={"name": name, "phones": [{"value": phone_number, "primary": True, "label": "work"}]},
        )
        if not isinstance(data, dict) or data.get("id") is None:
            raise CrmUnavailable(f"{self.platform} created a person but did not say which", uncertain=True)
        return CreateContactResult(
            contact={"id": str(data["id"]), "name": data.get("name") or name, "type": CONTACT_TYPE},
            return_message=_message("Contact created."),
        )

    # activity types

    def _types_key(self, user: CrmUser) -> str:
        company = user.platform_additional_info.get("companyId")
        # Without a company id (an old login), a user's types are their own.
        return f"{self._host(user)}|{company}" if company else f"{self._host(user)}|user:{user.pk}"

    def _activity_types(self, user: CrmUser) -> list[JsonDict]:
        key = self._types_key(user)
        now = time.monotonic()
        with self._types_lock:
            cached = self._types.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        data = self._call("GET", user, "/v1/activityTypes")
        types = [t for t in (data if isinstance(data, list) else []) if isinstance(t, dict)]
        with self._types_lock:
            self._types[key] = (now + ACTIVITY_TYPES_TTL_SECONDS, types)
        return types

    def _types_forget(self, user: CrmUser) -> None:
        with self._types_lock:
            self._types.pop(self._types_key(user), None)

    def _activity_type(self, user: CrmUser, word: str) -> str | None:
        """The `key_string` of the company's active activity type for `word`: the one
        keyed `word` itself, else the first whose key or name contains it; None if none."""
        active = [t for t in self._activity_types(user) if t.get("active_flag", True) and t.get("key_string")]
        for item in active:
            if str(item["key_string"]).lower() == word:
                return str(item["key_string"])
        for item in active:
            if word in str(item["key_string"]).lower() or word in str(item.get("name") or "").lower():
                return str(item["key_string"])
        return None

    def _activity_create(self, user: CrmUser, body: JsonDict) -> JsonDict:
        try:
            data = self._call("POST", user, "/api/v2/activities", json=body)
        except CrmRejected:
            self._types_forget(user)  # the type may have been removed since it was read
            raise
        if not isinstance(data, dict) or data.get("id") is None:
            raise CrmUnavailable(f"{self.platform} created an activity but did not say which", uncertain=True)
        return data

    @staticmethod
    def _when(body: JsonDict, moment: datetime | None) -> None:
        if moment is not None:
            utc = moment.astimezone(UTC)
            body["due_date"] = utc.strftime("%Y-%m-%d")
            body["due_time"] = utc.strftime("%H:%M")

    def _find_activity(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The id of the person's newest activity of ours whose note holds `log_key`'s line:
        `GET /api/v2/activities?person_id=&owner_id=`, newest first, a few pages."""
        person_id = self._person_id(contact_id)
        if person_id is None or not log_key:
            return None
        params: dict[str, Any] = {
            "person_id": person_id,
            "owner_id": self._owner_id(user),
            "sort_by": "add_time",
            "sort_direction": "desc",
            "limit": 100,
        }
        for _ in range(FIND_LOG_PAGES):
            body = self._body("GET", user, "/api/v2/activities", params=params)
            for activity in body.get("data") or []:
                if isinstance(activity, dict) and note_holds_key(str(activity.get("note") or ""), log_key):
                    return str(activity["id"])
            cursor = (body.get("additional_data") or {}).get("next_cursor")
            if not cursor:
                return None
            params["cursor"] = cursor
        return None

    # call logs

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        """`POST /api/v2/activities` of the company's call type, done, owned by the user,
        with the person as primary participant; the note is the composed body as HTML,
        ending with the log key's line."""
        person_id = self._person_id(contact.id)
        if person_id is None:
            raise CrmRejected(f"{contact.id!r} is not a Pipedrive person id")
        type_key = self._activity_type(user, "call")
        if type_key is None:
            self._types_forget(user)
            return LogResult(
                log_id=None,
                return_message=_message(
                    'Call logging requires an active Pipedrive activity type whose name contains "call".',
                    "error",
                    3000,
                ),
            )
        call = data.call_log
        direction = str(call.get("direction") or "")
        who = contact.name or contact.phone_number
        preposition = "to" if direction == "Outbound" else "from"
        subject = call.get("customSubject") or " ".join(
            part for part in (direction, "Call", preposition, who) if part
        )
        body: JsonDict = {
            "subject": str(subject)[:255],
            "type": type_key,
            "owner_id": self._owner_id(user),
            "done": True,
            "participants": [{"person_id": person_id, "primary": True}],
            "note": self._note(data.composed_log_details or data.note, data.log_key),
        }
        self._when(body, rc_time_parse(call.get("startTime")))
        duration = duration_format(call.get("duration"))
        if duration is not None:
            body["duration"] = duration
        created = self._activity_create(user, body)
        return LogResult(log_id=str(created["id"]), return_message=_message("Call logged"))

    @staticmethod
    def _note(text: str, log_key: str) -> str:
        lines = text.rstrip("\n")
        if log_key:
            lines = f"{lines}\n{key_line(log_key)}" if lines else key_line(log_key)
        return plain_to_html(lines + "\n") if lines else ""

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        return self._find_activity(user=user, log_key=log_key, contact_id=contact_id)

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        """`PATCH /api/v2/activities/{id}` with what changed: the note (the recomposed body,
        which keeps the log key's line read back by `get_call_log`), subject, duration and
        due date/time."""
        body: JsonDict = {}
        text = data.composed_log_details or data.note
        if text:
            body["note"] = plain_to_html(text)
        if data.subject:
            body["subject"] = data.subject[:255]
        duration = duration_format(data.duration)
        if duration is not None:
            body["duration"] = duration
        self._when(body, rc_time_parse(data.start_time))
        if body:
            self._call("PATCH", user, f"/api/v2/activities/{self._activity_id(data.crm_log_id)}", json=body)
        return UpdateLogResult(updated_note=text or None, return_message=_message("Call log updated."))

    @staticmethod
    def _activity_id(crm_log_id: str) -> int:
        text = str(crm_log_id or "").strip()
        if not text.isdigit():
            raise CrmRejected(f"{crm_log_id!r} is not a Pipedrive activity id")
        return int(text)

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        """`GET /api/v2/activities/{id}`: subject, the agent note, and the whole note as
        plain text (`fullBody`, the base our composer updates in place)."""
        data = self._call("GET", user, f"/api/v2/activities/{self._activity_id(crm_log_id)}")
        activity = data if isinstance(data, dict) else {}
        full_body = html_to_plain(str(activity.get("note") or ""))
        note = _NOTE_PATTERN.search(full_body)
        return CallLogDetails(
            info={
                "subject": activity.get("subject") or "",
                "note": note.group(1).strip() if note else "",
                "fullBody": full_body,
                "fullLogResponse": activity,
            }
        )

    # message logs

    def _message_type(self, user: CrmUser) -> str | None:
        # A company without an SMS type (Pipedrive's defaults have none) logs messages
        # with its call type rather than not at all.
        return self._activity_type(user, "sms") or self._activity_type(user, "call")

    @staticmethod
    def _message_subject(message: JsonDict, contact: LogContact, links: JsonDict, when: str) -> str:
        """App Connect's subjects: `SMS conversation with <name> - YY/MM/DD`, voicemail
        and fax variants."""
        who = contact.name or contact.phone_number
        inbound = message.get("direction") == "Inbound"
        if links.get("recordingLink"):
            subject = f"Voicemail left by {who}"
        elif links.get("faxDocLink"):
            subject = f"Fax {'received from' if inbound else 'sent to'} {who}"
        else:
            subject = f"SMS conversation with {who}"
        return f"{subject} - {when}" if when else subject

    @staticmethod
    def _message_item(
        message: JsonDict, contact: LogContact, data: MessageLogInput, timezone_offset: str
    ) -> str:
        """One message as an HTML list item: time, sender, text, media links, key line.
        Download links (they carry a RingCentral access token) are never written."""
        moment = rc_time_parse(message.get("creationTime"))
        stamp = ""
        if moment is not None:
            local, zone = _local(moment, timezone_offset)
            stamp = local.strftime("%Y-%m-%d %H:%M") + zone
        sender = message.get("from") or {}
        if message.get("direction") == "Inbound":
            who = contact.name or sender.get("phoneNumber") or contact.phone_number
        else:
            who = sender.get("name") or data.owner_name or sender.get("phoneNumber") or ""
        text = str(message.get("subject") or "")
        parts = [html.escape(f"{stamp} {who}:".strip(), quote=False), html.escape(text, quote=False)]
        for label, name in (
            ("Recording", "recordingLink"),
            ("Fax", "faxDocLink"),
            ("Image", "imageLink"),
            ("Video", "videoLink"),
        ):
            if data.links.get(name):
                parts.append(f"{label}: {html.escape(str(data.links[name]), quote=False)}")
        if data.log_key:
            parts.append(html.escape(key_line(data.log_key), quote=False))
        return "<li>" + " ".join(part for part in parts if part) + "</li>"

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        """`POST /api/v2/activities` of the company's SMS type (else its call type), done,
        with the person as primary participant: a conversation note listing the message
        (shared SMS: the composed conversation), with the log key's line."""
        person_id = self._person_id(contact.id)
        if person_id is None:
            raise CrmRejected(f"{contact.id!r} is not a Pipedrive person id")
        type_key = self._message_type(user)
        if type_key is None:
            self._types_forget(user)
            return LogResult(
                log_id=None,
                return_message=_message(
                    "Message logging requires an active Pipedrive activity type whose name "
                    'contains "sms" or "call".',
                    "error",
                    3000,
                ),
            )
        message = data.message
        moment = rc_time_parse(message.get("creationTime"))
        if data.shared_content is not None:
            subject = str(data.shared_content.get("subject") or "")
            note = self._note(str(data.shared_content.get("body") or ""), data.log_key)
        else:
            when = _local(moment, user.timezone_offset)[0].strftime("%y/%m/%d") if moment else ""
            subject = self._message_subject(message, contact, data.links, when)
            item = self._message_item(message, contact, data, user.timezone_offset)
            note = f"<p><b>{html.escape(subject, quote=False)}</b></p><ul>{item}</ul>"
        body: JsonDict = {
            "subject": subject[:255],
            "type": type_key,
            "owner_id": self._owner_id(user),
            "done": True,
            "participants": [{"person_id": person_id, "primary": True}],
            "note": note,
        }
        self._when(body, moment)
        created = self._activity_create(user, body)
        return LogResult(log_id=str(created["id"]), return_message=_message("Message logged", ttl=1000))

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        """`GET /api/v2/activities/{id}`, then `PATCH` its note with the message added to
        the conversation's list (shared SMS: the recomposed conversation, keeping the
        earlier messages' key lines). A message already in the list is not added twice."""
        activity_id = self._activity_id(crm_log_id)
        data_now = self._call("GET", user, f"/api/v2/activities/{activity_id}")
        current = str(data_now.get("note") or "") if isinstance(data_now, dict) else ""
        if data.shared_content is None and note_holds_key(current, data.log_key):
            return UpdateLogResult(return_message=_message("Message log updated", ttl=1000))
        if data.shared_content is not None:
            new_key = key_line(data.log_key) if data.log_key else ""
            keys = [k for k in dict.fromkeys(_KEY_PATTERN.findall(html_to_plain(current))) if k != new_key]
            body = str(data.shared_content.get("body") or "").rstrip("\n")
            lines = "\n".join([body, *keys]) if body else "\n".join(keys)
            note = self._note(lines, data.log_key)
        else:
            item = self._message_item(data.message, contact, data, user.timezone_offset)
            at = current.lower().rfind("</ul>")
            note = current[:at] + item + current[at:] if at >= 0 else f"{current}<ul>{item}</ul>"
        self._call("PATCH", user, f"/api/v2/activities/{activity_id}", json={"note": note})
        return UpdateLogResult(return_message=_message("Message log updated", ttl=1000))

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        return self._find_activity(user=user, log_key=log_key, contact_id=contact_id)

    # moving activities

    def relink_activity(
        self, *, user: CrmUser, crm_log_id: str, kind: str, contact: LogContact
    ) -> RelinkResult:
        """`PATCH /api/v2/activities/{id}` with the person as the activity's primary (and
        only) participant, which sets its `person_id`: calls and messages are activities
        alike. The earlier person keeps everything else; nothing is deleted."""
        person_id = self._person_id(contact.id)
        if person_id is None:
            raise CrmRejected(f"{contact.id!r} is not a Pipedrive person id")
        activity_id = self._activity_id(crm_log_id)
        data = self._call(
            "PATCH",
            user,
            f"/api/v2/activities/{activity_id}",
            json={"participants": [{"person_id": person_id, "primary": True}]},
        )
        moved = data if isinstance(data, dict) else {}
        if moved.get("person_id") not in (None, person_id):
            raise CrmRejected(f"{self.platform} kept activity {activity_id} on person {moved['person_id']}")
        return RelinkResult(
            crm_log_id=str(activity_id), contact_id=str(person_id), return_message=_message("Activity moved.")
        )
