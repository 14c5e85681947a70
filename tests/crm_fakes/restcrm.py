"""A fake REST CRM on 127.0.0.1 for the proxy connector: the API that
tests/crm_fakes/proxy_sample.json describes, kept in memory.

Its shapes follow App Connect's sample proxy config (packages/core/test/connector/proxy/
sample.json, a Redtail-like API): `GET /authentication` answers `{user, message}`,
contacts are `{id, name, type, phone, ...}` under `contacts`, and an activity comes back
as `{activity: {...}}` with its contacts in `linked_contacts`. Requests are authenticated
as the sample sends them: `Authorization: Basic base64(<api key>)` plus the partner's
`X-Secret-Key`; or, for OAuth configs, a Bearer token from the fake's own token endpoint
(`/oauth/token` on auth.restcrm.example). A phone is matched exactly as stored, so which
format a lookup sends decides whether it finds the contact.

Every host the connector may call (`hosts`) is served by this one fake: map them all to
it with OUTBOUND_HOST_MAP (`served`).
"""

from __future__ import annotations

import base64
import re
import time
from datetime import UTC, datetime
from urllib.parse import quote

from connector.crm.base import EMBEDDABLE_REDIRECT_URI
from tests.crm_fakes.server import FakeApi, JsonDict, OAuthEndpoint, Reply, Seen

API_HOST = "api.restcrm.example"
AUTH_HOST = "auth.restcrm.example"
BASE_URL = f"https://{API_HOST}/v1"
FAKE_USER_ID = 77
CONTACT_TYPES = ("Contact", "Lead")
CATEGORIES = ("call", "message")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")


class RestCrmFake:
    """One tenant (`t-9`) and one user (77, "Pat Rest") of a REST CRM."""

    platform = "restcrm"
    oauth_app_key = "restcrm"
    client_id = "fake-restcrm-client-id"
    client_secret = "fake-restcrm-client-secret"
    # the connector's partner secret (`{{secretKey}}`), checked on every request
    secret_key = "fake-restcrm-partner-secret"
    api_key = "fake-restcrm-api-key"
    hosts: tuple[str, ...] = (API_HOST, AUTH_HOST)
    user_id = f"{FAKE_USER_ID}-restcrm"
    search_lag: float = 0.0
    routes: dict[str, tuple[str, str]] = {
        "user_info": ("GET", r"/v1/authentication"),
        "find_contact": ("GET", r"/v1/contacts"),
        "create_contact": ("POST", r"/v1/contacts"),
        # calls and messages are both activities: one route for both creates
        "create_call_log": ("POST", r"/v1/activities"),
        "update_call_log": ("PUT", r"/v1/activities/\d+"),
        "get_call_log": ("GET", r"/v1/activities/\d+"),
        "find_call_log": ("GET", r"/v1/activities"),
        "create_message_log": ("POST", r"/v1/activities"),
        "update_message_log": ("PUT", r"/v1/activities/\d+"),
        "unauthorize": ("DELETE", r"/v1/authentication"),
    }

    def __init__(self) -> None:
        self.api = FakeApi()
        self.oauth = OAuthEndpoint(
            self.api,
            token_path="/oauth/token",
            revoke_path="/oauth/revoke",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=EMBEDDABLE_REDIRECT_URI,
            client_auth="basic",
        )
        self.oauth.codes["good-code"] = str(FAKE_USER_ID)
        self.contacts: dict[int, JsonDict] = {}
        self.contact_created: dict[int, float] = {}  # monotonic creation times (search_lag)
        self.activities: dict[int, JsonDict] = {}
        self.logged_out = 0
        route = self.api.route
        route("GET", r"/v1/authentication")(self._authentication)
        route("DELETE", r"/v1/authentication")(self._logout)
        route("GET", r"/v1/contacts")(self._contacts_search)
        route("POST", r"/v1/contacts")(self._contact_add)
        route("GET", r"/v1/activities")(self._activities_list)
        route("POST", r"/v1/activities")(self._activity_add)
        route("GET", r"/v1/activities/(\d+)")(self._activity_get)
        route("PUT", r"/v1/activities/(\d+)")(self._activity_update)

    # the uniform interface the end-to-end suites use

    def callback_query(self, *, code: str = "good-code") -> dict[str, str]:
        """What App Connect's client sends to GET /oauth-callback after the consent page."""
        state = quote(f"platform={self.platform}", safe="")
        return {"callbackUri": f"{EMBEDDABLE_REDIRECT_URI}?code={code}&state={state}"}

    def basic(self, api_key: str | None = None) -> str:
        """The Authorization header the sample config sends for `api_key`."""
        return "Basic " + base64.b64encode((api_key or self.api_key).encode()).decode()

    def add_contact(self, *, name: str, phone: str, contact_type: str = "Contact") -> str:
        """A contact with one phone, stored exactly as given."""
        return str(self._contact_store(name=name, phone=phone, contact_type=contact_type)["id"])

    def contacts_with_phone(self, phone: str) -> list[JsonDict]:
        wanted = _digits(phone)
        with self.api.lock:
            contacts = [dict(c) for c in self.contacts.values()]
        return [c for c in contacts if _digits(c["phone"]) == wanted]

    def call_logs(self) -> list[JsonDict]:
        return self._logs("call")

    def message_logs(self) -> list[JsonDict]:
        return self._logs("message")

    def _logs(self, category: str) -> list[JsonDict]:
        with self.api.lock:
            activities = [dict(a) for a in self.activities.values() if a["category"] == category]
        return [
            {
                **a,
                "id": str(a["id"]),
                "contact_id": str(a["linked_contacts"][0]["contact_id"]) if a["linked_contacts"] else "",
                "body": a["description"],
            }
            for a in activities
        ]

    # plumbing

    def _refusal(self, request: Seen) -> Reply | None:
        """None when the request carries the partner secret and a user's credentials."""
        if request.headers.get("x-secret-key") != self.secret_key:
            return Reply(403, {"error": "unknown_partner", "message": "X-Secret-Key is missing or wrong"})
        if request.headers.get("authorization") == self.basic() or self.oauth.bearer_ok(request):
            return None
        return Reply(401, {"error": "invalid_credentials", "message": "Authentication failed"})

    def _contact_store(self, *, name: str, phone: str, contact_type: str) -> JsonDict:
        now = _now()
        contact: JsonDict = {
            "id": self.api.next_id(),
            "name": name,
            "type": contact_type,
            "phone": phone,
            "created_at": now,
            "updated_at": now,
        }
        with self.api.lock:
            self.contacts[contact["id"]] = contact
            self.contact_created[contact["id"]] = time.monotonic()
        return dict(contact)

    @staticmethod
    def _linked(body: JsonDict) -> list[JsonDict]:
        return [
            {"contact_id": int(link["contact_id"])}
            for link in body.get("linked_contacts") or []
            if isinstance(link, dict) and str(link.get("contact_id") or "").isdigit()
        ]

    # routes

    def _authentication(self, request: Seen, match: re.Match[str]) -> Reply:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        return Reply(
            200,
            {
                "user": {
                    "id": FAKE_USER_ID,
                    "username": "pat",
                    "name": "Pat Rest",
                    "timezone": "America/New_York",
                    "tenant_id": "t-9",
                },
                "message": "Welcome back, Pat.",
            },
        )

    def _logout(self, request: Seen, match: re.Match[str]) -> Reply:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self.api.lock:
            self.logged_out += 1
        return Reply(200, {"logged_out": True})

    def _contacts_search(self, request: Seen, match: re.Match[str]) -> Reply:
        """`?phone=` matches a phone exactly as stored; `?name=` a part of the name, in any case."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        phone, name = request.query.get("phone"), request.query.get("name")
        if not phone and not name:
            return Reply(400, {"error": "bad_request", "message": "phone or name is required"})
        indexed_before = time.monotonic() - self.search_lag
        with self.api.lock:
            contacts = [
                dict(c) for c in self.contacts.values() if self.contact_created[c["id"]] <= indexed_before
            ]
        if phone:
            contacts = [c for c in contacts if c["phone"] == phone]
        if name:
            contacts = [c for c in contacts if name.lower() in c["name"].lower()]
        return Reply(200, {"contacts": contacts, "total": len(contacts)})

    def _contact_add(self, request: Seen, match: re.Match[str]) -> Reply:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = request.json or {}
        if not body.get("name") or not body.get("phone"):
            return Reply(422, {"error": "invalid", "message": "name and phone are required"})
        contact_type = body.get("type") or "Contact"
        if contact_type not in CONTACT_TYPES:
            return Reply(422, {"error": "invalid", "message": f"unknown type {contact_type}"})
        return Reply(
            201,
            self._contact_store(name=str(body["name"]), phone=str(body["phone"]), contact_type=contact_type),
        )

    def _activity_add(self, request: Seen, match: re.Match[str]) -> Reply:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = request.json or {}
        linked = self._linked(body)
        with self.api.lock:
            known = set(self.contacts)
        if not linked or any(link["contact_id"] not in known for link in linked):
            return Reply(422, {"error": "invalid", "message": "linked_contacts must name existing contacts"})
        if body.get("category") not in CATEGORIES:
            return Reply(422, {"error": "invalid", "message": "category must be call or message"})
        now = _now()
        activity: JsonDict = {
            "id": self.api.next_id(),
            "category": body["category"],
            "subject": body.get("subject") or "",
            "description": body.get("description") or "",
            "note": body.get("note") or "",
            "start_date": body.get("start_date"),
            "end_date": body.get("end_date"),
            "external_key": body.get("external_key") or "",
            "linked_contacts": linked,
            "created_at": now,
            "updated_at": now,
        }
        with self.api.lock:
            self.activities[activity["id"]] = activity
        return Reply(201, {"activity": dict(activity)})

    def _activity_get(self, request: Seen, match: re.Match[str]) -> Reply:
        refused = self._refusal(request)
        if refused is not None:
            return refused
        with self.api.lock:
            activity = self.activities.get(int(match.group(1)))
        if activity is None:
            return Reply(404, {"error": "not_found", "message": "no such activity"})
        return Reply(200, {"activity": dict(activity)})

    def _activity_update(self, request: Seen, match: re.Match[str]) -> Reply:
        """The fields given replace the stored ones; `append_description` is added to the
        description (a conversation growing message by message)."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        body = request.json or {}
        with self.api.lock:
            activity = self.activities.get(int(match.group(1)))
            if activity is None:
                return Reply(404, {"error": "not_found", "message": "no such activity"})
            for name in ("subject", "description", "note", "start_date", "end_date"):
                if name in body:
                    activity[name] = body[name]
            if body.get("append_description"):
                activity["description"] += str(body["append_description"])
            activity["updated_at"] = _now()
            updated = dict(activity)
        return Reply(200, {"activity": updated})

    def _activities_list(self, request: Seen, match: re.Match[str]) -> Reply:
        """`?external_key=` and `?contact_id=` filter; newest first."""
        refused = self._refusal(request)
        if refused is not None:
            return refused
        query = request.query
        with self.api.lock:
            activities = [dict(a) for a in self.activities.values()]
        if "external_key" in query:
            activities = [a for a in activities if a["external_key"] == query["external_key"]]
        if query.get("contact_id"):
            activities = [
                a
                for a in activities
                if any(str(link["contact_id"]) == query["contact_id"] for link in a["linked_contacts"])
            ]
        activities.sort(key=lambda a: a["id"], reverse=True)
        return Reply(200, {"activities": activities})
