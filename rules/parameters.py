"""Every setting the server knows, declared in code: type, allowed values, default, label.

Admin rows (`rules.models.RuleSetting`) override the defaults per site and per RingCentral
account; users' own values count only where the admin left a key customizable. Nothing
but `rules.selectors` reads those rows. The five rule settings drive the automatic flow;
the others are App Connect's own keys, accepted so an App Connect admin page can push
them, and validated by type.
"""

from __future__ import annotations

from dataclasses import dataclass
from string import Formatter
from typing import Any

from django.db import models

# Built-in placeholder name when neither the user nor an admin set one.
BUILTIN_PLACEHOLDER_NAME = "Unknown caller"
PLACEHOLDER_NAME_FIELDS = ("phoneNumber", "last4")
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


class SettingKind(models.TextChoices):
    BOOLEAN = "boolean"
    CHOICE = "choice"
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


def template_validate(template: Any) -> str:
    """Check a placeholder-name template renders: a non-empty string whose only fields
    are `{phoneNumber}` and `{last4}`. Returns it; raises `ValueError` otherwise."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("must be a non-empty name")
    if len(template) > PLACEHOLDER_NAME_MAX:
        raise ValueError(f"must be at most {PLACEHOLDER_NAME_MAX} characters")
    try:
        fields = [name for _, name, spec, conv in Formatter().parse(template) if name is not None]
        rendered = template.format(phoneNumber="+14155550100", last4="0100")
    except (ValueError, IndexError, KeyError) as exc:
        raise ValueError(
            "must only use {phoneNumber} and {last4} as fields (write {{ and }} for braces)"
        ) from exc
    unknown = sorted(set(fields) - set(PLACEHOLDER_NAME_FIELDS))
    if unknown:
        raise ValueError(f"unknown field {{{unknown[0]}}}; use {{phoneNumber}} or {{last4}}")
    if not rendered.strip():
        raise ValueError("renders to an empty name")
    return template


def template_render(template: str, *, phone_number: str) -> str:
    """The placeholder name a (validated) template gives for `phone_number` (E.164)."""
    return template.format(phoneNumber=phone_number, last4=phone_number[-4:]).strip()


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
        "{phoneNumber} (E.164) and {last4}, e.g. 'Unknown caller {last4}'.",
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
