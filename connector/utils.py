"""Small pure helpers shared by the apps: phone-number normalisation and keyed hashing."""

from __future__ import annotations

import hashlib

import phonenumbers
from django.conf import settings

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
