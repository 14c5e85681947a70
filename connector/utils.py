"""Small helpers shared by the apps: phone-number normalisation, keyed hashing, and the
HTTP session every outbound call uses."""

from __future__ import annotations

import hashlib
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import phonenumbers
import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

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


def outbound_session() -> requests.Session:
    """A `requests` session for outbound calls (CRMs, RingCentral), shared by all the
    threads of a process.

    It is complete when returned and must never change afterwards (each call passes its
    own headers and credentials): requests' sessions are safe to share only so. Its
    connection pool holds OUTBOUND_POOL_MAXSIZE connections per host, one for each thread
    that may call at once (a smaller pool makes threads open and drop connections), and it
    keeps no cookies, so one user's CRM cookies never travel with another user's call.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_maxsize=connector_settings.OUTBOUND_POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.cookies.set_policy(_NoCookies())
    return session
