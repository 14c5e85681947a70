"""A fake of RingCentral's platform API on 127.0.0.1, as far as server-side call logging
uses it: the token endpoint (JWT bearer and refresh-token grants), extensions,
webhook subscriptions with the real Validation-Token handshake, and the account's call
log. It also builds telephony-session notifications and delivers them to a webhook.

Shapes follow developers.ringcentral.com (each route names its page):
- guide/authentication/jwt-flow and the API reference "Get Token" (`TokenInfo`:
  access_token, token_type, expires_in, refresh_token, refresh_token_expires_in, scope,
  owner_id, endpoint_id); errors `{error, error_description, errors:[{errorCode, message}]}`;
- API reference "Get Extension", "List Extensions" (`GetExtensionInfoResponse`,
  `records` + `paging` + `navigation{nextPage, ...}`);
- guide/notifications/webhooks/creating-webhooks (the handshake, SUB-525),
  .../webhooks/receiving (`Verification-Token` on each delivery),
  .../webhooks/troubleshooting (`status: Blacklisted`, `blacklistedData`), API reference
  "Create/Get/Update/Renew/Delete Subscription" (`SubscriptionInfo`);
- guide/notifications/event-filters/account-telephony-sessions (the notification body);
- guide/voice/call-log/api and .../call-log/details, API reference "List Company Call
  Records" (`records`, `view=Detailed` adds `legs`);
- guide/basics/rate-limits and errors (429 `CMN-301` with `Retry-After`).

One account (`ACCOUNT_ID`) with an admin extension (`ADMIN_EXTENSION_ID`) whose JWT is
`ADMIN_JWT`, and a few users. The fake's own state is public (`subscriptions`,
`extensions`, counters) for tests to assert on and to change.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from tests.crm_fakes.server import FakeApi, JsonDict, Reply, Seen, serve

ACCOUNT_ID = "37439510"
ADMIN_EXTENSION_ID = "62264425011"
USER_EXTENSION_ID = "62264426011"
CLIENT_ID = "fake-rc-client-id"
CLIENT_SECRET = "fake-rc-client-secret"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def fake_jwt(subject: str) -> str:
    """A JWT-shaped credential (header.payload.signature) naming `subject`."""
    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}))
    payload = _b64(json.dumps({"sub": subject}))
    return f"{header}.{payload}.{_b64('sig-' + subject)}"


ADMIN_JWT = fake_jwt(ADMIN_EXTENSION_ID)
USER_JWT = fake_jwt(USER_EXTENSION_ID)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    """RingCentral's API error body (developers.ringcentral.com guide/basics/errors)."""
    return Reply(
        status,
        {"errorCode": code, "message": message, "errors": [{"errorCode": code, "message": message}]},
        headers or {},
    )


def _oauth_error(error: str, description: str, code: str) -> Reply:
    """The token endpoint's error body (API reference "Get Token", 400)."""
    return Reply(
        400,
        {
            "error": error,
            "error_description": description,
            "errors": [{"errorCode": code, "message": description}],
        },
    )


class RingCentralFake:
    """RingCentral for one account. Settings point at it with `RINGCENTRAL_SERVER`."""

    client_id = CLIENT_ID
    client_secret = CLIENT_SECRET

    def __init__(self) -> None:
        self.api = FakeApi()
        self.lock = self.api.lock
        self.access_ttl = 3600  # seconds, RingCentral's default
        self.refresh_ttl = 604800  # a week, RingCentral's default
        # JWT credential -> extension id; tests may revoke one by removing it
        self.jwts: dict[str, str] = {ADMIN_JWT: ADMIN_EXTENSION_ID, USER_JWT: USER_EXTENSION_ID}
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (extension, expires at, epoch)
        self.refresh_tokens: dict[str, str] = {}  # token -> extension (each used once: rotated)
        self.token_requests: list[str] = []  # grant type of each token request served
        self.refresh_delay = 0.0  # seconds a refresh takes (a race's window)
        self.validation_timeout = 3.0  # RingCentral's handshake limit
        self._n = itertools.count(1)
        self.extensions: dict[str, JsonDict] = {}
        self.add_extension(ADMIN_EXTENSION_ID, "101", "Ada", "Admin", admin=True)
        self.add_extension(USER_EXTENSION_ID, "102", "Uma", "User")
        self.subscriptions: dict[str, JsonDict] = {}
        self.verification_tokens: dict[str, str] = {}  # subscription id -> its token
        self.call_records: list[JsonDict] = []
        self._hidden_reads: dict[str, int] = {}  # call record id -> reads still to hide it
        route = self.api.route
        route("POST", r"/restapi/oauth/token")(self._token)
        route("GET", r"/restapi/v1\.0/account/~/extension/~")(self._extension_me)
        route("GET", r"/restapi/v1\.0/account/~/extension")(self._extension_list)
        route("GET", r"/restapi/v1\.0/account/~/extension/([^/]+)")(self._extension_get)
        route("POST", r"/restapi/v1\.0/subscription")(self._subscription_create)
        route("GET", r"/restapi/v1\.0/subscription/([^/]+)")(self._subscription_get)
        route("PUT", r"/restapi/v1\.0/subscription/([^/]+)")(self._subscription_update)
        route("POST", r"/restapi/v1\.0/subscription/([^/]+)/renew")(self._subscription_renew)
        route("DELETE", r"/restapi/v1\.0/subscription/([^/]+)")(self._subscription_delete)
        route("GET", r"/restapi/v1\.0/account/~/call-log")(self._call_log)

    # --- test hooks ---------------------------------------------------------------------

    def add_extension(
        self,
        extension_id: str,
        number: str,
        first: str,
        last: str,
        *,
        admin: bool = False,
        status: str = "Enabled",
    ) -> JsonDict:
        """An extension of the account ("Get Extension": `GetExtensionInfoResponse`)."""
        extension = {
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/extension/{extension_id}",
            "id": int(extension_id),
            "extensionNumber": number,
            "name": f"{first} {last}",
            "type": "User",
            "status": status,
            "contact": {
                "firstName": first,
                "lastName": last,
                "email": f"{first.lower()}.{last.lower()}@example.com",
                "businessPhone": "+16505550100",
            },
            "account": {
                "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}",
                "id": ACCOUNT_ID,
            },
            "permissions": {"admin": {"enabled": admin}, "internationalCalling": {"enabled": False}},
        }
        with self.lock:
            self.extensions[extension_id] = extension
        return extension

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (RingCentral answers 401)."""
        with self.lock:
            self.access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """Every refresh token issued so far is refused (`invalid_grant`)."""
        with self.lock:
            self.refresh_tokens.clear()

    def rate_limit(self, method: str, pattern: str, *, retry_after: int | None = 30, times: int = 1) -> None:
        """The next `times` requests matching answer 429 `CMN-301`, with `Retry-After`."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        headers["X-Rate-Limit-Group"] = "Heavy"
        self.api.fail(method, pattern, _error(429, "CMN-301", "Request rate exceeded", headers), times=times)

    def blacklist(self, subscription_id: str, *, reason: str = "Webhook responses are too slow") -> None:
        """RingCentral suspends the subscription for good (troubleshooting: `Blacklisted`)."""
        with self.lock:
            subscription = self.subscriptions[subscription_id]
            subscription["status"] = "Blacklisted"
            subscription["blacklistedData"] = {"blacklistedAt": _iso(datetime.now(UTC)), "reason": reason}

    def add_call_record(self, record: JsonDict, *, appear_after_reads: int = 0) -> None:
        """A record of the account's call log (see `call_record`). With `appear_after_reads`
        the first K reads that would return it do not: the call log lags the call's end."""
        with self.lock:
            self.call_records.append(record)
            self._hidden_reads[record["id"]] = appear_after_reads

    def token_requests_of(self, grant: str) -> int:
        with self.lock:
            return sum(1 for g in self.token_requests if g == grant)

    def deliver(self, subscription_id: str, body: JsonDict, *, timeout: float = 10.0) -> requests.Response:
        """POST a notification to the subscription's address, as RingCentral does."""
        with self.lock:
            address = self.subscriptions[subscription_id]["deliveryMode"]["address"]
            token = self.verification_tokens.get(subscription_id, "")
        return deliver(address, body, verification_token=token, timeout=timeout)

    # --- the token endpoint ---------------------------------------------------------------

    def _client_ok(self, request: Seen) -> bool:
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _issue(self, extension_id: str) -> JsonDict:
        """guide/authentication/jwt-flow, "Get Token" response (`TokenInfo`)."""
        n = next(self._n)
        access, refresh = f"rc-at-{n}", f"rc-rt-{n}"
        with self.lock:
            self.access_tokens[access] = (extension_id, time.time() + self.access_ttl)
            self.refresh_tokens[refresh] = extension_id
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": self.access_ttl,
            "refresh_token": refresh,
            "refresh_token_expires_in": self.refresh_ttl,
            "scope": "CallControl ReadAccounts ReadCallLog WebhookSubscriptions",
            "owner_id": extension_id,
            "endpoint_id": f"endpoint-{n}",
        }

    def _token(self, request: Seen, match: re.Match[str]) -> Reply:
        if not self._client_ok(request):
            return Reply(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client",
                    "errors": [{"errorCode": "OAU-153", "message": "Invalid client"}],
                },
            )
        form = request.form
        grant = form.get("grant_type", "")
        if grant == JWT_BEARER:
            with self.lock:
                extension_id = self.jwts.get(form.get("assertion", ""))
            if extension_id is None:
                return _oauth_error("invalid_grant", "Invalid token", "OAU-213")
            with self.lock:
                self.token_requests.append(grant)
            return Reply(200, self._issue(extension_id))
        if grant == "refresh_token":
            with self.lock:
                extension_id = self.refresh_tokens.pop(form.get("refresh_token", ""), None)
            if extension_id is None:
                return _oauth_error("invalid_grant", "Token is revoked", "OAU-211")
            with self.lock:
                self.token_requests.append(grant)
            return Reply(200, self._issue(extension_id), delay=self.refresh_delay)
        return _oauth_error("unsupported_grant_type", "Unsupported grant type", "OAU-250")

    def _caller(self, request: Seen) -> str | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        with self.lock:
            owner = self.access_tokens.get(token)
        if owner is None or owner[1] < time.time():
            return None
        return owner[0]

    @staticmethod
    def _unauthorized() -> Reply:
        return _error(401, "TokenInvalid", "Invalid token")

    # --- extensions -----------------------------------------------------------------------

    def _extension_me(self, request: Seen, match: re.Match[str]) -> Reply:
        caller = self._caller(request)
        if caller is None:
            return self._unauthorized()
        with self.lock:
            return Reply(200, self.extensions[caller])

    def _extension_get(self, request: Seen, match: re.Match[str]) -> Reply:
        if self._caller(request) is None:
            return self._unauthorized()
        with self.lock:
            extension = self.extensions.get(match.group(1))
        if extension is None:
            return _error(404, "CMN-102", "Resource for parameter [extensionId] is not found")
        return Reply(200, extension)

    def _extension_list(self, request: Seen, match: re.Match[str]) -> Reply:
        """ "List Extensions": `records`, `paging`, and `navigation` links."""
        if self._caller(request) is None:
            return self._unauthorized()
        page = max(int(request.query.get("page") or 1), 1)
        per_page = max(int(request.query.get("perPage") or 100), 1)
        with self.lock:
            everything = sorted(self.extensions.values(), key=lambda e: e["extensionNumber"])
        pages = max((len(everything) + per_page - 1) // per_page, 1)
        records = everything[(page - 1) * per_page : page * per_page]
        base = f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/extension"

        def link(n: int) -> JsonDict:
            return {"uri": f"{base}?page={n}&perPage={per_page}"}

        navigation: JsonDict = {"firstPage": link(1), "lastPage": link(pages)}
        if page < pages:
            navigation["nextPage"] = link(page + 1)
        if page > 1:
            navigation["previousPage"] = link(page - 1)
        paging = {
            "page": page,
            "totalPages": pages,
            "perPage": per_page,
            "totalElements": len(everything),
            "pageStart": (page - 1) * per_page,
            "pageEnd": (page - 1) * per_page + max(len(records) - 1, 0),
        }
        return Reply(
            200,
            {
                "uri": f"{base}?page={page}&perPage={per_page}",
                "records": records,
                "paging": paging,
                "navigation": navigation,
            },
        )

    # --- subscriptions ----------------------------------------------------------------------

    def _subscription_create(self, request: Seen, match: re.Match[str]) -> Reply:
        """creating-webhooks: RingCentral sends the address a request with a
        `Validation-Token` header and creates the subscription only when the answer is
        200 within 3000 ms, echoes the header and is at most 1024 bytes; else SUB-525."""
        if self._caller(request) is None:
            return self._unauthorized()
        body = request.json or {}
        delivery = body.get("deliveryMode") or {}
        address = str(delivery.get("address") or "")
        filters = body.get("eventFilters") or []
        if delivery.get("transportType") != "WebHook" or not address or not filters:
            return _error(400, "CMN-101", "Parameter [deliveryMode] value is invalid")
        validation_token = str(uuid.uuid4())
        try:
            answer = requests.post(
                address,
                headers={"Validation-Token": validation_token, "User-Agent": "RingCentral-Webhook/8.4"},
                timeout=self.validation_timeout,
                allow_redirects=False,
            )
            size = len(answer.content) + sum(len(k) + len(v) + 4 for k, v in answer.headers.items())
            valid = (
                answer.status_code == 200
                and answer.headers.get("Validation-Token") == validation_token
                and size <= 1024
            )
        except requests.RequestException:
            valid = False
        if not valid:
            return _error(400, "SUB-525", "WebHook server response is invalid")
        now = datetime.now(UTC)
        expires_in = int(body.get("expiresIn") or 604800)
        subscription_id = str(uuid.uuid4())
        subscription: JsonDict = {
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/subscription/{subscription_id}",
            "id": subscription_id,
            "creationTime": _iso(now),
            "status": "Active",
            "eventFilters": list(filters),
            "expirationTime": _iso(now + timedelta(seconds=expires_in)),
            "expiresIn": expires_in,
            "deliveryMode": {"transportType": "WebHook", "address": address, "encryption": False},
        }
        with self.lock:
            self.subscriptions[subscription_id] = subscription
            self.verification_tokens[subscription_id] = str(delivery.get("verificationToken") or "")
        return Reply(200, subscription)

    def _subscription_found(self, request: Seen, subscription_id: str) -> JsonDict | Reply:
        if self._caller(request) is None:
            return self._unauthorized()
        with self.lock:
            subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return _error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        return subscription

    def _subscription_get(self, request: Seen, match: re.Match[str]) -> Reply:
        found = self._subscription_found(request, match.group(1))
        return found if isinstance(found, Reply) else Reply(200, found)

    def _extend(self, subscription: JsonDict, expires_in: int | None = None) -> Reply:
        with self.lock:
            seconds = expires_in or int(subscription["expiresIn"])
            subscription["expiresIn"] = seconds
            subscription["expirationTime"] = _iso(datetime.now(UTC) + timedelta(seconds=seconds))
            return Reply(200, dict(subscription))

    def _subscription_renew(self, request: Seen, match: re.Match[str]) -> Reply:
        """ "Renew Subscription": a new expiry, the same lifetime."""
        found = self._subscription_found(request, match.group(1))
        return found if isinstance(found, Reply) else self._extend(found)

    def _subscription_update(self, request: Seen, match: re.Match[str]) -> Reply:
        """ "Update Subscription": any PUT renews; it may change the filters."""
        found = self._subscription_found(request, match.group(1))
        if isinstance(found, Reply):
            return found
        body = request.json or {}
        if body.get("eventFilters"):
            with self.lock:
                found["eventFilters"] = list(body["eventFilters"])
        return self._extend(found, body.get("expiresIn"))

    def _subscription_delete(self, request: Seen, match: re.Match[str]) -> Reply:
        found = self._subscription_found(request, match.group(1))
        if isinstance(found, Reply):
            return found
        with self.lock:
            self.subscriptions.pop(match.group(1), None)
        return Reply(204, b"")

    # --- the call log -------------------------------------------------------------------------

    def _call_log(self, request: Seen, match: re.Match[str]) -> Reply:
        """ "List Company Call Records": filtered by `telephonySessionId` or `sessionId`;
        the Simple view (default) has no `legs`."""
        if self._caller(request) is None:
            return self._unauthorized()
        wanted_tsid = request.query.get("telephonySessionId")
        wanted_sid = request.query.get("sessionId")
        detailed = request.query.get("view") == "Detailed"
        records = []
        with self.lock:
            for record in self.call_records:
                if wanted_tsid and record.get("telephonySessionId") != wanted_tsid:
                    continue
                if wanted_sid and record.get("sessionId") != wanted_sid:
                    continue
                if self._hidden_reads.get(record["id"], 0) > 0:
                    self._hidden_reads[record["id"]] -= 1
                    continue
                records.append(record if detailed else {k: v for k, v in record.items() if k != "legs"})
        return Reply(
            200,
            {
                "uri": "https://platform.ringcentral.com/restapi/v1.0/account/~/call-log",
                "records": records,
                "paging": {"page": 1, "perPage": 100, "pageStart": 0, "pageEnd": max(len(records) - 1, 0)},
                "navigation": {},
            },
        )


# --- builders -------------------------------------------------------------------------------


def party(
    *,
    extension_id: str | None,
    direction: str,
    status: str,
    from_number: str,
    to_number: str,
    party_id: str | None = None,
    from_extension_id: str | None = None,
    to_extension_id: str | None = None,
    from_name: str = "",
    to_name: str = "",
    reason: str | None = None,
    peer_id: JsonDict | None = None,
    missed_call: bool = False,
) -> JsonDict:
    """One `parties[]` entry of a telephony-session event (account-telephony-sessions:
    accountId, extensionId, id, direction, from, to, status{code, reason?, peerId?},
    missedCall, standAlone, muted)."""
    status_body: JsonDict = {"code": status, "rcc": False}
    if reason:
        status_body["reason"] = reason
    if peer_id:
        status_body["peerId"] = peer_id

    def end(number: str, extension: str | None, name: str) -> JsonDict:
        data: JsonDict = {"phoneNumber": number}
        if extension:
            data["extensionId"] = extension
        if name:
            data["name"] = name
        return data

    data: JsonDict = {
        "accountId": ACCOUNT_ID,
        "id": party_id or f"p-{uuid.uuid4().hex[:12]}-1",
        "direction": direction,
        "from": end(from_number, from_extension_id, from_name),
        "to": end(to_number, to_extension_id, to_name),
        "status": status_body,
        "missedCall": missed_call,
        "standAlone": False,
        "muted": False,
    }
    if extension_id:
        data["extensionId"] = extension_id
    return data


def telephony_session_event(
    *,
    subscription_id: str,
    telephony_session_id: str,
    sequence: int,
    parties: list[JsonDict],
    session_id: str | None = None,
    owner_id: str = ADMIN_EXTENSION_ID,
    event_time: datetime | None = None,
    event_uuid: str | None = None,
    origin_type: str = "Call",
) -> JsonDict:
    """A notification of the `/restapi/v1.0/account/~/telephony/sessions` event filter
    (guide/notifications/event-filters/account-telephony-sessions)."""
    moment = event_time or datetime.now(UTC)
    return {
        "uuid": event_uuid or str(uuid.uuid4()),
        "event": f"/restapi/v1.0/account/{ACCOUNT_ID}/telephony/sessions",
        "timestamp": _iso(moment),
        "subscriptionId": subscription_id,
        "ownerId": owner_id,
        "body": {
            "sequence": sequence,
            "sessionId": session_id or f"{abs(hash(telephony_session_id)) % 10**11}",
            "telephonySessionId": telephony_session_id,
            "serverId": "10.13.22.253.TAM",
            "eventTime": _iso(moment),
            "origin": {"type": origin_type},
            "parties": parties,
        },
    }


def call_record(
    *,
    record_id: str,
    telephony_session_id: str,
    session_id: str,
    direction: str,
    from_number: str,
    to_number: str,
    extension_id: str,
    start_time: datetime,
    duration: int,
    result: str = "Accepted",
    recording_id: str | None = None,
) -> JsonDict:
    """A company call-log record, Detailed view (guide/voice/call-log/api, "List Company
    Call Records": `CallLogRecord` with `legs[]`)."""
    ours = {"extensionId": extension_id}
    record: JsonDict = {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/call-log/{record_id}?view=Detailed",
        "id": record_id,
        "sessionId": session_id,
        "telephonySessionId": telephony_session_id,
        "startTime": _iso(start_time),
        "duration": duration,
        "durationMs": duration * 1000,
        "type": "Voice",
        "internalType": "Local",
        "direction": direction,
        "action": "Phone Call" if direction == "Inbound" else "VoIP Call",
        "result": result,
        "to": {"phoneNumber": to_number, **(ours if direction == "Inbound" else {})},
        "from": {"phoneNumber": from_number, **(ours if direction == "Outbound" else {})},
        "extension": {
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/extension/{extension_id}",
            "id": int(extension_id),
        },
        "lastModifiedTime": _iso(start_time + timedelta(seconds=duration)),
        "transport": "PSTN",
        "legs": [
            {
                "startTime": _iso(start_time),
                "duration": duration,
                "durationMs": duration * 1000,
                "type": "Voice",
                "direction": direction,
                "action": "Phone Call" if direction == "Inbound" else "VoIP Call",
                "result": result,
                "to": {"phoneNumber": to_number},
                "from": {"phoneNumber": from_number},
                "extension": {"id": int(extension_id)},
                "telephonySessionId": telephony_session_id,
                "legType": "Accept" if direction == "Inbound" else "VoipCall",
                "master": True,
                "transport": "PSTN",
            }
        ],
    }
    if recording_id:
        record["recording"] = {
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/recording/{recording_id}",
            "id": recording_id,
            "type": "Automatic",
            "contentUri": f"https://media.ringcentral.com/restapi/v1.0/account/{ACCOUNT_ID}/recording/{recording_id}/content",
        }
    return record


def deliver(
    address: str, body: JsonDict, *, verification_token: str, timeout: float = 10.0
) -> requests.Response:
    """POST one notification to a webhook as RingCentral does (webhooks/receiving: JSON,
    `Verification-Token`, RingCentral's User-Agent)."""
    return requests.post(
        address,
        json=body,
        headers={"Verification-Token": verification_token, "User-Agent": "RingCentral-Webhook/8.4"},
        timeout=timeout,
    )


class WebhookReceiver:
    """A webhook on loopback for tests of the subscription handshake: it answers the
    Validation-Token request as RingCentral wants (`echo`), or wrongly (`echo=False`, or
    after `delay` seconds), and keeps every delivery it got."""

    def __init__(self, *, echo: bool = True, delay: float = 0.0) -> None:
        self.api = FakeApi()
        self.echo = echo
        self.delay = delay
        self.deliveries: list[Seen] = []
        self._guard = threading.Lock()
        self.api.route("POST", r"/rc/webhook")(self._receive)

    def _receive(self, request: Seen, match: re.Match[str]) -> Reply:
        token = request.headers.get("validation-token")
        if token is not None:
            headers = {"Validation-Token": token} if self.echo else {}
            return Reply(200, b"", headers=headers, delay=self.delay)
        with self._guard:
            self.deliveries.append(request)
        return Reply(200, b"")


@contextmanager
def served(fake: RingCentralFake, settings: Any) -> Iterator[str]:
    """Serve `fake` on loopback and point our settings at it (through pytest-django's
    `settings`): RINGCENTRAL_SERVER and the server's RingCentral app. Yields its base URL."""
    with serve(fake.api) as base_url:
        settings.CONNECTOR = {
            **settings.CONNECTOR,
            "RINGCENTRAL_SERVER": base_url,
            "RINGCENTRAL_CLIENT_ID": fake.client_id,
            "RINGCENTRAL_CLIENT_SECRET": fake.client_secret,
        }
        yield base_url
