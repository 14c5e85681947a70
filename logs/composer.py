"""The plain-text call-log body (`composedLogDetails`), composed as App Connect's core does.

Each line is governed by a user setting (`userSettings.<key>.value`). On create the body
starts empty; on update it starts from the CRM's current body and each field is replaced in
place or appended. Only `text/plain` is composed; other formats get an empty string and the
connector formats the log itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

PLAIN_TEXT = "text/plain"

# setting key -> default when the user has not set it
LINE_DEFAULTS: dict[str, bool] = {
    "addCallLogNote": True,
    "addCallSessionId": False,
    "addRingCentralUserName": False,
    "addRingCentralNumber": False,
    "addCallLogSubject": True,
    "addCallLogContactNumber": False,
    "addCallLogDateTime": True,
    "addCallLogDuration": True,
    "addCallLogResult": True,
    "addCallLogRecording": True,
    "addCallLogAiNote": True,
    "addCallLogTranscript": True,
    "addCallLogLegs": True,
}
DEFAULT_DATE_FORMAT = "YYYY-MM-DD hh:mm:ss A"

# moment.js format tokens, longest first so "YYYY" wins over "YY" and "MM" over "M".
_MOMENT_TOKENS: dict[str, Any] = {
    "YYYY": lambda t: f"{t.year:04d}",
    "YY": lambda t: f"{t.year % 100:02d}",
    "MMMM": lambda t: t.strftime("%B"),
    "MMM": lambda t: t.strftime("%b"),
    "MM": lambda t: f"{t.month:02d}",
    "M": lambda t: str(t.month),
    "dddd": lambda t: t.strftime("%A"),
    "ddd": lambda t: t.strftime("%a"),
    "DD": lambda t: f"{t.day:02d}",
    "D": lambda t: str(t.day),
    "HH": lambda t: f"{t.hour:02d}",
    "H": lambda t: str(t.hour),
    "hh": lambda t: f"{(t.hour % 12) or 12:02d}",
    "h": lambda t: str((t.hour % 12) or 12),
    "mm": lambda t: f"{t.minute:02d}",
    "m": lambda t: str(t.minute),
    "ss": lambda t: f"{t.second:02d}",
    "s": lambda t: str(t.second),
    "A": lambda t: "AM" if t.hour < 12 else "PM",
    "a": lambda t: "am" if t.hour < 12 else "pm",
}
# Text in [brackets] is literal, as in moment.js.
_MOMENT_PATTERN = re.compile(r"\[[^\]]*\]|" + "|".join(sorted(_MOMENT_TOKENS, key=len, reverse=True)))


def moment_format(moment: datetime, date_format: str) -> str:
    """Format `moment` with a moment.js format string (the tokens App Connect uses)."""

    def token(match: re.Match[str]) -> str:
        text = match.group(0)
        return text[1:-1] if text.startswith("[") else _MOMENT_TOKENS[text](moment)

    return _MOMENT_PATTERN.sub(token, date_format)


@dataclass(slots=True)
class CallFields:
    """The values a call-log body is composed from (absent ones are None)."""

    note: str | None = None
    session_id: str | None = None
    direction: str | None = None
    from_party: dict[str, Any] = field(default_factory=dict)
    to_party: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None
    contact_number: str | None = None
    start_time: Any = None
    duration: Any = None
    has_duration: bool = False
    result: str | None = None
    recording_link: str | None = None
    voicemail_link: str | None = None
    ai_note: str | None = None
    transcript: str | None = None
    legs: list[dict[str, Any]] = field(default_factory=list)


def _enabled(settings: dict[str, Any], key: str) -> bool:
    entry = settings.get(key)
    if isinstance(entry, dict) and "value" in entry and entry["value"] is not None:
        return bool(entry["value"])
    return LINE_DEFAULTS[key]


def duration_humanize(value: Any) -> str:
    """`65` -> `1 minute, 5 seconds`; `0` or None -> `0 seconds`; non-numbers unchanged."""
    if value is None:
        seconds: float = 0
    else:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            return str(value)
    whole = int(seconds // 1)
    hours, minutes = whole // 3600, (whole % 3600) // 60
    rest = seconds - hours * 3600 - minutes * 60
    rest_text = str(int(rest)) if rest == int(rest) else str(rest)
    parts = []
    if hours:
        parts.append(f"{hours} hour" + ("s" if hours > 1 else ""))
    if minutes:
        parts.append(f"{minutes} minute" + ("s" if minutes > 1 else ""))
    if rest:
        parts.append(f"{rest_text} second" + ("" if rest == 1 else "s"))
    return ", ".join(parts) or "0 seconds"


def _utc_offset(value: str) -> timedelta | None:
    """A user's `timezoneOffset`: "+05:30" style, else a number of hours (<16) or minutes."""
    text = (value or "").strip()
    if not text:
        return None
    if ":" in text:
        match = re.fullmatch(r"([+-])?(\d{1,2}):(\d{2})", text)
        if not match:
            return None
        sign = -1 if match.group(1) == "-" else 1
        return sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
    try:
        number = float(text)
        offset = timedelta(hours=number) if abs(number) < 16 else timedelta(minutes=number)
    except (ValueError, OverflowError):
        return None
    # A UTC offset is less than a day either way.
    return offset if abs(offset) < timedelta(hours=24) else None


# RFC 3339 / ISO 8601 date-times as RingCentral and App Connect send them.
ISO_DATE_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}(?::\d{2})?)(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})?"
)


def parse_time(value: Any) -> datetime | None:
    """A call time (ISO 8601 text or epoch milliseconds) in UTC; None when it is missing or
    outside what a date can hold."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        match = ISO_DATE_TIME.fullmatch(str(value))
        if match is None:
            return None
        date, time_, fraction, zone = match.groups()
        text = f"{date}T{time_}{(fraction or '')[:7]}{'+00:00' if zone in ('Z', 'z') else zone or ''}"
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def date_time_format(value: Any, *, date_format: str, timezone_offset: str) -> str | None:
    """Format a call's start time with a moment.js format, shifted by the user's offset."""
    moment = parse_time(value)
    if moment is None:
        return None
    offset = _utc_offset(timezone_offset)
    try:
        moment = moment.astimezone(timezone(offset)) if offset is not None else moment
    except (ValueError, OverflowError):
        return None
    return moment_format(moment, date_format)


def _party(info: dict[str, Any]) -> str:
    phone, ext = info.get("phoneNumber"), info.get("extensionNumber")
    if phone and ext:
        text = f"{phone}, ext {ext}"
    elif phone:
        text = str(phone)
    elif ext:
        text = f"ext {ext}"
    else:
        text = ""
    return f"{info['name']}, {text}" if info.get("name") else text


def call_journey(legs: list[dict[str, Any]]) -> str:
    """The "Call journey" lines: who took the call, then each transfer."""
    lines = []
    for index, leg in enumerate(legs):
        outbound = leg.get("direction") == "Outbound"
        if index == 0:
            lines.append(
                f"Made call from {_party(leg.get('from') or {})}"
                if outbound
                else f"Received call at {_party(leg.get('to') or {})}"
            )
            continue
        party = leg.get("to") or {}
        if outbound and leg.get("legType") != "PstnToSip":
            party = leg.get("from") or {}
        seconds = leg.get("duration") or 0
        lines.append(
            f"Transferred to {_party(party)}, duration: {seconds} second" + ("s" if seconds > 1 else "")
        )
    return "\n".join(lines)


# --- upserting fields into a body ------------------------------------------------------


def _upsert_line(body: str, label: str, value: str) -> str:
    """Replace `- <label>: ...` (and the newlines after it) or append the line."""
    pattern = re.compile(rf"- {re.escape(label)}: [^\n]*\n*")
    line = f"- {label}: {value}\n"
    if pattern.search(body):
        return pattern.sub(lambda _: line, body, count=1)
    return body + line


def _upsert_value(body: str, label: str, value: str) -> str:
    """Replace a one-line value (Duration, Result, Date/Time) in place, or append it."""
    pattern = re.compile(rf"^- {re.escape(label)}: [^\n]*$", re.MULTILINE)
    if pattern.search(body):
        return pattern.sub(lambda _: f"- {label}: {value}", body, count=1)
    return body + f"- {label}: {value}\n"


def _upsert_link(body: str, label: str, value: str) -> str:
    if body and not body.endswith("\n") and f"- {label}: " not in body:
        body += "\n"
    return _upsert_line(body, label, value)


def _upsert_block(body: str, label: str, value: str, end: str = "--- END") -> str:
    pattern = re.compile(rf"- {re.escape(label)}:.*?{re.escape(end)}", re.DOTALL)
    block = f"- {label}:\n{value}\n{end}"
    if pattern.search(body):
        return pattern.sub(lambda _: block, body, count=1)
    return body + f"\n{block}\n"


def _upsert_note(body: str, note: str) -> str:
    pattern = re.compile(r"- (?:Note|Agent notes): .*?(?=\n- [A-Z][A-Za-z /]*:|\n$|$)", re.DOTALL)
    if pattern.search(body):
        return pattern.sub(lambda _: f"- Note: {note}", body, count=1)
    return f"- Note: {note}\n" + body


def call_log_details_compose(
    *,
    fields: CallFields,
    user_settings: dict[str, Any],
    timezone_offset: str = "",
    existing_body: str = "",
    log_format: str = PLAIN_TEXT,
) -> str:
    """The plain-text body for a call log, starting from `existing_body` (empty on create)."""
    if log_format != PLAIN_TEXT:
        return ""
    body = existing_body
    settings = user_settings or {}
    inbound = fields.direction == "Inbound"
    if fields.note and _enabled(settings, "addCallLogNote"):
        body = _upsert_note(body, fields.note)
    if fields.session_id and _enabled(settings, "addCallSessionId"):
        body = _upsert_line(body, "Session Id", fields.session_id)
    if _enabled(settings, "addRingCentralUserName"):
        name = (fields.to_party if inbound else fields.from_party).get("name")
        if name is not None:
            # An existing name is kept unless it is still App Connect's "(pending...)".
            existing = re.search(r"- RingCentral user name: ([^\n]*)", body)
            if existing is None or existing.group(1).strip() == "(pending...)":
                body = _upsert_line(body, "RingCentral user name", str(name))
    if _enabled(settings, "addRingCentralNumber"):
        number = (fields.to_party if inbound else fields.from_party).get("phoneNumber")
        ext = (fields.from_party if inbound else fields.to_party).get("extensionNumber") or ""
        if number:
            body = _upsert_line(body, "RingCentral number and extension", f"{number} {ext}")
    if fields.subject and _enabled(settings, "addCallLogSubject"):
        body = _upsert_line(body, "Summary", fields.subject)
    if fields.contact_number and _enabled(settings, "addCallLogContactNumber"):
        body = _upsert_value(body, "Contact Number", fields.contact_number)
    if fields.start_time and _enabled(settings, "addCallLogDateTime"):
        date_format = (settings.get("logDateFormat") or {}).get("value") or DEFAULT_DATE_FORMAT
        formatted = date_time_format(
            fields.start_time, date_format=date_format, timezone_offset=timezone_offset
        )
        if formatted:
            body = _upsert_value(body, "Date/Time", formatted)
    if fields.has_duration and _enabled(settings, "addCallLogDuration"):
        body = _upsert_value(body, "Duration", duration_humanize(fields.duration))
    if fields.result and _enabled(settings, "addCallLogResult"):
        body = _upsert_value(body, "Result", fields.result)
    if _enabled(settings, "addCallLogRecording"):
        if fields.recording_link:
            body = _upsert_link(body, "Call recording link", fields.recording_link)
        if fields.voicemail_link:
            body = _upsert_link(body, "Voicemail recording link", fields.voicemail_link)
    if fields.ai_note and _enabled(settings, "addCallLogAiNote"):
        body = _upsert_block(body, "AI Note", fields.ai_note.rstrip("\n"))
    if fields.transcript and _enabled(settings, "addCallLogTranscript"):
        body = _upsert_block(body, "Transcript", fields.transcript)
    if fields.legs and _enabled(settings, "addCallLogLegs"):
        journey = call_journey(fields.legs)
        pattern = re.compile(r"- Call journey:.*?--- JOURNEY END", re.DOTALL)
        block = f"- Call journey:\n{journey}\n--- JOURNEY END"
        body = pattern.sub(lambda _: block, body, count=1) if pattern.search(body) else body + block + "\n"
    return body


# --- shared SMS --------------------------------------------------------------------------


def _shift(moment: datetime, timezone_offset: str) -> datetime:
    offset = _utc_offset(timezone_offset)
    try:
        return moment.astimezone(timezone(offset)) if offset is not None else moment
    except (ValueError, OverflowError):
        return moment


def shared_sms_compose(
    *, messages: list[dict[str, Any]], contact_name: str, owner_name: str, timezone_offset: str = ""
) -> dict[str, str]:
    """The `{subject, body}` of a shared-SMS conversation activity, in plain text.

    Follows the layout of App Connect's shared-SMS summary, with real start and end times
    (the peer's end time falls back to 1970 for ISO timestamps; ours does not).
    """
    stamped = [(moment, m) for m in messages if (moment := parse_time(m.get("creationTime"))) is not None]
    stamped.sort(key=lambda pair: pair[0], reverse=True)  # newest first
    times = [moment for moment, _ in stamped]
    agents: list[str] = []
    entries = []
    for moment, message in stamped:
        sender = (
            (message.get("from") or {}).get("name") or (message.get("from") or {}).get("phoneNumber") or ""
        )
        if message.get("direction") == "Inbound":
            sender = contact_name or sender
        elif sender and sender not in agents:
            agents.append(sender)
        when = _shift(moment, timezone_offset).strftime("%Y-%m-%d %I:%M %p")
        entries.append(f"{sender} said on {when}:\n{message.get('subject') or ''}\n\n")
    lines = ["Conversation summary"]
    if times:
        start, end = _shift(min(times), timezone_offset), _shift(max(times), timezone_offset)
        span = end - start
        lines += [
            f"Started: {start.strftime('%A, %B %d, %Y')} at {start.strftime('%I:%M %p')}",
            f"Ended: {end.strftime('%A, %B %d, %Y')} at {end.strftime('%I:%M %p')}",
            f"Duration: {span.days} d {int(span.total_seconds() // 3600)} h ",
        ]
    lines += ["", "Participants", f"* {contact_name} (customer)", *[f"* {agent}" for agent in agents], ""]
    if owner_name:
        label = "Receiving call queue" if "queue" in owner_name.lower() else "Owner"
        lines += [f"{label}: {owner_name}", ""]
    count = len(entries)
    lines += [f"Conversation ({count} message{'' if count == 1 else 's'})", "BEGIN", "-" * 12]
    body = "\n".join(lines) + "\n" + "".join(entries) + "-" * 12 + "\nEND"
    return {"subject": f"SMS conversation with {contact_name}", "body": body}
