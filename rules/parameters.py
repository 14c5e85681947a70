"""Every setting the server knows, declared in code: type, allowed values, default, label.

Admin rows (`rules.models.RuleSetting`) override the defaults per site and per RingCentral
account; users' own values count only where the admin left a key customizable. Nothing
but `rules.selectors` reads those rows. The rule settings drive the automatic flow;
the others are App Connect's own keys, accepted so an App Connect admin page can push
them, and validated by type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from string import Formatter
from typing import Any

import phonenumbers
from django.db import models

# Built-in placeholder name when neither the user nor an admin set one.
BUILTIN_PLACEHOLDER_NAME = "Unknown caller"
# The fields a placeholder-name template may use (see `template_render`).
PLACEHOLDER_NAME_FIELDS = ("callerId", "phoneNumber", "nationalNumber", "last4", "date", "direction")
PLACEHOLDER_NAME_MAX = 120


class UnknownContactAction(models.TextChoices):
    PROMPT = "prompt", "Leave it to the user (log nothing)"
    CREATE_PLACEHOLDER = "createPlaceholder", "Create a placeholder contact and log against it"


class PlaceholderNameSource(models.TextChoices):
    CALLER_ID_THEN_DEFAULT = "callerIdThenDefault", "Caller ID name when usable, else the default name"
    DEFAULT_ONLY = "defaultOnly", "Always the default name"


class MultipleMatchPolicy(models.TextChoices):
    PROMPT = "prompt", "Leave it to the user (log nothing)"
    LAST_UPDATED = "lastUpdated", "The most recently active contact"
    ALPHABETICAL = "alphabetical", "The first contact alphabetically"
    EARLIEST_CREATED = "earliestCreated", "The earliest created contact"


class CallDirection(models.TextChoices):
    INBOUND = "inbound", "Inbound"
    OUTBOUND = "outbound", "Outbound"


class CallResultKind(models.TextChoices):
    """What became of a call, from RingCentral's many `result` values (see
    `rules.services.CALL_RESULT_KINDS`)."""

    ANSWERED = "answered", "Answered"
    MISSED = "missed", "Missed (no one answered, or the caller hung up first)"
    VOICEMAIL = "voicemail", "Went to voicemail"
    REJECTED = "rejected", "Rejected, declined or blocked"
    BUSY = "busy", "Busy"
    NO_ANSWER = "noAnswer", "Not answered (an outbound call)"
    FAILED = "failed", "Failed (wrong number, network or account error)"
    OTHER = "other", "Unknown or any other result"


class MessageKind(models.TextChoices):
    SMS = "SMS", "SMS"
    FAX = "Fax", "Fax"
    VOICEMAIL = "VoiceMail", "Voicemail"


class SettingKind(models.TextChoices):
    BOOLEAN = "boolean"
    CHOICE = "choice"
    MULTI_CHOICE = "multiChoice"  # a list of distinct values among `choices` ([] for none)
    SECONDS = "seconds"  # whole seconds, 0 to a day
    TEXT = "text"
    TEMPLATE = "template"  # a placeholder-name template
    CONTACT_TYPE = "contactType"  # one of the platform manifest's contactTypes
    OBJECT = "object"
    LIST = "list"  # a list of strings (or "" for none)
    ANY = "any"  # shape left to App Connect's client


@dataclass(frozen=True, slots=True)
class Parameter:
    """One setting: how its value is checked, its default and how admins see it."""

    key: str
    kind: str
    label: str
    description: str
    default: Any = None
    choices: tuple[str, ...] = ()
    is_rule: bool = False  # one of the auto-logging rule settings

    def validate(self, value: Any) -> Any:
        """Return `value` if it fits this setting, else raise `ValueError` saying why.

        Contact types are checked against a platform's manifest by the caller, which
        knows the platform.
        """
        if self.kind == SettingKind.BOOLEAN:
            if not isinstance(value, bool):
                raise ValueError("must be true or false")
        elif self.kind == SettingKind.CHOICE:
            if value not in self.choices:
                raise ValueError(f"must be one of: {', '.join(self.choices)}")
        elif self.kind == SettingKind.MULTI_CHOICE:
            if not isinstance(value, list) or any(v not in self.choices for v in value):
                raise ValueError(f"must be a list of values among: {', '.join(self.choices)}")
            if len(set(value)) != len(value):
                raise ValueError("must not name a value twice")
        elif self.kind == SettingKind.SECONDS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 86_400:
                raise ValueError("must be a whole number of seconds from 0 to 86400")
        elif self.kind in (SettingKind.TEXT, SettingKind.CONTACT_TYPE):
            if not isinstance(value, str) or len(value) > 200:
                raise ValueError("must be a string of at most 200 characters")
        elif self.kind == SettingKind.TEMPLATE:
            template_validate(value)
        elif self.kind == SettingKind.OBJECT and not isinstance(value, dict):
            raise ValueError("must be an object")
        elif self.kind == SettingKind.LIST and not (
            value == "" or (isinstance(value, list) and all(isinstance(v, str) for v in value))
        ):
            raise ValueError("must be a list of strings")
        return value


# What `template_validate` renders a template with: a caller with a Caller ID name, and
# one without (a template must still give a name then).
_SAMPLE_NUMBER = "+14155550199"
_SAMPLE_DATE = date(2026, 1, 31)


def template_validate(template: Any) -> str:
    """Check a placeholder-name template renders: a non-empty string whose only fields are
    those of `PLACEHOLDER_NAME_FIELDS`, without conversions or format specs, giving a name
    with and without a Caller ID name. Returns it; raises `ValueError` saying why not,
    naming an unknown field."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("must be a non-empty name")
    if len(template) > PLACEHOLDER_NAME_MAX:
        raise ValueError(f"must be at most {PLACEHOLDER_NAME_MAX} characters")
    allowed = ", ".join(f"{{{name}}}" for name in PLACEHOLDER_NAME_FIELDS)
    try:
        parsed = [
            (name, spec, conv) for _, name, spec, conv in Formatter().parse(template) if name is not None
        ]
    except ValueError as exc:
        raise ValueError(f"must only use {allowed} as fields (write {{{{ and }}}} for braces)") from exc
    for name, spec, conv in parsed:
        if name not in PLACEHOLDER_NAME_FIELDS:
            shown = f"{{{name}}}" if name else "{}"
            raise ValueError(f"unknown field {shown}; use {allowed}")
        if spec or conv:
            raise ValueError(f"field {{{name}}} takes no format or conversion; write it as {{{name}}}")
    for caller_id in ("Jane Doe", ""):
        if not template_render(
            template, phone_number=_SAMPLE_NUMBER, caller_id=caller_id, direction="Inbound", day=_SAMPLE_DATE
        ):
            if caller_id:
                raise ValueError("renders to an empty name")
            raise ValueError(
                "renders to an empty name when the caller has no Caller ID name; add text or {phoneNumber}"
            )
    return template


def national_number_format(phone_number: str) -> str:
    """An E.164 number in its country's national format ("(415) 555-0199"); the number as
    given when it cannot be read."""
    try:
        parsed = phonenumbers.parse(phone_number, None)
    except phonenumbers.NumberParseException:
        return phone_number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)


def template_render(
    template: str, *, phone_number: str, caller_id: str = "", direction: str = "", day: date | None = None
) -> str:
    """The placeholder name a (validated) template gives, whitespace collapsed.

    Fields: `{callerId}` the caller's Caller ID name (blank when there is none, or when it
    is a carrier label), `{phoneNumber}` the number in E.164, `{nationalNumber}` it in
    national format, `{last4}` its last four digits, `{date}` the day of the call
    (YYYY-MM-DD, blank when unknown), `{direction}` "Inbound" or "Outbound".
    """
    rendered = template.format(
        callerId=caller_id,
        phoneNumber=phone_number,
        nationalNumber=national_number_format(phone_number) if phone_number else "",
        last4=phone_number[-4:],
        date=day.isoformat() if day else "",
        direction=direction,
    )
    return " ".join(rendered.split())


RULE_PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "unknownContactAction",
        SettingKind.CHOICE,
        "When the number matches no contact",
        "What the server does with a call or message from a number no CRM contact has, when "
        "the request names no contact.",
        default=UnknownContactAction.PROMPT,
        choices=tuple(UnknownContactAction.values),
        is_rule=True,
    ),
    Parameter(
        "placeholderNameSource",
        SettingKind.CHOICE,
        "Placeholder contact name",
        "Where an automatically created placeholder contact takes its name from.",
        default=PlaceholderNameSource.CALLER_ID_THEN_DEFAULT,
        choices=tuple(PlaceholderNameSource.values),
        is_rule=True,
    ),
    Parameter(
        "defaultPlaceholderName",
        SettingKind.TEMPLATE,
        "Default placeholder name",
        "Name of a placeholder contact when there is no usable Caller ID name. May use "
        "{callerId}, {phoneNumber} (E.164), {nationalNumber}, {last4}, {date} (YYYY-MM-DD) "
        "and {direction}, e.g. 'Unknown caller {last4}'.",
        default=BUILTIN_PLACEHOLDER_NAME,
        is_rule=True,
    ),
    Parameter(
        "placeholderContactType",
        SettingKind.CONTACT_TYPE,
        "Placeholder contact type",
        "Contact type of placeholder contacts; one of the CRM's contact types (default: the "
        "first one its manifest offers).",
        default="",
        is_rule=True,
    ),
    Parameter(
        "multipleMatchPolicy",
        SettingKind.CHOICE,
        "When several contacts match",
        "Which contact a call is logged against when several have the number. A policy "
        "that cannot decide (missing dates, a tie) leaves it to the user and says why.",
        default=MultipleMatchPolicy.PROMPT,
        choices=tuple(MultipleMatchPolicy.values),
        is_rule=True,
    ),
    # Which traffic may create a placeholder. A call or message they leave out is logged
    # against a contact that exists and otherwise skipped; its decision records
    # {"placeholderRefused": "<condition>", "placeholderRefusedValue": ..., "reason": ...}
    # (conditions: rules.choices.PlaceholderRefusal).
    Parameter(
        "placeholderDirections",
        SettingKind.MULTI_CHOICE,
        "Placeholders for these directions",
        "Calls and messages of these directions may create a placeholder contact (a "
        'message request counts as inbound when any of its messages is). Refused: "direction".',
        default=list(CallDirection.values),
        choices=tuple(CallDirection.values),
        is_rule=True,
    ),
    Parameter(
        "placeholderCallResults",
        SettingKind.MULTI_CHOICE,
        "Placeholders for these call results",
        "Calls with these results may create a placeholder contact; RingCentral's result "
        '(e.g. "Call connected", "Missed", "No Answer") is read as one of these kinds, an '
        'unknown one as "other". Refused: "callResult".',
        default=list(CallResultKind.values),
        choices=tuple(CallResultKind.values),
        is_rule=True,
    ),
    Parameter(
        "placeholderMinDurationSeconds",
        SettingKind.SECONDS,
        "Placeholders for calls at least this long",
        "Calls shorter than this many seconds create no placeholder contact; above 0, a call "
        'whose duration is not known yet ("pending") creates none either. Refused: "minDuration".',
        default=0,
        is_rule=True,
    ),
    Parameter(
        "placeholderMessageTypes",
        SettingKind.MULTI_CHOICE,
        "Placeholders for these message types",
        "Messages of these types may create a placeholder contact (every message of the "
        "request must be of one); by default SMS and voicemail, as before, and not faxes. "
        'Refused: "messageType".',
        default=[MessageKind.SMS.value, MessageKind.VOICEMAIL.value],
        choices=tuple(MessageKind.values),
        is_rule=True,
    ),
)


def _flag(key: str, label: str, default: bool) -> Parameter:
    return Parameter(key, SettingKind.BOOLEAN, label, f"App Connect setting {key}.", default=default)


def _choice(key: str, label: str, choices: tuple[str, ...], default: str) -> Parameter:
    return Parameter(
        key, SettingKind.CHOICE, label, f"App Connect setting {key}.", default=default, choices=choices
    )


def _any(key: str, label: str, kind: str = "any") -> Parameter:
    return Parameter(key, kind, label, f"App Connect setting {key}.")


_EMBED_MODES = ("disabled", "crmOnly", "whitelist", "blacklist")
_POP_MODES = ("disabled", "onFirstRing", "onAnswer")

# App Connect's own settings (its client and its admin pages write them; the server's
# call-log composer reads the addCallLog* ones). Accepted from admins, checked by type.
APP_CONNECT_PARAMETERS: tuple[Parameter, ...] = (
    # call and SMS logging
    _flag("autoLogCall", "Auto-log calls (client)", False),
    _flag("autoLogSMS", "Auto-log SMS (client)", False),
    _flag("autoLogVoicemail", "Auto-log voicemails (client)", False),
    _flag("autoLogInboundFax", "Auto-log received faxes (client)", False),
    _flag("autoLogOutboundFax", "Auto-log sent faxes (client)", False),
    _flag("enableRetroCallLogSync", "Log missed calls later (client)", True),
    _flag("oneTimeLog", "Log once with full call details (client)", False),
    _flag("selectedMessageLog", "Log selected messages only (client)", False),
    _flag("popupLogPageAfterCall", "Open the log form after a call (client)", False),
    _flag("popupLogPageAfterSMS", "Open the log form after a message (client)", False),
    _choice(
        "unknownContactPreference",
        "Client auto-log: unknown contact",
        ("skipLogging", "createNewPlaceholderContact"),
        "skipLogging",
    ),
    _any("newContactType", "Client auto-log: placeholder contact type", SettingKind.TEXT),
    _any("newContactNamePrefix", "Client auto-log: placeholder name prefix", SettingKind.TEXT),
    _choice(
        "multipleContactsPreference",
        "Client auto-log: several contacts",
        ("skipLogging", "firstAlphabetical", "mostRecentActivity", "earliestCreated"),
        "skipLogging",
    ),
    # call log details (read by logs.composer)
    _flag("addCallLogNote", "Call log: agent note", True),
    _flag("addCallSessionId", "Call log: session id", False),
    _flag("addRingCentralUserName", "Call log: RingCentral user name", False),
    _flag("addRingCentralNumber", "Call log: RingCentral number and extension", False),
    _flag("addCallLogSubject", "Call log: summary", True),
    _flag("addCallLogContactNumber", "Call log: contact number", False),
    _flag("addCallLogDateTime", "Call log: date and time", True),
    _flag("addCallLogDuration", "Call log: duration", True),
    _flag("addCallLogResult", "Call log: result", True),
    _flag("addCallLogRecording", "Call log: recording link", True),
    _flag("addCallLogAiNote", "Call log: AI note", True),
    _flag("addCallLogTranscript", "Call log: transcript", True),
    _flag("addCallLogLegs", "Call log: call journey", True),
    _flag("addCallLogRingSenseRecordingTranscript", "Call log: RingSense transcript", True),
    _flag("addCallLogRingSenseRecordingSummary", "Call log: RingSense summary", True),
    _flag("addCallLogRingSenseRecordingAIScore", "Call log: RingSense call score", True),
    _flag("addCallLogRingSenseRecordingBulletedSummary", "Call log: RingSense bulleted summary", True),
    _flag("addCallLogRingSenseRecordingLink", "Call log: RingSense recording link", True),
    Parameter(
        "logDateFormat",
        SettingKind.TEXT,
        "Call log date format",
        "moment.js format of the Date/Time line, e.g. YYYY-MM-DD hh:mm:ss A.",
        default="YYYY-MM-DD hh:mm:ss A",
    ),
    # appearance
    *(
        _flag(f"show{tab}Tab", f"Show the {tab} tab (client)", True)
        for tab in (
            "Chat",
            "Meetings",
            "Text",
            "Fax",
            "Voicemail",
            "Recordings",
            "Contacts",
            "UserReport",
            "Calldown",
            "Appointments",
        )
    ),
    _any("notificationLevelSetting", "Notification levels shown (client)", SettingKind.LIST),
    _any("language", "Language (client)", SettingKind.TEXT),
    _choice(
        "quickAccessButtonSize", "Quick-access button size", ("small", "medium", "large", "xlarge"), "large"
    ),
    _choice(
        "phoneNumberDisplayFormatType",
        "Phone number display format",
        ("national", "international", "e164", "custom"),
        "national",
    ),
    _any("phoneNumberDisplayFormatTemplate", "Custom phone number display template", SettingKind.TEXT),
    # call-pop and contacts
    _choice("openContactPageFromIncomingCall", "Open contact page on inbound calls", _POP_MODES, "disabled"),
    _choice("openContactPageFromOutgoingCall", "Open contact page on outbound calls", _POP_MODES, "disabled"),
    _choice(
        "multiContactMatchBehavior",
        "Call-pop with several matches",
        ("disabled", "openAllMatches", "promptToSelect"),
        "promptToSelect",
    ),
    _flag("openContactPageAfterCreation", "Open a contact after creating it (client)", False),
    _flag("allowExtensionNumberLogging", "Allow logging extension numbers", False),
    # advanced and general
    _flag("developerMode", "Developer mode (client)", False),
    _flag("autoOpenExtension", "Open the extension with the CRM (client)", False),
    _flag("showAiAssistantWidget", "Show the AI assistant (client)", False),
    _flag("autoStartAiAssistant", "Start the AI assistant on calls (client)", False),
    _choice("c2dMatcherType", "Click-to-dial number detector", ("libPhone", "regExp"), "libPhone"),
    _choice("clickToDialEmbedMode", "Click-to-dial on sites", _EMBED_MODES, "crmOnly"),
    _any("clickToDialUrls", "Click-to-dial site list", SettingKind.LIST),
    _choice("quickAccessButtonEmbedMode", "Quick-access button on sites", _EMBED_MODES, "crmOnly"),
    _any("quickAccessButtonUrls", "Quick-access button site list", SettingKind.LIST),
    _any("overridingPhoneNumberFormat", "Alternative phone format 1", SettingKind.TEXT),
    _any("overridingPhoneNumberFormat2", "Alternative phone format 2", SettingKind.TEXT),
    _any("overridingPhoneNumberFormat3", "Alternative phone format 3", SettingKind.TEXT),
    _any("selectedRegion", "RingCentral region (client)", SettingKind.TEXT),
    # structural entries without a `value` of their own
    _any("overridingNumberFormat", "Alternative phone formats (object)"),
    _any("serverSideLogging", "Server-side call logging (object)"),
)

PARAMETERS: dict[str, Parameter] = {p.key: p for p in (*RULE_PARAMETERS, *APP_CONNECT_PARAMETERS)}
RULE_KEYS: tuple[str, ...] = tuple(p.key for p in RULE_PARAMETERS)


def is_known_key(key: str) -> bool:
    """A setting id the server accepts from admins: declared here, or a plugin's."""
    return key in PARAMETERS or key.startswith("plugin_")


def settings_map_errors(
    settings: dict[str, Any], *, allow_unknown_keys: bool, contact_types: frozenset[str]
) -> dict[str, list[str]]:
    """Problems of an App Connect settings map, keyed by `<key>` or `<key>.<field>`.

    Each entry must be an object; `value` must fit the setting's declared kind (contact
    types must be one of `contact_types`); `customizable` and `isRemoved` are booleans.
    Keys not declared here are refused unless `allow_unknown_keys` (users' maps hold the
    client's own keys too).
    """
    errors: dict[str, list[str]] = {}
    for key, entry in settings.items():
        parameter = PARAMETERS.get(key)
        if parameter is None and not (allow_unknown_keys or is_known_key(key)):
            errors[key] = ["unknown setting"]
            continue
        if not isinstance(entry, dict):
            errors[key] = ['must be an object such as {"value": ...}']
            continue
        for flag in ("customizable", "isRemoved"):
            if flag in entry and not isinstance(entry[flag], bool):
                errors[f"{key}.{flag}"] = ["must be true or false"]
        if parameter is None or "value" not in entry:
            continue
        value = entry["value"]
        try:
            parameter.validate(value)
            if parameter.kind == SettingKind.CONTACT_TYPE and value and value not in contact_types:
                raise ValueError(
                    f"must be one of the CRM's contact types: {', '.join(sorted(contact_types))}"
                )
        except ValueError as exc:
            errors[f"{key}.value"] = [str(exc)]
    return errors
