"""The Clio Manage connector (platform `clio`): API v4 over OAuth 2.0, in four regions.

Calls, as App Connect's own Clio connector makes them (crm-connectors.md §1.4), with the
shapes of Clio's published API reference (its OpenAPI document,
https://docs.developers.clio.com/api-reference/) and these pages of
https://docs.developers.clio.com:

- api-docs/authorization: the authorization-code flow, `/oauth/authorize`,
  `/oauth/token` (client id and secret in the form), `/oauth/deauthorize`;
- handbook/getting-started/regions: `app.clio.com` (US), `eu.`, `ca.`, `au.app.clio.com`,
  each with its own developer applications;
- api-docs/fields: without `fields` only `id` and `etag` come back; nested fields in braces;
- api-docs/paging: at most 200 records a page, `meta.paging.next` is the next page's URL;
- api-docs/rate-limits: 50 requests a minute per access token at peak, `X-RateLimit-*`
  headers, `Retry-After` seconds on a 429 (handled by `HttpCrmClient.request`);
- api-docs/etags: `If-Match` on a PATCH answers 412 when the record changed meanwhile;
- api-reference Contacts (index `query`, create with `phone_numbers`), Communications
  (create, show, update, index with `contact_id`, `external_property_name` and
  `external_property_value`), Matters (index by `client_id` and `status`), Users
  (`who_am_i`). Errors are `{"error": {"type", "message"}}`.

A call or a message is a `PhoneCommunication` between the user and the contact, filed
under the matter picked in the log form. Our log key travels as an external property of
the communication (at most five per communication), which Clio's communication index can
filter on: that is how `find_call_log` / `find_message_log` find a write whose answer was
lost. Not done here: time entries (App Connect adds a `TimeEntry` activity per call) and
matters the contact is only related to (App Connect also reads `relationships.json`); both
cost requests of the 50-a-minute budget on every call.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    UpdateLogResult,
    UserInfoResult,
)

if TYPE_CHECKING:
    from connector.models import CrmUser
from connector.utils import overriding_formats_render, phone_number_national_digits, rc_time_parse

# Clio's regional hosts and the OAUTH_APPS key of each region's app (US first: the default).
DEFAULT_HOST = "app.clio.com"
REGION_APPS: dict[str, str] = {
    "app.clio.com": "clio",
    "eu.app.clio.com": "clio_eu",
    "ca.app.clio.com": "clio_ca",
    "au.app.clio.com": "clio_au",
}
REGION_NAMES: dict[str, str] = {
    "app.clio.com": "US",
    "eu.app.clio.com": "EU",
    "ca.app.clio.com": "CA",
    "au.app.clio.com": "AU",
}

CONTACT_TYPES = ("Person", "Company")
CONTACT_FIELDS = "id,name,type,created_at,updated_at"
MATTER_FIELDS = "id,display_number,description,status"
# The name of the external property holding our log key on a communication.
LOG_KEY_PROPERTY = "ringcentral_log_key"
# Clio keeps at most this many external properties on one communication.
EXTERNAL_PROPERTIES_MAX = 5
# Pages of one contact search followed (200 contacts a page): a number shared by more
# contacts than that is not worth the rate-limit budget.
SEARCH_PAGES_MAX = 2
# Contacts of one lookup whose matters are read (one request each).
MATTER_LOOKUPS_MAX = 5
# Reads and rewrites of a communication when another writer changed it in between (412).
APPEND_ATTEMPTS = 3

# A user's `time_zone` may be a Rails zone name rather than an IANA one [unverified]: the
# common ones of Clio's regions.
RAILS_ZONES: dict[str, str] = {
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Mountain Time (US & Canada)": "America/Denver",
    "Central Time (US & Canada)": "America/Chicago",
    "Eastern Time (US & Canada)": "America/New_York",
    "Atlantic Time (Canada)": "America/Halifax",
    "Newfoundland": "America/St_Johns",
    "Saskatchewan": "America/Regina",
    "Arizona": "America/Phoenix",
    "Alaska": "America/Juneau",
    "Hawaii": "Pacific/Honolulu",
    "London": "Europe/London",
    "Dublin": "Europe/Dublin",
    "Edinburgh": "Europe/London",
    "Sydney": "Australia/Sydney",
    "Melbourne": "Australia/Melbourne",
    "Brisbane": "Australia/Brisbane",
    "Adelaide": "Australia/Adelaide",
    "Perth": "Australia/Perth",
    "UTC": "Etc/UTC",
}

# The agent's note in a composed plain-text body (logs.composer writes `- Note: ...`).
NOTE_PATTERN = re.compile(r"- (?:Note|Agent notes): (.*?)(?=\n- [A-Z][A-Za-z /]*:|\n$|$)", re.DOTALL)


def clio_host(hostname: str) -> str:
    """The Clio host for a user's `hostname`: the region is read from its first label, as
    App Connect does (`eu.` -> `eu.app.clio.com`); anything else is the US host. The result
    is always one of Clio's own hosts, so no credential goes anywhere else."""
    text = (hostname or "").strip().lower()
    if "://" in text:
        text = urlsplit(text).hostname or ""
    text = text.split("/", 1)[0].split(":", 1)[0]
    for host in REGION_APPS:
        if host != DEFAULT_HOST and text.startswith(host.split(".", 1)[0] + "."):
            return host
    return DEFAULT_HOST


def phone_queries(phone_number: str, overriding_format: str) -> list[str]:
    """The texts a lookup searches for, in order: the E.164 number, then each overriding
    format with its `*`/`#` replaced in turn by the national significant digits (formats
    are rendered only for a valid number, as App Connect does). Duplicates dropped."""
    queries = [phone_number]
    try:
        valid = phonenumbers.is_valid_number(phonenumbers.parse(phone_number, None))
    except phonenumbers.NumberParseException:
        valid = False
    if valid:
        queries += overriding_formats_render(
            overriding_format, digits=phone_number_national_digits(phone_number)
        )
    return list(dict.fromkeys(queries))


def _success(message: str, ttl: int = 2000) -> JsonDict:
    return {"message": message, "messageType": "success", "ttl": ttl}


def _warning(message: str, ttl: int = 5000) -> JsonDict:
    return {"message": message, "messageType": "warning", "ttl": ttl}


def _record_id(value: Any, *, what: str) -> int:
    """A Clio record id (a positive integer) from our string form; CrmRejected otherwise
    (e.g. the "createNewContact" placeholder option)."""
    text = str(value if value is not None else "").strip()
    if not text.isdigit() or int(text) <= 0:
        raise CrmRejected(f"{what} {text!r} is not a Clio id")
    return int(text)


def _user_id(user: CrmUser) -> int:
    """The Clio user id inside our user id `<clio id>-clio`."""
    return _record_id(user.id.rsplit("-", 1)[0], what="User")


def _communication_id(crm_log_id: str) -> int:
    # App Connect's log ids may carry a time entry after a dot (`<communication>.<activity>`).
    return _record_id(str(crm_log_id).split(".", 1)[0], what="Communication")


def _iso(value: Any) -> str | None:
    """A RingCentral time (ISO text, or epoch milliseconds) as ISO 8601 UTC, else None."""
    moment = rc_time_parse(value)
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _utc_offset(value: str) -> timedelta | None:
    """A user's `timezoneOffset`: "+05:30" style, else hours (under 16) or minutes."""
    text = (value or "").strip()
    if not text:
        return None
    match = re.fullmatch(r"([+-])?(\d{1,2}):(\d{2})", text)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    try:
        number = float(text)
    except ValueError:
        return None
    offset = timedelta(hours=number) if abs(number) < 16 else timedelta(minutes=number)
    return offset if abs(offset) < timedelta(hours=24) else None


def _local(value: Any, timezone_offset: str) -> datetime | None:
    moment = rc_time_parse(value)
    offset = _utc_offset(timezone_offset)
    if moment is None or offset is None:
        return moment
    return moment.astimezone(timezone(offset))


def zone_offset(name: str) -> str:
    """The current UTC offset (`+HH:MM`) of a Clio `time_zone`, or "" when unknown."""
    key = RAILS_ZONES.get(name, name)
    try:
        offset = datetime.now(ZoneInfo(key)).utcoffset() if key else None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ""
    if offset is None:
        return ""
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _matter(additional_submission: JsonDict) -> JsonDict | None:
    """The matter picked in the log form (`matters`, App Connect's field), as Clio wants it."""
    value = (additional_submission or {}).get("matters")
    text = str(value).strip() if value is not None and not isinstance(value, bool) else ""
    return {"id": int(text)} if text.isdigit() and int(text) > 0 else None


def _parties(*, user_id: int, contact_id: int, inbound: bool) -> tuple[list[JsonDict], list[JsonDict]]:
    """(senders, receivers) of a phone communication: the contact calls or texts the user
    when inbound, the reverse otherwise."""
    user = {"id": user_id, "type": "User"}
    contact = {"id": contact_id, "type": "Contact"}
    return ([contact], [user]) if inbound else ([user], [contact])


def _key_properties(properties: Any) -> list[JsonDict]:
    """Our log-key properties among a communication's external properties."""
    return [
        item
        for item in (properties if isinstance(properties, list) else [])
        if isinstance(item, dict) and item.get("name") == LOG_KEY_PROPERTY
    ]


class ClioCrmClient(OAuthCrmClient):
    """Clio Manage. Users connect with OAuth in their region (`hostname`); each region has
    its own OAuth app (OAUTH_APPS `clio`, `clio_eu`, `clio_ca`, `clio_au`). Access tokens
    last 30 days; refresh tokens do not rotate (the base keeps the old one). Shared by
    all threads: it keeps nothing of a user."""

    # --- manifest and OAuth -----------------------------------------------------------

    def manifest(self) -> JsonDict:
        """App Connect's `platforms.clio`: the US app's OAuth block, with an `override`
        per other region (its authorize URL, and its client id when one is configured)."""
        default = self.oauth_info(hostname=DEFAULT_HOST)
        overrides: list[JsonDict] = []
        for host in REGION_APPS:
            if host == DEFAULT_HOST:
                continue
            info = self.oauth_info(hostname=host)
            changes: list[JsonDict] = [{"path": "auth.oauth.authUrl", "value": info.auth_url}]
            if info.client_id:
                changes.append({"path": "auth.oauth.clientId", "value": info.client_id})
            if info.redirect_uri != default.redirect_uri:
                changes.append({"path": "auth.oauth.redirectUri", "value": info.redirect_uri})
            overrides.append({"triggerType": "hostname", "triggerValue": host, "overrideObjects": changes})
        matter_field = {"const": "matters", "title": "Matter", "type": "selection", "contactDependent": True}
        return {
            "name": self.platform,
            "displayName": "Clio",
            "auth": {"type": "oauth", "oauth": self.manifest_oauth(hostname=DEFAULT_HOST)},
            "environment": {
                "type": "selectable",
                "selections": [
                    {"const": f"https://{host}", "name": REGION_NAMES[host]} for host in REGION_APPS
                ],
            },
            "urlIdentifier": "*app.clio.com",
            "contactTypes": [{"display": value, "value": value} for value in CONTACT_TYPES],
            "contactPageUrl": "https://{hostname}/nc/#/contacts/{contactId}",
            "logPageUrl": "https://{hostname}/nc/#/contacts/{contactId}/communications",
            "canOpenLogPage": True,
            "page": {
                "callLog": {"additionalFields": [dict(matter_field)]},
                "messageLog": {"additionalFields": [dict(matter_field)]},
                "useContactSearch": True,
            },
            "override": overrides,
        }

    def oauth_info(self, *, hostname: str = "", token_url: str = "") -> OAuthInfo:
        """The OAuth app of the user's region, with that region's endpoints. A `token_url`
        from the callback query is ignored: the code and secret go to the region's token
        endpoint (or the environment's `<KEY>_ACCESS_TOKEN_URI`), never where a client says."""
        host = clio_host(hostname)
        return self.oauth_app(
            REGION_APPS[host],
            token_url=f"https://{host}/oauth/token",
            auth_url=f"https://{host}/oauth/authorize",
            scope="",  # Clio grants what the app registration asks for; no scope parameter
            revoke_url=f"https://{host}/oauth/deauthorize",
            token_auth_method="client_secret_post",
        )

    def get_log_format_type(self) -> str:
        return "text/plain"

    # --- HTTP helpers ---------------------------------------------------------------------

    def _call(
        self,
        user: CrmUser,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: JsonDict | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One API v4 request for `user` (`path` below `/api/v4/`), on the user's host."""
        url = path if path.startswith("https://") else f"https://{clio_host(user.hostname)}/api/v4/{path}"
        return self.request(
            method, url, params=params, json=json, headers={**self.auth_headers(user), **(headers or {})}
        )

    def _json(self, response: requests.Response, *, write: bool) -> JsonDict:
        """A 2xx answer's JSON object. One that cannot be read came from something between us
        and Clio; after a write, Clio may have done it all the same."""
        try:
            payload = response.json() if response.content else {}
        except ValueError as exc:
            raise CrmUnavailable(f"{self.platform} sent an unreadable answer", uncertain=write) from exc
        if not isinstance(payload, dict):
            raise CrmUnavailable(f"{self.platform} sent an unexpected answer", uncertain=write)
        return payload

    def _data(self, response: requests.Response, *, write: bool) -> JsonDict:
        """The `data` record of a single-record answer (it must carry the record's id)."""
        data = self._json(response, write=write).get("data")
        if not isinstance(data, dict) or data.get("id") in (None, ""):
            raise CrmUnavailable(f"{self.platform} answered without the record", uncertain=write)
        return data

    def _index(self, user: CrmUser, path: str, params: dict[str, Any], *, pages: int) -> list[JsonDict]:
        """The records of an index request, following `meta.paging.next` for at most `pages`
        pages. The next page is always asked of the user's own host (only its path and query
        are taken from Clio's URL)."""
        records: list[JsonDict] = []
        url, query = path, dict(params)
        for _ in range(pages):
            payload = self._json(self._call(user, "GET", url, params=query or None), write=False)
            records.extend(item for item in payload.get("data") or [] if isinstance(item, dict))
            next_url = ((payload.get("meta") or {}).get("paging") or {}).get("next")
            parts = urlsplit(next_url) if isinstance(next_url, str) and next_url else None
            if parts is None or not parts.path.startswith("/api/v4/"):
                break
            url = f"https://{clio_host(user.hostname)}{parts.path}"
            url += f"?{parts.query}" if parts.query else ""
            query = {}
        return records

    # --- auth -------------------------------------------------------------------------------

    def oauth_user_info(
        self, *, tokens: OAuthTokens, info: OAuthInfo, hostname: str, query: JsonDict
    ) -> UserInfoResult:
        """`GET /api/v4/users/who_am_i.json?fields=id,name,time_zone` with the new access
        token. The user is `<Clio user id>-clio`; the region's host becomes the user's
        hostname (`overriding_hostname`)."""
        host = clio_host(hostname)
        response = self.request(
            "GET",
            f"https://{host}/api/v4/users/who_am_i.json",
            params={"fields": "id,name,time_zone"},
            headers={"Authorization": f"Bearer {tokens.access_token}"},
        )
        data = self._json(response, write=False).get("data")
        if not isinstance(data, dict) or not str(data.get("id") or "").isdigit():
            return UserInfoResult(
                successful=False,
                return_message=_warning("Could not load your Clio user information.", 3000),
            )
        zone = str(data.get("time_zone") or "")
        return UserInfoResult(
            successful=True,
            user_id=f"{data['id']}-{self.platform}",
            name=str(data.get("name") or ""),
            timezone_name=zone,
            timezone_offset=zone_offset(zone),
            overriding_hostname=host,
            return_message=_success("Connected to Clio.", 1000),
        )

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        """Clio has no API tokens: users connect with OAuth only. Sends nothing."""
        return UserInfoResult(
            successful=False,
            return_message=_warning(
                "Clio does not accept API keys. Please connect your Clio account with the Connect button."
            ),
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        """`POST https://<host>/oauth/deauthorize` with form `token=<access token>` and the
        token as Bearer: Clio revokes the app's grant (refresh token included). The service
        forgets the stored tokens afterwards, whatever happens here."""
        token = user.access_token or ""
        if token:
            self.request(
                "POST",
                f"https://{clio_host(user.hostname)}/oauth/deauthorize",
                data={"token": token},
                headers=self.auth_headers(user),
            )
        return _success("Logged out of Clio", 1000)

    def auth_validation(self, *, user: CrmUser) -> tuple[bool, JsonDict | None]:
        """`GET /api/v4/users/who_am_i.json?fields=id`: False when Clio refuses the token."""
        try:
            self._call(user, "GET", "users/who_am_i.json", params={"fields": "id"})
        except CrmAuthError:
            return False, _warning("Your Clio connection is no longer valid. Please connect again.")
        return True, _success("Authentication is valid.", 1000)

    # --- contacts ---------------------------------------------------------------------------

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        """`GET /api/v4/contacts.json?query=<n>&fields=...` for the E.164 number, then for each
        rendered overriding format (Clio's `query` is a text search; numbers are stored as
        people typed them); matches de-duplicated, the first MATTER_LOOKUPS_MAX with their
        open matters. Extensions
        are not looked up (App Connect's answer: unsuccessful, no contacts)."""
        if is_extension:
            return FindContactResult(successful=False, contacts=[])
        found: dict[str, JsonDict] = {}
        for text in phone_queries(phone_number, overriding_format):
            for record in self._index(
                user, "contacts.json", {"query": text, "fields": CONTACT_FIELDS}, pages=SEARCH_PAGES_MAX
            ):
                contact_id = str(record.get("id") or "")
                if contact_id and contact_id not in found:
                    matters = self._matters(user, contact_id) if len(found) < MATTER_LOOKUPS_MAX else []
                    found[contact_id] = self._contact(record, phone=phone_number, matters=matters)
        return FindContactResult(successful=True, contacts=[*found.values(), dict(NEW_CONTACT_OPTION)])

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        """`GET /api/v4/contacts.json?query=<name>`: the first page of contacts matching."""
        if not name.strip():
            return FindContactResult(successful=True, contacts=[])
        records = self._index(
            user,
            "contacts.json",
            {"query": name.strip(), "fields": f"{CONTACT_FIELDS},primary_phone_number"},
            pages=1,
        )
        contacts = [
            self._contact(record, phone=str(record.get("primary_phone_number") or ""), matters=[])
            for record in records
            if record.get("id")
        ]
        return FindContactResult(successful=True, contacts=contacts)

    @staticmethod
    def _contact(record: JsonDict, *, phone: str, matters: list[JsonDict]) -> JsonDict:
        """A Clio contact record as App Connect's `ContactInfo`, its matters as the log
        form's `matters` options."""
        return {
            "id": str(record["id"]),
            "name": str(record.get("name") or ""),
            "type": str(record.get("type") or "Person"),
            "phone": phone,
            "createdDate": record.get("created_at"),
            "mostRecentActivityDate": record.get("updated_at"),
            "additionalInfo": {"matters": matters} if matters else None,
        }

    def _matters(self, user: CrmUser, contact_id: str) -> list[JsonDict]:
        """`GET /api/v4/matters.json?client_id=<id>&status=open,pending`: the contact's
        matters as log-form options (closed ones too when the user's `clioSeeClosedMatters`
        setting is on)."""
        params: dict[str, Any] = {"client_id": contact_id, "fields": MATTER_FIELDS}
        setting = (user.user_settings or {}).get("clioSeeClosedMatters")
        if not (isinstance(setting, dict) and setting.get("value") in (True, "true")):
            params["status"] = "open,pending"
        return [
            {
                "const": matter["id"],
                "title": str(matter.get("display_number") or matter["id"]),
                "description": " - ".join(
                    str(part) for part in (matter.get("status"), matter.get("description")) if part
                ),
            }
            for matter in self._index(user, "matters.json", params, pages=1)
            if matter.get("id")
        ]

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        """`POST /api/v4/contacts.json` with the name, the type (`Person` unless `Company`)
        and one default "Work" phone number. A Person also gets first and last names (Clio
        refuses a Person whose name it cannot split)."""
        kind = contact_type or "Person"
        if kind not in CONTACT_TYPES:
            raise CrmRejected(f"Unknown Clio contact type {contact_type!r}")
        full_name = " ".join(name.split()) or phone_number
        record: JsonDict = {
            "name": full_name,
            "type": kind,
            "phone_numbers": [{"name": "Work", "number": phone_number, "default_number": True}],
        }
        if kind == "Person":
            first, _, last = full_name.rpartition(" ")
            record["last_name"] = last
            if first:
                record["first_name"] = first
        response = self._call(
            user, "POST", "contacts.json", params={"fields": "id,name,type"}, json={"data": record}
        )
        data = self._data(response, write=True)
        return CreateContactResult(
            contact={"id": str(data["id"]), "name": str(data.get("name") or full_name), "type": kind},
            return_message=_success("Contact created."),
        )

    # --- call logs ---------------------------------------------------------------------------

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        """`POST /api/v4/communications.json`: a `PhoneCommunication` from the contact to the
        user (inbound) or back, with the composed body, the call's start as `received_at`,
        the matter picked in the form, and our log key as an external property."""
        call = data.call_log
        direction = str(call.get("direction") or "")
        inbound = direction == "Inbound"
        subject = str(call.get("customSubject") or "") or (
            f"[Call] {direction} Call {'from' if inbound else 'to'} {contact.name} [{contact.phone_number}]"
            if direction
            else f"[Call] Call with {contact.name} [{contact.phone_number}]"
        )
        log_id = self._communication_create(
            user=user,
            contact=contact,
            inbound=inbound,
            subject=subject,
            body=data.composed_log_details or data.note,
            received_at=call.get("startTime"),
            additional_submission=data.additional_submission,
            log_key=data.log_key,
        )
        return LogResult(log_id=log_id, return_message=_success("Call logged"))

    def _communication_create(
        self,
        *,
        user: CrmUser,
        contact: LogContact,
        inbound: bool,
        subject: str,
        body: str,
        received_at: Any,
        additional_submission: JsonDict,
        log_key: str,
    ) -> str:
        """POST a `PhoneCommunication` between the user and the contact (from the contact
        when `inbound`), on the matter picked in the form, with our log key as an external
        property; its Clio id."""
        senders, receivers = _parties(
            user_id=_user_id(user), contact_id=_record_id(contact.id, what="Contact"), inbound=inbound
        )
        record: JsonDict = {
            "type": "PhoneCommunication",
            "subject": subject[:255],
            "body": body or "No details available",
            "senders": senders,
            "receivers": receivers,
        }
        when = _iso(received_at)
        if when:
            record["received_at"] = when
        matter = _matter(additional_submission)
        if matter:
            record["matter"] = matter
        if log_key:
            record["external_properties"] = [{"name": LOG_KEY_PROPERTY, "value": log_key}]
        response = self._call(
            user, "POST", "communications.json", params={"fields": "id"}, json={"data": record}
        )
        return str(self._data(response, write=True)["id"])

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The communication carrying `log_key` (`GET /api/v4/communications.json` filtered
        by the external property and the contact), or None. Never writes."""
        return self._find_by_key(user=user, log_key=log_key, contact_id=contact_id)

    def _find_by_key(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        if not log_key:
            return None
        params: dict[str, Any] = {
            "external_property_name": LOG_KEY_PROPERTY,
            "external_property_value": log_key,
            "type": "PhoneCommunication",
            "fields": "id,external_properties{id,name,value}",
        }
        if str(contact_id).strip().isdigit():
            params["contact_id"] = str(contact_id).strip()
        for record in self._index(user, "communications.json", params, pages=SEARCH_PAGES_MAX):
            # The filter is Clio's; the exact key is checked here all the same.
            keys = _key_properties(record.get("external_properties"))
            if any(item.get("value") == log_key for item in keys):
                return str(record["id"])
        return None

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        """`PATCH /api/v4/communications/<id>.json` with what changed: the recomposed body,
        the subject, the start time. Nothing to change: no request."""
        record: JsonDict = {}
        if data.composed_log_details:
            record["body"] = data.composed_log_details
        if data.subject:
            record["subject"] = data.subject[:255]
        received_at = _iso(data.start_time)
        if received_at:
            record["received_at"] = received_at
        if record:
            self._call(
                user,
                "PATCH",
                f"communications/{_communication_id(data.crm_log_id)}.json",
                params={"fields": "id"},
                json={"data": record},
            )
        return UpdateLogResult(updated_note=record.get("body"), return_message=_success("Call log updated."))

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        """`GET /api/v4/communications/<id>.json`: subject, the agent's note (the `- Note:`
        line of the body), the body, and the contact's name from the participants."""
        response = self._call(
            user,
            "GET",
            f"communications/{_communication_id(crm_log_id)}.json",
            params={
                "fields": "id,subject,body,type,received_at,"
                "senders{id,type,name},receivers{id,type,name},matter{id,display_number}"
            },
        )
        record = self._data(response, write=False)
        body = str(record.get("body") or "")
        note = NOTE_PATTERN.search(body)
        contact_name = next(
            (
                str(party.get("name") or "")
                for party in [*(record.get("senders") or []), *(record.get("receivers") or [])]
                if isinstance(party, dict) and party.get("type") in CONTACT_TYPES
            ),
            "",
        )
        return CallLogDetails(
            info={
                "subject": str(record.get("subject") or ""),
                "note": note.group(1).strip() if note else "",
                "fullBody": body,
                "fullLogResponse": record,
                "contactName": contact_name,
            }
        )

    # --- message logs ------------------------------------------------------------------------

    def _message_line(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> str:
        """One message as a line of the conversation's body (with its media links: never
        the download links, which carry a RingCentral access token)."""
        message = data.message
        inbound = message.get("direction") == "Inbound"
        moment = _local(message.get("creationTime"), user.timezone_offset)
        when = moment.strftime("%Y-%m-%d %I:%M %p") if moment else ""
        who = f"{contact.name} ({contact.phone_number})" if inbound else (user.name or "Me")
        text = str(message.get("subject") or "")
        line = f"- {when} {who}: {text}".replace("-  ", "- ", 1).rstrip()
        for label, key in (
            ("Recording", "recordingLink"),
            ("Fax", "faxDocLink"),
            ("Image", "imageLink"),
            ("Video", "videoLink"),
        ):
            if data.links.get(key):
                line += f"\n  {label}: {data.links[key]}"
        return line

    def _message_subject(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> str:
        message = data.message
        moment = _local(message.get("creationTime"), user.timezone_offset)
        day = moment.strftime("%Y-%m-%d") if moment else ""
        name = contact.name or contact.phone_number
        kind = str(message.get("type") or "SMS")
        inbound = message.get("direction") == "Inbound"
        if kind == "VoiceMail":
            subject = f"Voicemail from {name}"
        elif kind == "Fax":
            subject = f"Fax {'from' if inbound else 'to'} {name}"
        else:
            subject = f"{kind} conversation with {name}"
        return f"{subject} - {day}" if day else subject

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        """`POST /api/v4/communications.json`: a `PhoneCommunication` for the conversation
        (Clio's other type is for e-mail), starting with `data.message` (or the whole
        shared-SMS conversation), the matter picked in the form, the message's key as an
        external property."""
        message = data.message
        inbound = message.get("direction", "Inbound") == "Inbound"
        if data.shared_content is not None:
            subject = str(data.shared_content.get("subject") or "")
            body = str(data.shared_content.get("body") or "")
        else:
            subject = self._message_subject(user=user, contact=contact, data=data)
            body = (
                f"Conversation with {contact.name or contact.phone_number} ({contact.phone_number})\n"
                + self._message_line(user=user, contact=contact, data=data)
            )
        log_id = self._communication_create(
            user=user,
            contact=contact,
            inbound=inbound,
            subject=subject or f"Messages with {contact.name or contact.phone_number}",
            body=body,
            received_at=message.get("creationTime"),
            additional_submission=data.additional_submission,
            log_key=data.log_key,
        )
        return LogResult(log_id=log_id, return_message=_success("Message logged", 1000))

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        """Add `data.message` to the conversation's communication: `GET` it, then `PATCH`
        its body with the new line and the message's key added to its external properties,
        with `If-Match` (its ETag), so a writer that changed it in between is not
        overwritten: on 412 it is read again (APPEND_ATTEMPTS in all). Clio keeps five
        external properties: beyond that our oldest key gives way. A message whose key the
        communication already holds was added before: nothing is sent. Shared SMS: the
        body and subject are replaced with the whole conversation."""
        path = f"communications/{_communication_id(crm_log_id)}.json"
        if data.shared_content is not None:
            record: JsonDict = {"body": str(data.shared_content.get("body") or "No details available")}
            if data.shared_content.get("subject"):
                record["subject"] = str(data.shared_content["subject"])[:255]
            self._call(user, "PATCH", path, params={"fields": "id"}, json={"data": record})
            return UpdateLogResult(return_message=_success("Message log updated", 1000))
        line = self._message_line(user=user, contact=contact, data=data)
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            response = self._call(
                user, "GET", path, params={"fields": "id,etag,body,external_properties{id,name,value}"}
            )
            current = self._data(response, write=False)
            properties = current.get("external_properties")
            ours = _key_properties(properties)
            if data.log_key and any(item.get("value") == data.log_key for item in ours):
                return UpdateLogResult(return_message=_success("Message log updated", 1000))
            body = str(current.get("body") or "").rstrip("\n")
            record = {"body": f"{body}\n{line}" if body else line}
            if data.log_key:
                changes: list[JsonDict] = []
                count = len(properties) if isinstance(properties, list) else 0
                if count >= EXTERNAL_PROPERTIES_MAX and ours:
                    oldest = min(ours, key=lambda item: int(item.get("id") or 0))
                    changes.append({"id": oldest.get("id"), "_destroy": True})
                    count -= 1
                if count < EXTERNAL_PROPERTIES_MAX:
                    changes.append({"name": LOG_KEY_PROPERTY, "value": data.log_key})
                    record["external_properties"] = changes
            etag = response.headers.get("ETag") or str(current.get("etag") or "")
            try:
                self._call(
                    user,
                    "PATCH",
                    path,
                    params={"fields": "id"},
                    json={"data": record},
                    headers={"IF-MATCH": etag} if etag else None,
                )
            except CrmRejected as exc:
                if exc.status_code != 412 or attempt == APPEND_ATTEMPTS:
                    raise
                continue
            break
        return UpdateLogResult(return_message=_success("Message log updated", 1000))

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        """The communication holding the message logged with `log_key` (its key among the
        communication's external properties), or None. A communication keeps only its last
        five keys, so a message followed by five more before the check is not found."""
        return self._find_by_key(user=user, log_key=log_key, contact_id=contact_id)
