"""A fake of HubSpot's public API on 127.0.0.1: OAuth v3, account details, owners, contacts,
calls, communications, associations and CRM search, answering as developers.hubspot.com
documents them (each route names its page).

One account (`HUB_ID`) with one user (`HUB_USER_ID`, owner `OWNER_ID`). OAuth access
tokens this fake issued are accepted as Bearer tokens, and so is the account's private app
token (`PRIVATE_APP_TOKEN`). Like HubSpot, its search sees a record only `search_lag`
seconds after it was created (HubSpot's index lags by some seconds); reading records and
their associations sees them at once.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import phonenumbers

from tests.crm_fakes.server import FakeApi, JsonDict, OAuthEndpoint, Reply, Seen

API_HOST = "api.hubapi.com"
REDIRECT_URI = "https://ringcentral.github.io/ringcentral-embeddable/redirect.html"
HUB_ID = 4242001
HUB_USER_ID = 7001
OWNER_ID = "9001"
USER_EMAIL = "olive@example.com"
PRIVATE_APP_TOKEN = "pat-na1-fake-private-app-token"
CALL_TO_CONTACT = 194
COMMUNICATION_TO_CONTACT = 81
CONTACT_TO_CALL = 193
CONTACT_TO_COMMUNICATION = 82


def _now_iso() -> str:
    moment = datetime.now(tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _error(status: int, message: str, category: str) -> Reply:
    # The error body of HubSpot's v3 APIs ("Error handling" in the API usage guide).
    return Reply(
        status,
        {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category},
    )


def _e164(text: str) -> str:
    try:
        parsed = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        return text
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class HubspotFake:
    """HubSpot's API in memory, for the HubSpot client and the end-to-end suite."""

    platform = "hubspot"
    oauth_app_key = "hubspot"
    client_id = "hubspot-fake-client-id"
    client_secret = "hubspot-fake-client-secret"
    hosts: tuple[str, ...] = (API_HOST,)
    user_id = f"{HUB_USER_ID}-hubspot"
    search_lag: float = 0.0

    def __init__(self) -> None:
        self.api = FakeApi()
        # POST /oauth/v3/token: every parameter in the form body ("OAuth token endpoint").
        self.oauth = OAuthEndpoint(
            self.api,
            token_path="/oauth/v3/token",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=REDIRECT_URI,
            client_auth="body",
            expires_in=1800,
        )
        self.oauth.codes["good-code"] = str(HUB_USER_ID)
        self.lock = threading.Lock()
        self._ids = itertools.count(51001)
        # object type -> id -> {"id", "properties", "createdAt", "updatedAt", "indexed_at", "contacts"}
        self.objects: dict[str, dict[str, JsonDict]] = {"contacts": {}, "calls": {}, "communications": {}}
        self.routes: dict[str, tuple[str, str]] = {
            "find_contact": ("POST", r"/crm/v3/objects/contacts/search"),
            "create_contact": ("POST", r"/crm/v3/objects/contacts"),
            "create_call_log": ("POST", r"/crm/v3/objects/calls"),
            "update_call_log": ("PATCH", r"/crm/v3/objects/calls/\d+"),
            "create_message_log": ("POST", r"/crm/v3/objects/communications"),
            "user_info": ("POST", r"/oauth/v3/token/introspect"),
        }
        route = self.api.route
        route("POST", r"/oauth/v3/token/introspect")(self._introspect)
        route("POST", r"/oauth/2026-03/token/revoke")(self._revoke)
        route("GET", r"/account-info/v3/details")(self._account_details)
        route("GET", r"/crm/v3/owners/(\d+)")(self._owner)
        route("POST", r"/crm/v3/objects/(contacts|calls|communications)/search")(self._search)
        route("POST", r"/crm/v3/objects/(contacts|calls|communications)/batch/read")(self._batch_read)
        route("POST", r"/crm/v3/objects/(contacts|calls|communications)")(self._create)
        route("GET", r"/crm/v3/objects/(contacts|calls|communications)/(\d+)")(self._read)
        route("PATCH", r"/crm/v3/objects/(contacts|calls|communications)/(\d+)")(self._update)
        route("GET", r"/crm/v4/objects/(?:contacts?|0-1)/(\d+)/associations/(calls?|communications?)")(
            self._associations
        )

    # the uniform interface of the CRM fakes

    def callback_query(self, *, code: str = "good-code") -> dict[str, str]:
        """What App Connect's client sends to GET /oauth-callback after HubSpot's consent
        screen sent the browser to the redirect page with `code` and `state`."""
        state = quote(f"platform={self.platform}", safe="")
        return {"callbackUri": f"{REDIRECT_URI}?code={code}&state={state}"}

    def add_contact(self, *, name: str, phone: str) -> str:
        """A contact as HubSpot stores one typed in its UI: the phone as given."""
        first, _, last = name.partition(" ")
        return self._store("contacts", {"firstname": first, "lastname": last or None, "phone": phone}, None)

    def contacts_with_phone(self, phone: str) -> list[JsonDict]:
        target = _e164(phone)
        with self.lock:
            records = list(self.objects["contacts"].values())
        return [
            {"id": record["id"], **record["properties"]}
            for record in records
            if target in {_e164(record["properties"].get(name) or "") for name in ("phone", "mobilephone")}
        ]

    def call_logs(self) -> list[JsonDict]:
        with self.lock:
            records = list(self.objects["calls"].values())
        return [
            {
                "id": record["id"],
                "contact_id": record["contacts"][0] if record["contacts"] else None,
                "subject": record["properties"].get("hs_call_title") or "",
                "body": record["properties"].get("hs_call_body") or "",
                "properties": dict(record["properties"]),
            }
            for record in records
        ]

    def message_logs(self) -> list[JsonDict]:
        with self.lock:
            records = list(self.objects["communications"].values())
        result = []
        for record in records:
            body = record["properties"].get("hs_communication_body") or ""
            first = re.split(r"(?i)<br\s*/?>", body, maxsplit=1)[0]
            result.append(
                {
                    "id": record["id"],
                    "contact_id": record["contacts"][0] if record["contacts"] else None,
                    "subject": re.sub(r"<[^>]*>", "", first),
                    "body": body,
                    "properties": dict(record["properties"]),
                }
            )
        return result

    # storage

    def _store(self, kind: str, properties: JsonDict, contacts: list[str] | None) -> str:
        now = _now_iso()
        with self.lock:
            record_id = str(next(self._ids))
            stored = {key: (None if value is None else str(value)) for key, value in properties.items()}
            stored.update({"hs_object_id": record_id, "createdate": now, "lastmodifieddate": now})
            if kind != "contacts":
                stored.update({"hs_createdate": now, "hs_lastmodifieddate": now})
            self.objects[kind][record_id] = {
                "id": record_id,
                "properties": stored,
                "createdAt": now,
                "updatedAt": now,
                "indexed_at": time.monotonic() + self.search_lag,
                "contacts": list(contacts or []),
            }
        return record_id

    @staticmethod
    def _public(record: JsonDict, wanted: list[str] | None) -> JsonDict:
        """A record as the API returns it: the requested properties (missing ones null, as
        HubSpot sends them) and the object's default ones."""
        properties = record["properties"]
        names = set(wanted or properties) | {"hs_object_id", "createdate", "lastmodifieddate"}
        return {
            "id": record["id"],
            "properties": {name: properties.get(name) for name in sorted(names)},
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": False,
        }

    def _authorized(self, request: Seen) -> bool:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return token == PRIVATE_APP_TOKEN or self.oauth.bearer_ok(request)

    @staticmethod
    def _unauthorized() -> Reply:
        return _error(
            401,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication.",
            "INVALID_AUTHENTICATION",
        )

    # OAuth

    def _client_ok(self, form: dict[str, str]) -> bool:
        return form.get("client_id") == self.client_id and form.get("client_secret") == self.client_secret

    def _introspect(self, request: Seen, match: re.Match[str]) -> Reply:
        # "Token introspection endpoint" POST /oauth/v3/token/introspect
        # (/docs/api-reference/legacy/authentication/oauth-tokens/token-introspect).
        form = request.form
        if not self._client_ok(form):
            return Reply(
                401, {"error": "invalid_client", "error_description": "client credentials are invalid"}
            )
        token = form.get("token", "")
        with self.api.lock:
            active = token in self.oauth.valid_access
        if not active:
            return Reply(200, {"active": False})
        return Reply(
            200,
            {
                "token_use": "access_token",
                "active": True,
                "token": token,
                "hub_id": HUB_ID,
                "user_id": HUB_USER_ID,
                "client_id": self.client_id,
                "app_id": 3100,
                "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"],
                "expires_in": 1800,
                "is_private_distribution": True,
                "token_type": "access",
                "user": USER_EMAIL,
                "hub_domain": "olive-example.com",
            },
        )

    def _revoke(self, request: Seen, match: re.Match[str]) -> Reply:
        # "Revoke an OAuth token" POST /oauth/2026-03/token/revoke: the refresh token is
        # deleted (/docs/api-reference/latest/authentication/oauth-tokens/revoke-token).
        form = request.form
        if not self._client_ok(form):
            return Reply(
                401, {"error": "invalid_client", "error_description": "client credentials are invalid"}
            )
        with self.api.lock:
            self.oauth.revocations.append(form)
            self.oauth.revoked.add(form.get("token", ""))
        return Reply(200, {})

    # account and owners

    def _account_details(self, request: Seen, match: re.Match[str]) -> Reply:
        # "Retrieve account details" GET /account-info/v3/details.
        if not self._authorized(request):
            return self._unauthorized()
        return Reply(
            200,
            {
                "portalId": HUB_ID,
                "accountType": "STANDARD",
                "timeZone": "US/Eastern",
                "companyCurrency": "USD",
                "additionalCurrencies": [],
                "utcOffset": "-05:00",
                "utcOffsetMilliseconds": -18000000,
                "uiDomain": "app.hubspot.com",
                "dataHostingLocation": "na1",
            },
        )

    def _owner(self, request: Seen, match: re.Match[str]) -> Reply:
        # "Retrieve an owner" GET /crm/v3/owners/{ownerId}?idProperty=id|userId.
        if not self._authorized(request):
            return self._unauthorized()
        by_user = request.query.get("idProperty") == "userId"
        if match.group(1) != (str(HUB_USER_ID) if by_user else OWNER_ID):
            return _error(404, "Owner not found", "OBJECT_NOT_FOUND")
        return Reply(
            200,
            {
                "id": OWNER_ID,
                "email": USER_EMAIL,
                "type": "PERSON",
                "firstName": "Olive",
                "lastName": "Owner",
                "userId": HUB_USER_ID,
                "userIdIncludingInactive": HUB_USER_ID,
                "createdAt": "2019-10-30T03:30:17.883Z",
                "updatedAt": "2019-12-07T16:50:06.678Z",
                "archived": False,
            },
        )

    # objects

    def _create(self, request: Seen, match: re.Match[str]) -> Reply:
        # Contacts: POST /crm/v3/objects/contacts (201). Calls: POST /crm/v3/objects/calls
        # ("Engagements | Calls": hs_timestamp required; associations). Communications:
        # POST /crm/v3/objects/communications ("Engagements | Communications").
        if not self._authorized(request):
            return self._unauthorized()
        kind = match.group(1)
        body = request.json or {}
        properties = dict(body.get("properties") or {})
        if kind != "contacts" and not properties.get("hs_timestamp"):
            return _error(400, "Property values were not valid: hs_timestamp is required", "VALIDATION_ERROR")
        if kind == "communications" and properties.get("hs_communication_logged_from") != "CRM":
            return _error(400, "hs_communication_logged_from must be CRM", "VALIDATION_ERROR")
        expected = {"calls": CALL_TO_CONTACT, "communications": COMMUNICATION_TO_CONTACT}.get(kind)
        contacts: list[str] = []
        for association in body.get("associations") or []:
            target = str((association.get("to") or {}).get("id") or "")
            types = association.get("types") or [{}]
            if expected is None or any(
                t.get("associationCategory") != "HUBSPOT_DEFINED" or t.get("associationTypeId") != expected
                for t in types
            ):
                return _error(400, "Invalid association type", "VALIDATION_ERROR")
            with self.lock:
                known = target in self.objects["contacts"]
            if not known:
                return _error(400, f"No contact with id {target} to associate", "VALIDATION_ERROR")
            contacts.append(target)
        record_id = self._store(kind, properties, contacts)
        with self.lock:
            record = self.objects[kind][record_id]
        return Reply(201, self._public(record, None))

    def _read(self, request: Seen, match: re.Match[str]) -> Reply:
        # GET /crm/v3/objects/{type}/{id}?properties=a,b
        if not self._authorized(request):
            return self._unauthorized()
        with self.lock:
            record = self.objects[match.group(1)].get(match.group(2))
        if record is None:
            return _error(404, "resource not found", "OBJECT_NOT_FOUND")
        wanted = [name for name in request.query.get("properties", "").split(",") if name]
        return Reply(200, self._public(record, wanted or None))

    def _update(self, request: Seen, match: re.Match[str]) -> Reply:
        # PATCH /crm/v3/objects/{type}/{id} {properties}: only the given properties change.
        if not self._authorized(request):
            return self._unauthorized()
        kind, record_id = match.group(1), match.group(2)
        properties = (request.json or {}).get("properties") or {}
        now = _now_iso()
        with self.lock:
            record = self.objects[kind].get(record_id)
            if record is None:
                return _error(404, "resource not found", "OBJECT_NOT_FOUND")
            record["properties"].update(
                {key: None if value is None else str(value) for key, value in properties.items()}
            )
            record["properties"]["hs_lastmodifieddate" if kind != "contacts" else "lastmodifieddate"] = now
            record["updatedAt"] = now
        return Reply(200, self._public(record, None))

    def _batch_read(self, request: Seen, match: re.Match[str]) -> Reply:
        # POST /crm/v3/objects/{type}/batch/read {properties, inputs: [{id}]}: 200 with every
        # record found, 207 with `errors` naming the ids that were not.
        if not self._authorized(request):
            return self._unauthorized()
        body = request.json or {}
        wanted = body.get("properties") or None
        ids = [str(item.get("id")) for item in body.get("inputs") or []]
        with self.lock:
            found = [self.objects[match.group(1)][i] for i in ids if i in self.objects[match.group(1)]]
        missing = [i for i in ids if i not in {record["id"] for record in found}]
        answer: JsonDict = {
            "status": "COMPLETE",
            "results": [self._public(record, wanted) for record in found],
            "startedAt": _now_iso(),
            "completedAt": _now_iso(),
        }
        if missing:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some records",
                    "context": {"ids": missing},
                }
            ]
            answer["numErrors"] = 1
        return Reply(207 if missing else 200, answer)

    def _associations(self, request: Seen, match: re.Match[str]) -> Reply:
        # Associations v4: GET /crm/v4/objects/contacts/{id}/associations/{toType}?limit&after
        # -> {results: [{toObjectId, associationTypes}], paging?: {next: {after}}}.
        if not self._authorized(request):
            return self._unauthorized()
        contact_id = match.group(1)
        kind = "calls" if match.group(2).startswith("call") else "communications"
        type_id = CONTACT_TO_CALL if kind == "calls" else CONTACT_TO_COMMUNICATION
        with self.lock:
            ids = sorted(
                (record["id"] for record in self.objects[kind].values() if contact_id in record["contacts"]),
                key=int,
            )
        limit = min(int(request.query.get("limit") or 500), 500)
        start = int(request.query.get("after") or 0)
        page = ids[start : start + limit]
        answer: JsonDict = {
            "results": [
                {
                    "toObjectId": int(record_id),
                    "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}],
                }
                for record_id in page
            ]
        }
        if start + limit < len(ids):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return Reply(200, answer)

    # search

    @staticmethod
    def _matches(properties: JsonDict, flt: JsonDict) -> bool:
        value = properties.get(flt.get("propertyName", ""))
        operator = flt.get("operator")
        if operator == "EQ":
            return value is not None and value == str(flt.get("value"))
        if operator == "IN":
            return value is not None and value in [str(v) for v in flt.get("values") or []]
        if operator == "CONTAINS_TOKEN":
            return value is not None and str(flt.get("value", "")).lower() in value.lower().split()
        if operator == "HAS_PROPERTY":
            return value not in (None, "")
        raise ValueError(f"operator {operator} is not faked")

    def _search(self, request: Seen, match: re.Match[str]) -> Reply:
        # "Search the CRM" POST /crm/v3/objects/{type}/search: filter groups OR'ed (at most
        # five), filters within a group AND'ed, or a `query` over default text properties;
        # {total, results, paging?}. A record shows only once the index caught up.
        if not self._authorized(request):
            return self._unauthorized()
        body = request.json or {}
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or sum(len(group.get("filters") or []) for group in groups) > 25:
            return _error(400, "Too many filter groups or filters", "VALIDATION_ERROR")
        query = str(body.get("query") or "").lower()
        now = time.monotonic()
        with self.lock:
            records = [r for r in self.objects[match.group(1)].values() if r["indexed_at"] <= now]
        try:
            hits = [
                record
                for record in records
                if (
                    not groups
                    or any(
                        all(self._matches(record["properties"], f) for f in g.get("filters") or [])
                        for g in groups
                    )
                )
                and (not query or any(query in str(v).lower() for v in record["properties"].values() if v))
            ]
        except ValueError as exc:
            return _error(400, str(exc), "VALIDATION_ERROR")
        hits.sort(key=lambda record: int(record["id"]))
        limit = min(int(body.get("limit") or 10), 200)
        start = int(body.get("after") or 0)
        page = hits[start : start + limit]
        answer: JsonDict = {
            "total": len(hits),
            "results": [self._public(record, body.get("properties") or None) for record in page],
        }
        if start + limit < len(hits):
            answer["paging"] = {"next": {"after": str(start + limit)}}
        return Reply(200, answer)


def fake_contact_properties(fake: HubspotFake, contact_id: str) -> dict[str, Any]:
    """The stored properties of one of the fake's contacts (tests' helper)."""
    with fake.lock:
        return dict(fake.objects["contacts"][contact_id]["properties"])
