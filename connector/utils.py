"""Small helpers shared by the apps: phone-number normalisation, keyed hashing, and the
HTTP session every outbound call uses."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from connector.conf import connector_settings


class InvalidPhoneNumber(ValueError):
    """The text cannot be read as a phone number."""


def phone_number_normalize(raw: str, *, region: str | None = None) -> str:
    """Return `raw` in E.164 (`+14155550100`), reading national formats in `region`.

    `region` defaults to `CONNECTOR["DEFAULT_PHONE_REGION"]`. Raises `InvalidPhoneNumber`
    when the text is not a possible number for its country.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("A phone number is required.")
    try:
        parsed = phonenumbers.parse(text, region or connector_settings.DEFAULT_PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"'{raw}' is not a phone number.") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber(f"'{raw}' is not a possible phone number.")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def phone_number_last4(e164: str) -> str:
    """The last four digits of a normalised number (for name templates)."""
    return e164[-4:]


def hash_value(value: str) -> str:
    """App Connect's `getHashValue`: hex SHA-256 of `"<value>:<HASH_KEY>"`."""
    return hashlib.sha256(f"{value}:{settings.HASH_KEY}".encode()).hexdigest()


class _NoCookies(DefaultCookiePolicy):
    """Keeps no cookie: a session is shared by every user's calls."""

    def set_ok(self, cookie: Any, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Any, request: Any) -> bool:
        return False


class HostMapAdapter(HTTPAdapter):
    """Sends every request for a mapped host to another base URL (OUTBOUND_HOST_MAP):
    `api.hubapi.com=http://127.0.0.1:9101` serves HubSpot's API from a sandbox or a
    loopback fake, path and query unchanged. Other hosts go out as they are."""

    def __init__(self, host_map: dict[str, str], **kwargs: Any) -> None:
        self.host_map = {host.lower(): base.rstrip("/") for host, base in host_map.items()}
        super().__init__(**kwargs)

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.host_map and request.url:
            parts = urlsplit(request.url)
            base = self.host_map.get((parts.hostname or "").lower())
            if base is not None:
                path = parts.path + (f"?{parts.query}" if parts.query else "")
                request.url = base + path
        return super().send(request, *args, **kwargs)


def outbound_session() -> requests.Session:
    """A `requests` session for outbound calls (CRMs, RingCentral), shared by all the
    threads of a process.

    It is complete when returned and must never change afterwards (each call passes its
    own headers and credentials): requests' sessions are safe to share only so. Its
    connection pool holds OUTBOUND_POOL_MAXSIZE connections per host, one for each thread
    that may call at once (a smaller pool makes threads open and drop connections); it
    keeps no cookies, so one user's CRM cookies never travel with another user's call; it
    sends mapped hosts elsewhere (OUTBOUND_HOST_MAP); and it tries a connection that could
    not be opened twice more (nothing was sent, so even a write is safe to try again).
    Every other retry is the caller's decision (`connector.crm.base.HttpCrmClient`).
    """
    session = requests.Session()
    adapter = HostMapAdapter(
        connector_settings.OUTBOUND_HOST_MAP,
        pool_maxsize=connector_settings.OUTBOUND_POOL_MAXSIZE,
        # Connect errors only; a read timeout stays a ReadTimeout, and a 429's Retry-After
        # is never slept here, inside urllib3 (it would sleep up to six hours).
        max_retries=Retry(
            total=None,
            connect=2,
            read=False,
            status=0,
            other=0,
            redirect=False,
            respect_retry_after_header=False,
            backoff_factor=0.1,
        ),
    )
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.cookies.set_policy(_NoCookies())
    return session


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP `Retry-After` value (seconds, or an HTTP date) in seconds from now; None
    when absent or unreadable."""
    if not value:
        return None
    try:
        return float(Retry().parse_retry_after(value.strip()))
    except (ValueError, TypeError, InvalidHeader):
        return None


def phone_number_national_digits(e164: str) -> str:
    """The national significant digits of an E.164 number (`+14155550100` → `4155550100`),
    or "" when it cannot be read."""
    try:
        return phonenumbers.national_significant_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return ""


def overriding_formats_render(overriding_format: str, *, digits: str) -> list[str]:
    """App Connect's overriding formats (the user's comma-separated list, e.g.
    `(***) ***-****,1##########`), each `*` or `#` replaced in order by `digits` (the
    national significant digits). A format whose placeholders do not number the digits
    does not fit the number and is left out; so are repeats."""
    rendered: dict[str, None] = {}
    for item in (overriding_format or "").split(","):
        fmt = item.strip()
        if not fmt or not digits or sum(ch in "*#" for ch in fmt) != len(digits):
            continue
        feed = iter(digits)
        rendered.setdefault("".join(next(feed) if ch in "*#" else ch for ch in fmt), None)
    return list(rendered)


def rc_time_parse(value: Any) -> datetime | None:
    """A RingCentral time as an aware datetime in UTC: ISO 8601 text (a naive one read as
    UTC), or epoch milliseconds as a number or digits (server-side logging sends those);
    None when missing or unreadable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
            return datetime.fromtimestamp(float(value) / 1000, tz=UTC)
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except (TypeError, ValueError, OverflowError, OSError):
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
