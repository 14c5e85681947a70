"""Phone-number normalisation and App Connect's keyed hash (connector/utils.py)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.utils import (
    InvalidPhoneNumber,
    hash_value,
    overriding_formats_render,
    phone_number_last4,
    phone_number_national_digits,
    phone_number_normalize,
    rc_time_parse,
)

# A valid North American number: area code and exchange start with 2-9.
area_codes = st.from_regex(re.compile(r"[2-9][0-9]{2}"), fullmatch=True).filter(lambda a: a[1:] != "11")
exchanges = st.from_regex(re.compile(r"[2-9][0-9]{2}"), fullmatch=True).filter(lambda e: e[1:] != "11")
subscribers = st.from_regex(re.compile(r"[0-9]{4}"), fullmatch=True)
US_FORMATS = (
    "({a}) {e}-{s}",
    "{a}-{e}-{s}",
    "{a}.{e}.{s}",
    "{a} {e} {s}",
    "{a}{e}{s}",
    "1{a}{e}{s}",
    "1 {a} {e} {s}",
    "1-{a}-{e}-{s}",
    "+1{a}{e}{s}",
    "+1 {a} {e} {s}",
    "+1-{a}-{e}-{s}",
    "+1 ({a}) {e}-{s}",
    "+1.{a}.{e}.{s}",
    "  ({a}) {e}-{s}  ",
)


@given(a=area_codes, e=exchanges, s=subscribers, fmt=st.sampled_from(US_FORMATS))
def test_any_formatting_of_a_us_number_normalises_to_the_same_e164(a: str, e: str, s: str, fmt: str) -> None:
    assert phone_number_normalize(fmt.format(a=a, e=e, s=s)) == f"+1{a}{e}{s}"


@given(a=area_codes, e=exchanges, s=subscribers)
def test_normalising_is_idempotent(a: str, e: str, s: str) -> None:
    once = phone_number_normalize(f"({a}) {e}-{s}")

    assert phone_number_normalize(once) == once


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+49 30 901820", "+4930901820"),
        ("+33 1 42 68 53 00", "+33142685300"),
    ],
)
def test_international_numbers_keep_their_country(raw: str, e164: str) -> None:
    assert phone_number_normalize(raw) == e164


def test_a_national_number_is_read_in_the_given_region() -> None:
    assert phone_number_normalize("020 7946 0958", region="GB") == "+442079460958"
    assert phone_number_normalize("011 44 20 7946 0958") == "+442079460958"  # US international prefix


def test_the_default_region_comes_from_the_connector_settings(settings) -> None:
    settings.CONNECTOR = {**settings.CONNECTOR, "DEFAULT_PHONE_REGION": "GB"}

    assert phone_number_normalize("020 7946 0958") == "+442079460958"


@pytest.mark.parametrize("raw", ["", "   ", "abc", "12", "+1 415 555", "+1 415 555 0100 999 888"])
def test_text_that_is_not_a_phone_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidPhoneNumber):
        phone_number_normalize(raw)


def test_last4() -> None:
    assert phone_number_last4("+14155550123") == "0123"


def test_hash_value_is_the_sha256_of_value_colon_hash_key(settings) -> None:
    settings.HASH_KEY = "k"

    assert hash_value("12345") == "61cf9f2fa8f410db65a6c894811f3a43425950a13d08ae7500d84ee028d8e3ae"
    assert hash_value("12345") == hashlib.sha256(b"12345:k").hexdigest()


def test_hash_value_depends_on_the_hash_key(settings) -> None:
    settings.HASH_KEY = "key-one"
    one = hash_value("62001")
    settings.HASH_KEY = "key-two"

    assert hash_value("62001") != one
    assert re.fullmatch(r"[0-9a-f]{64}", one)


def test_overriding_formats_are_filled_digit_by_digit_and_misfits_left_out() -> None:
    formats = "(***) ***-****, 1##########,+44 ###,,(***) ***-****"

    assert overriding_formats_render(formats, digits="4155550100") == ["(415) 555-0100", "14155550100"]
    assert overriding_formats_render(formats, digits="") == []


def test_national_digits_of_an_e164_number() -> None:
    assert phone_number_national_digits("+14155550100") == "4155550100"
    assert phone_number_national_digits("+442079460958") == "2079460958"
    assert phone_number_national_digits("not a number") == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T10:00:00.000Z", "2026-11-26T10:00:00+00:00"),
        ("2026-11-26T12:00:00+02:00", "2026-11-26T10:00:00+00:00"),
        ("2026-11-26T10:00:00", "2026-11-26T10:00:00+00:00"),
        (1795687200000, "2026-11-26T10:00:00+00:00"),
        ("1795687200000", "2026-11-26T10:00:00+00:00"),
        ("", None),
        (None, None),
        (True, None),
        ("yesterday", None),
        (10**20, None),
    ],
)
def test_ringcentral_times_are_read_in_utc(value, expected) -> None:
    parsed = rc_time_parse(value)

    assert (parsed.isoformat() if parsed else None) == expected
