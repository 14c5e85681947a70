"""A fake of Pipedrive's API on 127.0.0.1: OAuth, the current user, persons, activity
types and activities, kept in memory and answered in the shapes Pipedrive documents.

Pages followed (each route names its own): developers.pipedrive.com/docs/api/v1/Oauth,
/v1/Users, /v1/ActivityTypes, /v2/Persons, /v2/Activities; pipedrive.readme.io
core-api-concepts-authentication (API token in `x-api-token`), core-api-concepts-responses
(`{success, data, additional_data}`) and core-api-concepts-rate-limiting (`x-ratelimit-*`
on every answer). Field lists follow Pipedrive's OpenAPI models as the official
pipedrive/client-nodejs generates them (src/versions/v1 and v2/models).

Every host the client may call (`hosts`) is served by this one fake: map them all to it
with OUTBOUND_HOST_MAP. The company host is `fakeco.pipedrive.com`, the `api_domain` of
the token response.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from connector.crm.base import EMBEDDABLE_REDIRECT_URI
from tests.crm_fakes.server import FakeApi, JsonDict, OAuthEndpoint, Reply, Seen

COMPANY_DOMAIN = "fakeco"
COMPANY_HOST = f"{COMPANY_DOMAIN}.pipedrive.com"
FAKE_USER_ID = 4242

# Pipedrive's default activity types plus a custom SMS type (a company without one logs
# messages with its call type; tests drop it with `activity_types` to see that).
DEFAULT_ACTIVITY_TYPES: list[tuple[str, str, str]] = [
    ("Call", "call", "call"),
    ("Meeting", "meeting", "meeting"),
    ("Task", "task", "task"),
    ("Deadline", "deadline", "deadline"),
    ("Email", "email", "email"),
    ("Lunch", "lunch", "lunch"),
    ("SMS", "sms", "bubble"),
]


def _now() -> str:
    """v2 times: RFC 3339 in UTC (pipedrive.readme.io "Pipedrive API v2 overview")."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")


class PipedriveFake:
    """Pipedrive for one company (`fakeco`) and one user (4242, "Pat Pipedrive")."""

    platform = "pipedrive"
    oauth_app_key = "pipedrive"
    client_id = "fake-pipedrive-client-id"
    client_secret = "fake-pipedrive-client-secret"
    hosts: tuple[str, ...] = ("api.pipedrive.com", "oauth.pipedrive.com", COMPANY_HOST)
    user_id = f"{FAKE_USER_ID}-pipedrive"
    api_token = "fake-pipedrive-api-token"
    search_lag: float = 0.0
    routes: dict[str, tuple[str, str]] = {
        "find_contact": ("GET", r"/api/v2/persons/search"),
        "create_contact": ("POST", r"/api/v2/persons"),
        # calls and messages are both activities: one route for both creates
        "create_call_log": ("POST", r"/api/v2/activities"),
        "update_call_log": ("PATCH", r"/api/v2/activities/\d+"),
        "create_message_log": ("POST", r"/api/v2/activities"),
        "user_info": ("GET", r"/v1/users/me"),
    }

    def __init__(self) -> None:
        self.api = FakeApi()
        # developers.pipedrive.com/docs/api/v1/Oauth: Basic client auth on /oauth/token and
        # /oauth/revoke; the token answer carries the company's `api_domain`.
        self.oauth = OAuthEndpoint(
            self.api,
            token_path="/oauth/token",
            revoke_path="/oauth/revoke",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=EMBEDDABLE_REDIRECT_URI,
            client_auth="basic",
            expires_in=3599,
            extra={"api_domain": f"https://{COMPANY_HOST}", "scope": "base,contacts:full,activities:full"},
        )
        self.oauth.codes["good-code"] = str(FAKE_USER_ID)
        self.persons: dict[int, JsonDict] = {}
        self.person_created: dict[int, float] = {}  # monotonic creation times (search_lag)
        self.activities: dict[int, JsonDict] = {}
        self.activity_types: list[JsonDict] = [
            {
                "id": n,
                "order_nr": n,
                "name": name,
                "key_string": key,
                "icon_key": icon,
                "active_flag": True,
                "color": None,
                "is_custom_flag": key == "sms",
                "add_time": "2024-01-01 00:00:00",
                "update_time": None,
            }
            for n, (name, key, icon) in enumerate(DEFAULT_ACTIVITY_TYPES, start=1)
        ]
        route = self.api.route
        route("GET", r"/v1/users/me")(self._users_me)
        route("GET", r"/v1/activityTypes")(self._activity_types)
        route("GET", r"/api/v2/persons/search")(self._persons_search)
        route("GET", r"/api/v2/persons")(self._persons_list)
        route("POST", r"/api/v2/persons")(self._person_add)
        route("GET", r"/api/v2/activities")(self._activities_list)
        route("POST", r"/api/v2/activities")(self._activity_add)
        route("GET", r"/api/v2/activities/(\d+)")(self._activity_get)
        route("PATCH", r"/api/v2/activities/(\d+)")(self._activity_update)

    # the uniform interface the end-to-end suites use

    def callback_query(self, *, code: str = "good-code") -> dict[str, str]:
        """What App Connect's client sends to GET /oauth-callback after Pipedrive's consent
        page: Pipedrive needs no hostname (its token answer names the company host)."""
        state = quote(f"platform={self.platform}", safe="")
        return {"callbackUri": f"{EMBEDDABLE_REDIRECT_URI}?code={code}&state={state}"}

    def add_contact(self, *, name: str, phone: str) -> str:
        """A person with one phone, stored as given (as Pipedrive keeps what it was sent)."""
        return str(
            self._person_store(name=name, phones=[{"value": phone, "primary": True, "label": "work"}])["id"]
        )

    def contacts_with_phone(self, phone: str) -> list[JsonDict]:
        wanted = _digits(phone)
        with self.api.lock:
            persons = list(self.persons.values())
        return [p for p in persons if any(_digits(ph["value"]) == wanted for ph in p["phones"])]

    def call_logs(self) -> list[JsonDict]:
        return self._logs(kind="call")

    def message_logs(self) -> list[JsonDict]:
        return self._logs(kind="sms")

    def _logs(self, *, kind: str) -> list[JsonDict]:
        with self.api.lock:
            activities = list(self.activities.values())
        return [
            {**a, "id": str(a["id"]), "contact_id": str(a["person_id"]), "body": a["note"]}
            for a in activities
            if a["type"] == kind
        ]

    # plumbing

    def _authorized(self, request: Seen) -> bool:
        # core-api-concepts-authentication: an OAuth access token as a Bearer token, or a
        # personal API token in the x-api-token header
        return self.oauth.bearer_ok(request) or request.headers.get("x-api-token") == self.api_token

    @staticmethod
    def _ok(data: Any, *, status: int = 200, additional: JsonDict | None = None) -> Reply:
        body: JsonDict = {"success": True, "data": data}
        if additional is not None:
            body["additional_data"] = additional
        return Reply(status, body, headers=_RATE_HEADERS)

    @staticmethod
    def _error(status: int, message: str, code: str) -> Reply:
        return Reply(status, {"success": False, "error": message, "code": code}, headers=_RATE_HEADERS)

    def _unauthorized(self) -> Reply:
        # core-api-concepts-http-status-codes: 401 for a missing or invalid token
        return Reply(
            401,
            {"success": False, "error": "unauthorized access", "errorCode": 401, "error_info": ""},
            headers=_RATE_HEADERS,
        )

    def _person_store(self, *, name: str, phones: list[JsonDict]) -> JsonDict:
        person_id = self.api.next_id()
        now = _now()
        person: JsonDict = {
            "id": person_id,
            "name": name,
            "first_name": name.split(" ")[0] if name else "",
            "last_name": " ".join(name.split(" ")[1:]),
            "owner_id": FAKE_USER_ID,
            "org_id": None,
            "add_time": now,
            "update_time": now,
            "emails": [],
            "phones": phones,
            "is_deleted": False,
            "visible_to": 3,
            "label_ids": [],
            "picture_id": None,
            "custom_fields": {},
        }
        with self.api.lock:
            self.persons[person_id] = person
            self.person_created[person_id] = time.monotonic()
        return person

    # routes

    def _users_me(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v1/Users#getCurrentUser
        if not self._authorized(request):
            return self._unauthorized()
        return self._ok(
            {
                "id": FAKE_USER_ID,
                "name": "Pat Pipedrive",
                "email": "pat@fakeco.example",
                "default_currency": "USD",
                "locale": "en_US",
                "lang": 1,
                "phone": None,
                "activated": True,
                "active_flag": True,
                "is_admin": 1,
                "timezone_name": "Europe/Tallinn",
                "timezone_offset": "+03:00",
                "company_id": 7001,
                "company_name": "FakeCo",
                "company_domain": COMPANY_DOMAIN,
                "company_country": "EE",
                "is_you": True,
            }
        )

    def _activity_types(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v1/ActivityTypes#getActivityTypes
        if not self._authorized(request):
            return self._unauthorized()
        with self.api.lock:
            types = [dict(t) for t in self.activity_types]
        return self._ok(types)

    def _persons_search(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Persons#searchPersons: `term` (2 characters
        # at least, 1 with exact_match), `fields`; the term is matched against a phone as
        # stored and, for digits, against its digits [how Pipedrive normalises phones in
        # search is unverified]
        if not self._authorized(request):
            return self._unauthorized()
        term = request.query.get("term", "")
        exact = request.query.get("exact_match") in ("true", "1")
        if len(term) < (1 if exact else 2):
            return self._error(400, "Search term must be at least 2 characters long", "ERR_BAD_REQUEST")
        fields = set((request.query.get("fields") or "name,phone,email,notes,custom_fields").split(","))
        wanted, wanted_digits = term.lower(), _digits(term) if re.fullmatch(r"[\d\s()+.-]+", term) else ""

        def hit(value: str) -> bool:
            value = value.lower()
            if exact:
                return value == wanted or (bool(wanted_digits) and _digits(value) == wanted_digits)
            return wanted in value or (bool(wanted_digits) and wanted_digits in _digits(value))

        # a search index that is `search_lag` seconds behind leaves the newest persons out
        indexed_before = time.monotonic() - self.search_lag
        with self.api.lock:
            persons = [p for p in self.persons.values() if self.person_created[p["id"]] <= indexed_before]
        items = [
            {
                "result_score": 1.0,
                "item": {
                    "id": p["id"],
                    "type": "person",
                    "name": p["name"],
                    "phones": [ph["value"] for ph in p["phones"]],
                    "emails": [e["value"] for e in p["emails"]],
                    "visible_to": p["visible_to"],
                    "owner": {"id": p["owner_id"]},
                    "organization": None,
                    "custom_fields": [],
                    "notes": [],
                },
            }
            for p in persons
            if ("phone" in fields and any(hit(ph["value"]) for ph in p["phones"]))
            or ("name" in fields and hit(p["name"]))
        ]
        limit = int(request.query.get("limit") or 100)
        return self._ok({"items": items[:limit]}, additional={"next_cursor": None})

    def _persons_list(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Persons#getPersons: `ids` (up to 100; ones
        # that do not exist are left out), cursor pagination
        if not self._authorized(request):
            return self._unauthorized()
        ids = [int(i) for i in (request.query.get("ids") or "").split(",") if i.strip().isdigit()]
        with self.api.lock:
            persons = (
                [dict(self.persons[i]) for i in ids if i in self.persons]
                if ids
                else list(self.persons.values())
            )
        return self._ok(persons, additional={"next_cursor": None})

    def _person_add(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Persons#addPerson: `name` required, `phones`
        # as [{value, primary, label}]
        if not self._authorized(request):
            return self._unauthorized()
        body = request.json or {}
        if not body.get("name"):
            return self._error(400, "Name must be given.", "ERR_BAD_REQUEST")
        phones = [
            {
                "value": str(p.get("value")),
                "primary": bool(p.get("primary")),
                "label": p.get("label") or "work",
            }
            for p in body.get("phones") or []
            if isinstance(p, dict) and p.get("value")
        ]
        return self._ok(self._person_store(name=str(body["name"]), phones=phones))

    def _activity_check(self, body: JsonDict) -> Reply | None:
        if "person_id" in body:
            # v2 makes person_id read-only (Pipedrive's answer, quoted on devcommunity
            # "API v1 to v2 upgrade POST activities http 400 responses")
            return self._error(
                400,
                "'person_id' is a read-only field. Add a primary participant to set 'person_id' instead.",
                "ERR_BAD_REQUEST",
            )
        if "type" in body:
            with self.api.lock:
                active = {t["key_string"] for t in self.activity_types if t["active_flag"]}
            if body["type"] not in active:
                return self._error(400, f"Activity type '{body['type']}' is not valid", "ERR_BAD_REQUEST")
        with self.api.lock:
            known = set(self.persons)
        for participant in body.get("participants") or []:
            if participant.get("person_id") not in known:
                return self._error(400, "Person not found", "ERR_BAD_REQUEST")
        return None

    def _activity_add(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Activities#addActivity
        if not self._authorized(request):
            return self._unauthorized()
        body = request.json or {}
        refused = self._activity_check(body)
        if refused is not None:
            return refused
        participants = body.get("participants") or []
        primary = next((p["person_id"] for p in participants if p.get("primary")), None)
        now = _now()
        activity: JsonDict = {
            "id": self.api.next_id(),
            "subject": body.get("subject") or "",
            "type": body.get("type") or "task",
            "owner_id": body.get("owner_id") or FAKE_USER_ID,
            "creator_user_id": FAKE_USER_ID,
            "is_deleted": False,
            "add_time": now,
            "update_time": now,
            "deal_id": body.get("deal_id"),
            "lead_id": body.get("lead_id"),
            "person_id": primary,
            "org_id": body.get("org_id"),
            "project_id": None,
            "due_date": body.get("due_date"),
            "due_time": body.get("due_time"),
            "duration": body.get("duration"),
            "busy": False,
            "done": bool(body.get("done")),
            "marked_as_done_time": now if body.get("done") else None,
            "location": None,
            # a GET shows participants with `primary_flag` (devcommunity thread above)
            "participants": [
                {"person_id": p["person_id"], "primary_flag": bool(p.get("primary"))} for p in participants
            ],
            "attendees": [],
            "public_description": None,
            "priority": None,
            "note": body.get("note"),
        }
        with self.api.lock:
            self.activities[activity["id"]] = activity
        return self._ok(dict(activity))

    def _activity_get(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Activities#getActivity
        if not self._authorized(request):
            return self._unauthorized()
        with self.api.lock:
            activity = self.activities.get(int(match.group(1)))
        if activity is None:
            return self._error(404, "Activity not found", "ERR_NOT_FOUND")
        return self._ok(dict(activity))

    def _activity_update(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Activities#updateActivity: the fields given
        # replace the stored ones (the body is addActivity's, `participants` included)
        if not self._authorized(request):
            return self._unauthorized()
        body = request.json or {}
        refused = self._activity_check(body)
        if refused is not None:
            return refused
        with self.api.lock:
            activity = self.activities.get(int(match.group(1)))
            if activity is None:
                return self._error(404, "Activity not found", "ERR_NOT_FOUND")
            for name in ("subject", "type", "owner_id", "due_date", "due_time", "duration", "done", "note"):
                if name in body:
                    activity[name] = body[name]
            if "participants" in body:  # they replace the stored ones; the primary is `person_id`
                participants = body["participants"] or []
                activity["participants"] = [
                    {"person_id": p["person_id"], "primary_flag": bool(p.get("primary"))}
                    for p in participants
                ]
                activity["person_id"] = next((p["person_id"] for p in participants if p.get("primary")), None)
            activity["update_time"] = _now()
            updated = dict(activity)
        return self._ok(updated)

    def _activities_list(self, request: Seen, match: re.Match[str]) -> Reply:
        # developers.pipedrive.com/docs/api/v2/Activities#getActivities: `person_id` (the
        # primary participant), `owner_id`, `sort_by` (id, update_time, add_time,
        # due_date), `sort_direction`, `limit` (100 by default, 500 at most), `cursor`
        if not self._authorized(request):
            return self._unauthorized()
        query = request.query
        with self.api.lock:
            activities = [dict(a) for a in self.activities.values() if not a["is_deleted"]]
        if query.get("person_id"):
            activities = [a for a in activities if str(a["person_id"]) == query["person_id"]]
        if query.get("owner_id"):
            activities = [a for a in activities if str(a["owner_id"]) == query["owner_id"]]
        sort_by = query.get("sort_by") or "id"
        activities.sort(
            key=lambda a: (str(a.get(sort_by) or ""), a["id"]), reverse=query.get("sort_direction") == "desc"
        )
        start = int(query.get("cursor") or 0)
        limit = min(int(query.get("limit") or 100), 500)
        page = activities[start : start + limit]
        more = start + limit < len(activities)
        return self._ok(page, additional={"next_cursor": str(start + limit) if more else None})


# core-api-concepts-rate-limiting: every answer says what is left of the burst window
_RATE_HEADERS = {"x-ratelimit-limit": "80", "x-ratelimit-remaining": "79", "x-ratelimit-reset": "2"}
