"""The plain-text call-log body, against App Connect core's own outputs (callLogComposer.ts)."""

from __future__ import annotations

from typing import Any

import pytest

from logs.composer import (
    DEFAULT_DATE_FORMAT,
    CallFields,
    call_journey,
    call_log_details_compose,
    date_time_format,
    duration_humanize,
    shared_sms_compose,
)

START = "2024-03-05T14:07:09Z"
CUSTOMER = {"phoneNumber": "+15550001111", "name": "Cust"}
AGENT = {"phoneNumber": "+15552223333", "name": "Agent A"}
LEGS = [
    {"direction": "Inbound", "to": {"name": "Main", "phoneNumber": "+15552223333"}},
    {"direction": "Inbound", "to": {"name": "Agent A", "extensionNumber": "101"}, "duration": 1},
    {"direction": "Inbound", "to": {"extensionNumber": "102"}, "duration": 30},
]
# App Connect core's output for the inbound example (tz "-5"), verbatim.
CREATE_EXAMPLE = (
    "- Note: line1\n\nline2\n"
    "- Summary: Inbound call from Cust\n"
    "- Date/Time: 2024-03-05 09:07:09 AM\n"
    "- Duration: 1 hour, 2 minutes, 5 seconds\n"
    "- Result: Call connected\n"
    "- Call recording link: https://rec/1\n"
    "- Voicemail recording link: https://vm/1\n"
    "\n- AI Note:\nAI sum\n--- END\n"
    "\n- Transcript:\nT1\nT2\n--- END\n"
    "- Call journey:\n"
    "Received call at Main, +15552223333\n"
    "Transferred to Agent A, ext 101, duration: 1 second\n"
    "Transferred to ext 102, duration: 30 seconds\n"
    "--- JOURNEY END\n"
)


def create_fields(**overrides: Any) -> CallFields:
    values: dict[str, Any] = {
        "note": "line1\n\nline2",
        "session_id": "S1",
        "direction": "Inbound",
        "from_party": CUSTOMER,
        "to_party": AGENT,
        "subject": "Inbound call from Cust",
        "contact_number": "+15550001111",
        "start_time": START,
        "duration": 3725,
        "has_duration": True,
        "result": "Call connected",
        "recording_link": "https://rec/1",
        "voicemail_link": "https://vm/1",
        "ai_note": "AI sum\n\n",
        "transcript": "T1\nT2",
        "legs": LEGS,
    }
    values.update(overrides)
    return CallFields(**values)


def on(*keys: str) -> dict[str, Any]:
    return {key: {"value": True} for key in keys}


def off(*keys: str) -> dict[str, Any]:
    return {key: {"value": False} for key in keys}


def compose(fields: CallFields, settings: dict[str, Any] | None = None, tz: str = "", body: str = "") -> str:
    return call_log_details_compose(
        fields=fields, user_settings=settings or {}, timezone_offset=tz, existing_body=body
    )


# --- duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 seconds"),
        (1, "1 second"),
        (2, "2 seconds"),
        (59, "59 seconds"),
        (60, "1 minute"),
        (61, "1 minute, 1 second"),
        (65, "1 minute, 5 seconds"),
        (120, "2 minutes"),
        (3600, "1 hour"),
        (3601, "1 hour, 1 second"),
        (3725, "1 hour, 2 minutes, 5 seconds"),
        (7322, "2 hours, 2 minutes, 2 seconds"),
        (1.5, "1.5 seconds"),
        (None, "0 seconds"),
        ("65", "1 minute, 5 seconds"),
        ("abc", "abc"),
        ("pending", "pending"),
    ],
)
def test_duration_humanize(seconds: Any, text: str) -> None:
    assert duration_humanize(seconds) == text


# --- date and time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "text"),
    [
        ("-5", "2024-03-05 09:07:09 AM"),
        ("-300", "2024-03-05 09:07:09 AM"),
        ("5.5", "2024-03-05 07:37:09 PM"),
        ("330", "2024-03-05 07:37:09 PM"),
        ("+05:30", "2024-03-05 07:37:09 PM"),
        ("-05:00", "2024-03-05 09:07:09 AM"),
        ("0", "2024-03-05 02:07:09 PM"),
        ("15", "2024-03-06 05:07:09 AM"),  # |n| < 16 means hours
        ("16", "2024-03-05 02:23:09 PM"),  # otherwise minutes
        ("+0530", "2024-03-05 10:57:09 PM"),  # no colon: a number of minutes
        ("-08", "2024-03-05 06:07:09 AM"),
        ("", "2024-03-05 02:07:09 PM"),  # no offset: the server's UTC
    ],
)
def test_date_time_is_shifted_by_the_user_s_offset(offset: str, text: str) -> None:
    assert date_time_format(START, date_format=DEFAULT_DATE_FORMAT, timezone_offset=offset) == text


def test_date_time_reads_epoch_milliseconds() -> None:
    assert date_time_format(1709647629000, date_format=DEFAULT_DATE_FORMAT, timezone_offset="") == (
        "2024-03-05 02:07:09 PM"
    )


@pytest.mark.parametrize(
    ("date_format", "text"),
    [
        ("YYYY-MM-DD hh:mm:ss A", "2024-03-05 09:07:09 AM"),
        ("MM/DD/YYYY HH:mm", "03/05/2024 09:07"),
        ("DD.MM.YY", "05.03.24"),
        ("dddd, MMMM DD, YYYY hh:mm A", "Tuesday, March 05, 2024 09:07 AM"),
    ],
)
def test_date_time_follows_a_moment_format(date_format: str, text: str) -> None:
    assert date_time_format(START, date_format=date_format, timezone_offset="-5") == text


@pytest.mark.parametrize(
    ("date_format", "text"),
    [
        ("M/D/YYYY h:mm A", "3/5/2024 9:07 AM"),
        ("D.M.YYYY H:mm", "5.3.2024 9:07"),
        ("YYYY-MM-DD hh:mm a", "2024-03-05 09:07 am"),
    ],
)
def test_date_time_follows_moment_s_single_letter_tokens(date_format: str, text: str) -> None:
    # Any moment.js format may be chosen (composer facts §1, step 7), not only padded tokens.
    assert date_time_format(START, date_format=date_format, timezone_offset="-5") == text


def test_an_unreadable_start_time_gives_no_date() -> None:
    assert date_time_format("not a date", date_format=DEFAULT_DATE_FORMAT, timezone_offset="") is None


# --- create ----------------------------------------------------------------------------


def test_the_create_example_with_default_settings() -> None:
    assert compose(create_fields(), tz="-5") == CREATE_EXAMPLE


def test_the_create_example_with_every_optional_line_on() -> None:
    settings = on(
        "addCallSessionId", "addRingCentralUserName", "addRingCentralNumber", "addCallLogContactNumber"
    )

    body = compose(create_fields(), settings, tz="-5")

    assert body == CREATE_EXAMPLE.replace(
        "- Summary: Inbound call from Cust\n- Date/Time:",
        "- Session Id: S1\n"
        "- RingCentral user name: Agent A\n"
        "- RingCentral number and extension: +15552223333 \n"
        "- Summary: Inbound call from Cust\n"
        "- Contact Number: +15550001111\n"
        "- Date/Time:",
    )


def test_the_minimal_example() -> None:
    fields = CallFields(subject="S", start_time=START, duration=0, has_duration=True, result="Missed")

    assert compose(fields) == (
        "- Summary: S\n- Date/Time: 2024-03-05 02:07:09 PM\n- Duration: 0 seconds\n- Result: Missed\n"
    )


def test_a_null_duration_is_zero_seconds_and_a_missing_one_is_left_out() -> None:
    assert compose(CallFields(duration=None, has_duration=True)) == "- Duration: 0 seconds\n"
    assert compose(CallFields(result="Missed")) == "- Result: Missed\n"


def test_the_note_always_goes_first() -> None:
    assert compose(CallFields(note="N"), body="- Summary: x\n") == "- Note: N\n- Summary: x\n"


@pytest.mark.parametrize(
    ("setting", "missing"),
    [
        ("addCallLogNote", "- Note:"),
        ("addCallLogSubject", "- Summary:"),
        ("addCallLogDateTime", "- Date/Time:"),
        ("addCallLogDuration", "- Duration:"),
        ("addCallLogResult", "- Result:"),
        ("addCallLogRecording", "recording link:"),
        ("addCallLogAiNote", "- AI Note:"),
        ("addCallLogTranscript", "- Transcript:"),
        ("addCallLogLegs", "- Call journey:"),
    ],
)
def test_each_default_line_can_be_switched_off(setting: str, missing: str) -> None:
    body = compose(create_fields(), off(setting), tz="-5")

    assert missing not in body
    assert missing in CREATE_EXAMPLE


def test_a_setting_without_a_value_keeps_its_default() -> None:
    assert compose(create_fields(), {"addCallLogNote": {"customizable": True}}, tz="-5") == CREATE_EXAMPLE


def test_the_user_s_date_format_is_used() -> None:
    body = compose(CallFields(start_time=START), {"logDateFormat": {"value": "MM/DD/YYYY HH:mm"}}, tz="-5")

    assert body == "- Date/Time: 03/05/2024 09:07\n"


def test_an_outbound_call_names_the_caller_side_as_the_ringcentral_user() -> None:
    fields = CallFields(
        direction="Outbound",
        from_party={"phoneNumber": "+15552223333", "name": "Agent A", "extensionNumber": "101"},
        to_party={"phoneNumber": "+15550001111", "name": "Cust", "extensionNumber": "7"},
    )

    body = compose(fields, on("addRingCentralUserName", "addRingCentralNumber"))

    assert body == "- RingCentral user name: Agent A\n- RingCentral number and extension: +15552223333 7\n"


def test_only_plain_text_is_composed() -> None:
    fields = create_fields()

    assert call_log_details_compose(fields=fields, user_settings={}, log_format="text/html") == ""
    assert call_log_details_compose(fields=fields, user_settings={}, log_format="application/x-custom") == ""


# --- call journey ----------------------------------------------------------------------


def test_call_journey_of_an_inbound_call() -> None:
    assert call_journey(LEGS) == (
        "Received call at Main, +15552223333\n"
        "Transferred to Agent A, ext 101, duration: 1 second\n"
        "Transferred to ext 102, duration: 30 seconds"
    )


def test_call_journey_of_an_outbound_call() -> None:
    legs = [
        {
            "direction": "Outbound",
            "from": {"name": "Agent A", "phoneNumber": "+15552223333", "extensionNumber": "101"},
        },
        {
            "direction": "Outbound",
            "from": {"extensionNumber": "102"},
            "to": {"phoneNumber": "+1999"},
            "duration": 0,
        },
        {
            "direction": "Outbound",
            "legType": "PstnToSip",
            "from": {"extensionNumber": "103"},
            "to": {"phoneNumber": "+1888"},
            "duration": 2,
        },
        {"direction": "Inbound", "to": {}, "duration": 5},
    ]

    assert call_journey(legs) == (
        "Made call from Agent A, +15552223333, ext 101\n"
        "Transferred to ext 102, duration: 0 second\n"
        "Transferred to +1888, duration: 2 seconds\n"
        "Transferred to , duration: 5 seconds"
    )


# --- update ----------------------------------------------------------------------------


def test_the_update_example_replaces_fields_in_place() -> None:
    fields = CallFields(
        note="NEW",
        session_id="S1",
        subject="S2",
        start_time=START,
        duration=61,
        has_duration=True,
        result="Missed",
        recording_link="https://rec/2",
    )

    body = compose(fields, body=CREATE_EXAMPLE)

    assert body == (
        "- Note: NEW\n"
        "- Summary: S2\n"
        "- Date/Time: 2024-03-05 02:07:09 PM\n"
        "- Duration: 1 minute, 1 second\n"
        "- Result: Missed\n"
        "- Call recording link: https://rec/2\n"
        + CREATE_EXAMPLE[CREATE_EXAMPLE.index("- Voicemail recording link:") :]
    )


@pytest.mark.parametrize(
    ("existing", "note", "expected"),
    [
        ("- Note: a\nb\n\nc\n- Summary: x\n", "N", "- Note: N\n- Summary: x\n"),
        ("- Summary: x\n", "n", "- Note: n\n- Summary: x\n"),
        ("- Agent notes: old\n- Summary: x\n", "N", "- Note: N\n- Summary: x\n"),
        ("- Note: old\n", "N", "- Note: N\n"),
        ("- Note: old", "N", "- Note: N"),
    ],
)
def test_an_update_replaces_the_note(existing: str, note: str, expected: str) -> None:
    assert compose(CallFields(note=note), body=existing) == expected


@pytest.mark.parametrize("note", [None, ""])
def test_an_update_without_a_note_keeps_the_old_one(note: str | None) -> None:
    assert compose(CallFields(note=note), body="- Note: old\n- Summary: x\n") == "- Note: old\n- Summary: x\n"


def test_an_update_collapses_blank_lines_after_a_replaced_summary() -> None:
    assert (
        compose(CallFields(subject="b"), body="- Summary: a\n\n\n- Result: r") == "- Summary: b\n- Result: r"
    )


def test_an_update_replaces_duration_and_result_in_place() -> None:
    existing = "- Note: n\n- Duration: 5 seconds\n- Result: Accepted\n- Call recording link: https://r\n"

    body = compose(CallFields(duration=61, has_duration=True, result="Missed"), body=existing)

    assert (
        body
        == "- Note: n\n- Duration: 1 minute, 1 second\n- Result: Missed\n- Call recording link: https://r\n"
    )


def test_an_update_replaces_only_the_date_time_line() -> None:
    existing = "- Date/Time: 2024-01-01 01:00:00 AM\n- Duration: 5 seconds\n"

    assert compose(CallFields(start_time=START), body=existing) == (
        "- Date/Time: 2024-03-05 02:07:09 PM\n- Duration: 5 seconds\n"
    )


def test_an_update_appends_new_fields_at_the_end() -> None:
    existing = "- Summary: x\n- Call journey:\nReceived call at Main\n--- JOURNEY END\n"

    body = compose(CallFields(result="Missed", recording_link="https://rec/3"), body=existing)

    assert body == existing + "- Result: Missed\n- Call recording link: https://rec/3\n"


def test_a_recording_link_starts_on_its_own_line() -> None:
    assert compose(CallFields(recording_link="https://rec/1"), body="- Result: a") == (
        "- Result: a\n- Call recording link: https://rec/1\n"
    )


def test_an_update_replaces_the_ai_note_and_transcript_blocks() -> None:
    existing = "- Summary: x\n\n- AI Note:\nold ai\n--- END\n\n- Transcript:\nold t\n--- END\n"

    body = compose(CallFields(ai_note="new ai\n", transcript="new t\n"), body=existing)

    assert body == "- Summary: x\n\n- AI Note:\nnew ai\n--- END\n\n- Transcript:\nnew t\n\n--- END\n"


def test_an_update_replaces_the_call_journey() -> None:
    existing = "- Summary: x\n- Call journey:\nold\n--- JOURNEY END\n"

    body = compose(CallFields(legs=LEGS[:1]), body=existing)

    assert body == "- Summary: x\n- Call journey:\nReceived call at Main, +15552223333\n--- JOURNEY END\n"


def test_an_update_with_no_legs_keeps_the_journey() -> None:
    existing = "- Call journey:\nold\n--- JOURNEY END\n"

    assert compose(CallFields(legs=[]), body=existing) == existing


def test_an_update_does_not_overwrite_a_known_ringcentral_user_name() -> None:
    existing = "- RingCentral user name: Agent A\n- Summary: x\n"
    fields = CallFields(direction="Inbound", to_party={"name": "Agent B"})

    assert compose(fields, on("addRingCentralUserName"), body=existing) == existing


def test_an_update_fills_in_a_pending_ringcentral_user_name() -> None:
    existing = "- RingCentral user name: (pending...)\n- Summary: x\n"
    fields = CallFields(direction="Inbound", to_party={"name": "Agent B"})

    assert compose(fields, on("addRingCentralUserName"), body=existing) == (
        "- RingCentral user name: Agent B\n- Summary: x\n"
    )


# --- shared SMS ------------------------------------------------------------------------


def test_shared_sms_summary_of_a_conversation() -> None:
    messages = [
        {
            "direction": "Inbound",
            "creationTime": "2024-03-01T10:00:00Z",
            "subject": "hi",
            "from": {"phoneNumber": "+1555"},
        },
        {
            "direction": "Outbound",
            "creationTime": "2024-03-03T13:30:00Z",
            "subject": "hello",
            "from": {"name": "Agent A"},
        },
    ]

    content = shared_sms_compose(
        messages=messages, contact_name="Jane", owner_name="Support Queue", timezone_offset="-05:00"
    )

    assert content["subject"] == "SMS conversation with Jane"
    body = content["body"]
    assert body.startswith(
        "Conversation summary\n"
        "Started: Friday, March 01, 2024 at 05:00 AM\n"
        "Ended: Sunday, March 03, 2024 at 08:30 AM\n"
        "Duration: 2 d 51 h \n"
        "\n"
        "Participants\n"
        "* Jane (customer)\n"
        "* Agent A\n"
        "\n"
        "Receiving call queue: Support Queue\n"
        "\n"
        "Conversation (2 messages)\n"
        "BEGIN\n"
        "------------\n"
    )
    assert "Jane said on 2024-03-01 05:00 AM:\nhi\n\n" in body
    assert "Agent A said on 2024-03-03 08:30 AM:\nhello\n\n" in body
    assert body.endswith("------------\nEND")


def test_shared_sms_summary_of_an_empty_conversation_with_a_user_owner() -> None:
    body = shared_sms_compose(messages=[], contact_name="Jane", owner_name="Bob")["body"]

    assert body.endswith(
        "Participants\n* Jane (customer)\n\nOwner: Bob\n\n"
        "Conversation (0 messages)\nBEGIN\n------------\n------------\nEND"
    )


def test_shared_sms_counts_one_message_in_the_singular() -> None:
    messages = [{"direction": "Inbound", "creationTime": "2024-03-01T10:00:00Z", "subject": "hi"}]

    assert (
        "Conversation (1 message)\n"
        in shared_sms_compose(messages=messages, contact_name="Jane", owner_name="Bob")["body"]
    )
