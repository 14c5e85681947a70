"""A fake of Clio Manage's API v4 and OAuth endpoints, served on 127.0.0.1 (`server.serve`).

It answers the routes `connector.crm.clio.ClioCrmClient` calls, shaped as Clio's API
reference (its OpenAPI document, https://docs.developers.clio.com/api-reference/) and the
docs pages it links show them: records under `data`, only `id` and `etag` unless `fields`
asks for more (nested fields in braces), at most 200 records a page with
`meta.paging.next` a full URL on app.clio.com, errors as `{"error": {"type", "message"}}`,
`X-RateLimit-*` headers on every answer, `ETag` on single records and 412 when a PATCH's
`If-Match` is stale. Its OAuth endpoint takes the client id and secret in the form, issues
30-day access tokens and keeps the refresh token (no rotation); `/oauth/deauthorize`
revokes the Bearer token it is sent.

Search is the fake's own reading of Clio's "wildcard search": a contact matches a `query`
that appears in its name or in one of its phone numbers as stored (Clio keeps numbers as
people typed them, which is why lookups also try the user's overriding formats).
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from connector.crm.base import EMBEDDABLE_REDIRECT_URI
from tests.crm_fakes.server import FakeApi, OAuthEndpoint, Reply, Seen

JsonDict = dict[str, Any]

API = "/api/v4"
HOST = "app.clio.com"
LOG_KEY_PROPERTY = "ringcentral_log_key"
EXTERNAL_PROPERTIES_MAX = 5
THIRTY_DAYS = 30 * 24 * 3600


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text or "")


def _error(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"error": {"type": kind, "message": message}})


def parse_fields(text: str) -> dict[str, Any]:
    """Clio's `fields` parameter: `id,name,matter{id,display_number}` -> {name: nested or None}."""
    result: dict[str, Any] = {}
    depth, start = 0, 0
    for index, char in enumerate(text + ","):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "," and depth == 0:
            part = text[start:index].strip()
            start = index + 1
            if not part:
                continue
            if "{" in part and part.endswith("}"):
                name, inner = part.split("{", 1)
                result[name.strip()] = parse_fields(inner[:-1])
            else:
                result[part] = None
    return result


def select(record: JsonDict, fields: dict[str, Any] | None) -> JsonDict:
    """The record as Clio answers it for `fields`: only `id` and `etag` without any."""
    if not fields:
        return {key: record[key] for key in ("id", "etag") if key in record}
    out: JsonDict = {}
    for name, nested in fields.items():
        if name not in record or name.startswith("_"):
            continue
        value = record[name]
        if nested is not None and isinstance(value, list):
            value = [select(item, nested) if isinstance(item, dict) else item for item in value]
        elif nested is not None and isinstance(value, dict):
            value = select(value, nested)
        out[name] = value
    return out


class ClioFake:
    """Clio Manage with one firm user (`user_id`), its contacts, matters and communications
    in memory. See the module docstring for what each route answers."""

    platform = "clio"
    oauth_app_key = "clio"
    client_id = "clio-fake-client-id"
    client_secret = "clio-fake-client-secret"
    hosts: tuple[str, ...] = ("app.clio.com", "eu.app.clio.com", "ca.app.clio.com", "au.app.clio.com")
    clio_user_id = 3456
    user_id = f"{clio_user_id}-clio"
    search_lag: float = 0.0  # Clio's search shows new contacts at once
    page_size = 200  # records per index page (Clio's maximum)

    def __init__(self) -> None:
        self.api = FakeApi()
        self.oauth = OAuthEndpoint(
            self.api,
            token_path="/oauth/token",
            client_id=self.client_id,
            client_secret=self.client_secret,
            redirect_uri=EMBEDDABLE_REDIRECT_URI,
            client_auth="body",
            expires_in=THIRTY_DAYS,
        )
        self.oauth.rotate = False  # Manage refresh tokens are reused (docs FAQ "OAuth & Tokens")
        self.oauth.codes["good-code"] = str(self.clio_user_id)
        self.user: JsonDict = {
            "id": self.clio_user_id,
            "etag": '"user-1"',
            "name": "Casey Counsel",
            "first_name": "Casey",
            "last_name": "Counsel",
            "email": "casey@firm.example",
            "time_zone": "America/Los_Angeles",
            "enabled": True,
        }
        self.contacts: dict[int, JsonDict] = {}
        self.matters: dict[int, JsonDict] = {}
        self.communications: dict[int, JsonDict] = {}
        self._etags = itertools.count(1)
        self.routes: dict[str, tuple[str, str]] = {
            "find_contact": ("GET", rf"{API}/contacts\.json"),
            "create_contact": ("POST", rf"{API}/contacts\.json"),
            # calls and messages are both communications: one route
            "create_call_log": ("POST", rf"{API}/communications\.json"),
            "update_call_log": ("PATCH", rf"{API}/communications/\d+\.json"),
            "create_message_log": ("POST", rf"{API}/communications\.json"),
            "user_info": ("GET", rf"{API}/users/who_am_i\.json"),
        }
        route = self.api.route
        route("POST", r"/oauth/deauthorize")(self._deauthorize)
        route("GET", rf"{API}/users/who_am_i\.json")(self._who_am_i)
        route("GET", rf"{API}/contacts\.json")(self._contacts_index)
        route("POST", rf"{API}/contacts\.json")(self._contact_create)
        route("GET", rf"{API}/matters\.json")(self._matters_index)
        route("GET", rf"{API}/communications\.json")(self._communications_index)
        route("POST", rf"{API}/communications\.json")(self._communication_create)
        route("GET", rf"{API}/communications/(\d+)\.json")(self._communication_show)
        route("PATCH", rf"{API}/communications/(\d+)\.json")(self._communication_update)

    # --- the uniform interface -------------------------------------------------------------

    def callback_query(self, *, code: str = "good-code", hostname: str = HOST) -> dict[str, str]:
        """The query App Connect's client sends to GET /oauth-callback after Clio's consent:
        the redirect with `code` and `state`, and the region's host the user picked."""
        state = quote("platform=clio", safe="")
        return {"callbackUri": f"{EMBEDDABLE_REDIRECT_URI}?code={code}&state={state}", "hostname": hostname}

    def access_token(self) -> str:
        """A fresh access token the API accepts (for tests that build the user directly)."""
        token = f"at-direct-{self.api.next_id()}"
        with self.api.lock:
            self.oauth.valid_access.add(token)
        return token

    def add_contact(self, *, name: str, phone: str, contact_type: str = "Person") -> str:
        """A contact with one "Work" number, stored as given; returns its id."""
        with self.api.lock:
            return str(
                self._contact_store(name=name, contact_type=contact_type, phones=[(phone, "Work")])["id"]
            )

    def add_matter(
        self, *, client_id: str, display_number: str, description: str, status: str = "Open"
    ) -> str:
        with self.api.lock:
            matter_id = self.api.next_id()
            self.matters[matter_id] = {
                "id": matter_id,
                "etag": self._etag(),
                "display_number": display_number,
                "description": description,
                "status": status,
                "client": {"id": int(client_id)},
                "created_at": _now(),
                "updated_at": _now(),
            }
            return str(matter_id)

    def contacts_with_phone(self, phone: str) -> list[JsonDict]:
        """Stored contacts carrying this E.164 number, however it was typed."""
        wanted = _digits(phone)
        with self.api.lock:
            return [
                dict(contact)
                for contact in self.contacts.values()
                if any(self._same_number(item["number"], wanted) for item in contact["phone_numbers"])
            ]

    def call_logs(self) -> list[JsonDict]:
        """Stored phone communications logging calls (our key `call:...`, else a `[Call]` subject)."""
        return [item for item in self._logs() if item["kind"] == "call"]

    def message_logs(self) -> list[JsonDict]:
        return [item for item in self._logs() if item["kind"] == "message"]

    # --- storage -------------------------------------------------------------------------------

    def _etag(self) -> str:
        return f'"etag-{next(self._etags)}"'

    @staticmethod
    def _same_number(stored: str, wanted_digits: str) -> bool:
        digits = _digits(stored)
        return bool(digits) and (
            digits == wanted_digits or (len(digits) >= 7 and wanted_digits.endswith(digits))
        )

    def _contact_store(
        self, *, name: str, contact_type: str, phones: list[tuple[str, str]], **names: str
    ) -> JsonDict:
        contact_id = self.api.next_id()
        now = _now()
        numbers = [
            {
                "id": self.api.next_id(),
                "etag": self._etag(),
                "number": number,
                "name": label,
                "primary": index == 0,
                "created_at": now,
                "updated_at": now,
            }
            for index, (number, label) in enumerate(phones)
        ]
        contact = {
            "id": contact_id,
            "etag": self._etag(),
            "name": name,
            "first_name": names.get("first_name"),
            "last_name": names.get("last_name"),
            "type": contact_type,
            "created_at": now,
            "updated_at": now,
            "primary_phone_number": numbers[0]["number"] if numbers else None,
            "phone_numbers": numbers,
        }
        self.contacts[contact_id] = contact
        return contact

    def _logs(self) -> list[JsonDict]:
        with self.api.lock:
            records = [dict(item) for item in self.communications.values()]
        logs = []
        for record in records:
            keys = [p["value"] for p in record["external_properties"] if p["name"] == LOG_KEY_PROPERTY]
            if keys:
                kind = "call" if keys[0].startswith("call:") else "message"
            else:
                kind = "call" if record["subject"].startswith("[Call]") else "message"
            contact = next((p for p in record["senders"] + record["receivers"] if p["type"] != "User"), None)
            logs.append(
                {
                    **record,
                    "id": str(record["id"]),
                    "contact_id": str(contact["id"]) if contact else "",
                    "kind": kind,
                    "log_keys": keys,
                }
            )
        return logs

    # --- routes --------------------------------------------------------------------------------

    def _authorized(self, request: Seen) -> Reply | None:
        if self.oauth.bearer_ok(request):
            return None
        return _error(401, "Unauthorized", "The access token is invalid or has expired")

    def _page(self, request: Seen, path: str, records: list[JsonDict]) -> Reply:
        """An index answer (api-docs/paging): at most `limit` (200) records from `page_token`,
        `meta.paging.next` the full URL of the next page."""
        fields = parse_fields(request.query.get("fields", ""))
        limit = min(int(request.query.get("limit") or 200), 200, self.page_size)
        start = int(request.query.get("page_token") or 0)
        page = records[start : start + limit]
        body: JsonDict = {"data": [select(record, fields) for record in page]}
        if start + limit < len(records):
            query = {k: v for k, v in request.query.items() if k != "page_token"}
            query["page_token"] = str(start + limit)
            body["meta"] = {
                "paging": {"next": f"https://{HOST}{path}?{urlencode(query)}"},
                "records": len(records),
            }
        else:
            body["meta"] = {"paging": {}, "records": len(records)}
        return self._reply(200, body)

    @staticmethod
    def _reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
        limits = {"X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "49", "X-RateLimit-Reset": "1700000060"}
        return Reply(status, body, headers={**limits, **(headers or {})})

    def _deauthorize(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-docs/authorization ("Deauthorization"): POST form token=<access>, Bearer access.
        denied = self._authorized(request)
        if denied is not None:
            return denied
        with self.api.lock:
            self.oauth.revocations.append(request.form)
            self.oauth.valid_access.discard(request.form.get("token", ""))
        return self._reply(200, {})

    def _who_am_i(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Users "Return the data for the current User" (GET /users/who_am_i.json)
        denied = self._authorized(request)
        if denied is not None:
            return denied
        fields = parse_fields(request.query.get("fields", ""))
        return self._reply(200, {"data": select(self.user, fields)}, {"ETag": self.user["etag"]})

    def _contacts_index(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Contacts "Return the data for all Contacts": `query` is a wildcard
        # search (name, phone number, ...), `type` filters, order id(asc).
        denied = self._authorized(request)
        if denied is not None:
            return denied
        text = request.query.get("query", "").casefold()
        kind = request.query.get("type")
        with self.api.lock:
            records = [
                contact
                for _, contact in sorted(self.contacts.items())
                if (not kind or contact["type"] == kind)
                and (
                    not text
                    or text in (contact["name"] or "").casefold()
                    or any(text in item["number"].casefold() for item in contact["phone_numbers"])
                )
            ]
        return self._page(request, f"{API}/contacts.json", records)

    def _contact_create(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Contacts "Create a new Contact": data.name and data.type required; a
        # Person needs a first or last name (or a name Clio can split); 201 with the record.
        denied = self._authorized(request)
        if denied is not None:
            return denied
        data = (request.json or {}).get("data") or {}
        kind = data.get("type")
        name = " ".join(str(data.get("name") or "").split())
        if kind not in ("Person", "Company"):
            return _error(422, "ValidationError", "Type is not included in the list")
        if kind == "Person" and not (data.get("first_name") or data.get("last_name") or name):
            return _error(422, "ValidationError", "At least one of first name or last name must be provided")
        if kind == "Company" and not name:
            return _error(422, "ValidationError", "Name can't be blank")
        phones = []
        for item in data.get("phone_numbers") or []:
            if item.get("name") not in ("Work", "Home", "Mobile", "Fax", "Pager", "Skype", "Other"):
                return _error(422, "ValidationError", "Phone number name is not included in the list")
            phones.append((str(item.get("number") or ""), item["name"]))
        if not name:
            name = " ".join(str(data.get(key) or "") for key in ("first_name", "last_name")).strip()
        with self.api.lock:
            contact = self._contact_store(
                name=name,
                contact_type=kind,
                phones=phones,
                first_name=data.get("first_name") or "",
                last_name=data.get("last_name") or "",
            )
        fields = parse_fields(request.query.get("fields", ""))
        return self._reply(201, {"data": select(contact, fields)}, {"ETag": contact["etag"]})

    def _matters_index(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Matters "Return the data for all Matters": `client_id`, `status`
        # (comma-separated, open/closed/pending).
        denied = self._authorized(request)
        if denied is not None:
            return denied
        client_id = request.query.get("client_id")
        statuses = {s.strip().casefold() for s in request.query.get("status", "").split(",") if s.strip()}
        with self.api.lock:
            records = [
                matter
                for _, matter in sorted(self.matters.items())
                if (not client_id or str(matter["client"]["id"]) == client_id)
                and (not statuses or matter["status"].casefold() in statuses)
            ]
        return self._page(request, f"{API}/matters.json", records)

    def _participants(self, items: Any) -> list[JsonDict] | Reply:
        parties = []
        for item in items or []:
            kind, party_id = item.get("type"), item.get("id")
            if kind == "User" and party_id == self.clio_user_id:
                parties.append({"id": party_id, "type": "User", "name": self.user["name"]})
            elif kind == "Contact" and party_id in self.contacts:
                contact = self.contacts[party_id]
                parties.append({"id": party_id, "type": contact["type"], "name": contact["name"]})
            else:
                return _error(422, "ValidationError", f"{kind} {party_id} was not found")
        return parties

    def _communications_index(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Communications "Return the data for all Communications": contact_id,
        # external_property_name (+ _value), type, query (body or subject), matter_id.
        denied = self._authorized(request)
        if denied is not None:
            return denied
        q = request.query
        contact_id = q.get("contact_id")
        prop_name, prop_value = q.get("external_property_name"), q.get("external_property_value")
        if prop_value is not None and prop_name is None:
            return _error(400, "ArgumentError", "external_property_value requires external_property_name")
        text = q.get("query", "").casefold()
        with self.api.lock:
            records = [
                record
                for _, record in sorted(self.communications.items())
                if (
                    not contact_id
                    or any(
                        p["type"] != "User" and str(p["id"]) == contact_id
                        for p in record["senders"] + record["receivers"]
                    )
                )
                and (not q.get("type") or record["type"] == q["type"])
                and (not q.get("matter_id") or str((record["matter"] or {}).get("id")) == q["matter_id"])
                and (not text or text in record["subject"].casefold() or text in record["body"].casefold())
                and (
                    prop_name is None
                    or any(
                        p["name"] == prop_name and (prop_value is None or p["value"] == prop_value)
                        for p in record["external_properties"]
                    )
                )
            ]
        return self._page(request, f"{API}/communications.json", records)

    def _communication_create(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Communications "Create a new Communication": data.type, subject and
        # body required; senders/receivers [{id, type: User|Contact}]; matter {id};
        # external_properties [{name, value}], at most 5; 201 with the record.
        denied = self._authorized(request)
        if denied is not None:
            return denied
        data = (request.json or {}).get("data") or {}
        if data.get("type") not in ("PhoneCommunication", "EmailCommunication"):
            return _error(422, "ValidationError", "Type is not included in the list")
        for key in ("subject", "body"):
            if not str(data.get(key) or "").strip():
                return _error(422, "ValidationError", f"{key.capitalize()} can't be blank")
        properties = data.get("external_properties") or []
        if len(properties) > EXTERNAL_PROPERTIES_MAX:
            return _error(
                422, "ValidationError", "There is a limit of 5 external_properties per Communication"
            )
        with self.api.lock:
            senders = self._participants(data.get("senders"))
            receivers = self._participants(data.get("receivers"))
            for parties in (senders, receivers):
                if isinstance(parties, Reply):
                    return parties
            matter = data.get("matter")
            if matter and matter.get("id") not in self.matters:
                return _error(422, "ValidationError", "Matter was not found")
            now = _now()
            record = {
                "id": self.api.next_id(),
                "etag": self._etag(),
                "type": data["type"],
                "subject": data["subject"],
                "body": data["body"],
                "date": (data.get("received_at") or now)[:10],
                "received_at": data.get("received_at") or now,
                "created_at": now,
                "updated_at": now,
                "senders": senders,
                "receivers": receivers,
                "matter": {"id": matter["id"]} if matter else None,
                "user": {"id": self.clio_user_id, "name": self.user["name"]},
                "external_properties": [
                    {"id": self.api.next_id(), "name": str(p.get("name")), "value": str(p.get("value"))}
                    for p in properties
                ],
            }
            self.communications[record["id"]] = record
        fields = parse_fields(request.query.get("fields", ""))
        return self._reply(201, {"data": select(record, fields)}, {"ETag": record["etag"]})

    def _communication_show(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Communications "Return the data for a single Communication"
        denied = self._authorized(request)
        if denied is not None:
            return denied
        with self.api.lock:
            record = self.communications.get(int(match.group(1)))
            snapshot = dict(record) if record else None
        if snapshot is None:
            return _error(404, "RecordNotFound", "Communication not found")
        fields = parse_fields(request.query.get("fields", ""))
        return self._reply(200, {"data": select(snapshot, fields)}, {"ETag": snapshot["etag"]})

    def _communication_update(self, request: Seen, match: re.Match[str]) -> Reply:
        # api-reference Communications "Update a single Communication" (IF-MATCH -> 412 when
        # stale, api-docs/etags); external_properties as nested attributes: {name, value}
        # adds, {id, ...} updates, {id, _destroy: true} deletes; at most 5.
        denied = self._authorized(request)
        if denied is not None:
            return denied
        data = (request.json or {}).get("data") or {}
        with self.api.lock:
            record = self.communications.get(int(match.group(1)))
            if record is None:
                return _error(404, "RecordNotFound", "Communication not found")
            expected = request.headers.get("if-match")
            if expected is not None and expected != record["etag"]:
                return _error(412, "PreconditionFailed", "The record was changed since it was read")
            properties = [dict(p) for p in record["external_properties"]]
            for item in data.get("external_properties") or []:
                if item.get("id") is not None:
                    existing = next((p for p in properties if p["id"] == item["id"]), None)
                    if existing is None:
                        return _error(404, "RecordNotFound", "External property not found")
                    if item.get("_destroy"):
                        properties.remove(existing)
                    else:
                        existing.update({k: str(v) for k, v in item.items() if k in ("name", "value")})
                else:
                    properties.append(
                        {"id": self.api.next_id(), "name": str(item["name"]), "value": str(item["value"])}
                    )
            if len(properties) > EXTERNAL_PROPERTIES_MAX:
                return _error(
                    422, "ValidationError", "There is a limit of 5 external_properties per Communication"
                )
            changes: JsonDict = {"external_properties": properties}
            for key in ("subject", "body", "received_at"):
                if key in data:
                    changes[key] = data[key]
            if "matter" in data:
                changes["matter"] = {"id": data["matter"]["id"]} if data["matter"] else None
            for key in ("senders", "receivers"):
                if key in data:
                    parties = self._participants(data[key])
                    if isinstance(parties, Reply):
                        return parties
                    changes[key] = parties
            record.update(changes, etag=self._etag(), updated_at=_now())
            snapshot = dict(record)
        fields = parse_fields(request.query.get("fields", ""))
        return self._reply(200, {"data": select(snapshot, fields)}, {"ETag": snapshot["etag"]})
