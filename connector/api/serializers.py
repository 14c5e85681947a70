"""Input and output serializers of App Connect's HTTP API.

Inputs validate everything a route needs before any write or CRM call. App Connect's
objects are open (a call-log record carries many RingCentral fields we only pass on), so
`OpenObjectSerializer` checks the declared fields and keeps the rest as sent. Outputs omit
keys whose value is None, as the peer's JSON does.

Every serializer here builds its bound fields once per class (`CachedFieldsSerializer`):
DRF deep-copies the declared fields for each instance, which profiling showed to be the
most expensive single step of POST /callLog. Our fields keep no per-request state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.utils.serializer_helpers import BindingDict

from connector.utils import InvalidPhoneNumber, phone_number_normalize
from logs.composer import ISO_DATE_TIME
from rules.parameters import PARAMETERS, PLACEHOLDER_NAME_MAX, Parameter, SettingKind
from rules.services import number_without_e164

# --- fields ------------------------------------------------------------------------------

INT64_MAX = 2**63 - 1


class CachedFieldsSerializer(serializers.Serializer):
    """A Serializer whose bound fields are built on first use and shared by every instance.

    Safe because our fields are stateless while validating and nothing here uses the
    serializer context. The fields are bound to a pristine instance of their own (not
    partial, no context), never to whichever instance came first: a schema generator
    builds PATCH serializers as partial, which would make every field optional.
    """

    _shared_fields: ClassVar[BindingDict | None] = None

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        # `from` is a Python keyword: such fields are declared as `from_`.
        if "from_" in fields:
            fields["from"] = fields.pop("from_")
        return fields

    @property
    def fields(self) -> BindingDict:
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            pristine = cls.__new__(cls)
            serializers.Serializer.__init__(pristine)
            shared = BindingDict(pristine)
            for key, value in pristine.get_fields().items():
                shared[key] = value
            cls._shared_fields = shared
        return shared


class IdField(serializers.Field):
    """An identifier sent as a string or an integer (CRMs use both); kept as a string.

    `allow_blank=False` refuses an empty string (the schema then says `minLength: 1`).
    """

    default_error_messages = {
        "invalid": "Must be a string or an integer.",
        "blank": "This field may not be blank.",
        "max_length": "Ensure this has at most {max_length} characters.",
    }

    def __init__(self, *, max_length: int = 255, allow_blank: bool = True, **kwargs: Any) -> None:
        self.max_length = max_length
        self.allow_blank = allow_blank
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        if isinstance(data, int):
            if not -INT64_MAX - 1 <= data <= INT64_MAX:
                self.fail("invalid")
            return str(data)
        if len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        if not data and not self.allow_blank:
            self.fail("blank")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string (no silent coercion of numbers)."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class PhoneNumberField(StrictCharField):
    """A phone number in any common format, sent as a string; returned in E.164."""

    default_error_messages = {"invalid_phone": "{reason}"}

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return phone_number_normalize(text)
        except InvalidPhoneNumber as exc:
            self.fail("invalid_phone", reason=str(exc))
            raise  # unreachable: fail() raises


class ObjectField(serializers.DictField):
    """A JSON object passed on as is (e.g. `additionalSubmission`)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return dict(data)


class BooleanFlagField(serializers.BooleanField):
    """A query flag: `true`/`false` (any case), `1`/`0`."""


class OpenObjectSerializer(CachedFieldsSerializer):
    """Validates the declared fields and keeps every other key exactly as sent."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        validated = super().to_internal_value(data)
        return {**data, **validated}


def text(**kwargs: Any) -> StrictCharField:
    """An optional string field that may be blank."""
    kwargs.setdefault("required", False)
    kwargs.setdefault("allow_blank", True)
    kwargs.setdefault("trim_whitespace", False)
    return StrictCharField(**kwargs)


# --- inputs ------------------------------------------------------------------------------


@extend_schema_serializer(description="Logging in to a CRM that uses API keys.")
class ApiKeyLoginInputSerializer(CachedFieldsSerializer):
    platform = StrictCharField(
        max_length=64,
        help_text="The CRM platform to log in to, as named in the manifest (for example builtin).",
    )
    apiKey = text(
        max_length=2000,
        help_text=(
            "The user's API key for the CRM. The CRM checks it; the server keeps it encrypted and never "
            "returns it."
        ),
    )
    hostname = text(max_length=255, help_text="The CRM's host name, for CRMs with one address per company.")
    proxyId = text(
        max_length=255,
        help_text="The id of a proxy connector configuration, for CRMs reached through a proxy connector.",
    )
    connectorId = text(
        max_length=255, help_text="Accepted for compatibility with App Connect's client; not used."
    )
    additionalInfo = ObjectField(
        required=False,
        help_text=(
            "Extra login fields the platform's manifest asks for (for example a user name or a company id). "
            "An apiKey given here is used when the apiKey field is empty."
        ),
    )
    devRcAccountId = IdField(
        required=False,
        max_length=64,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )
    isPrivate = serializers.BooleanField(
        required=False, help_text="Accepted for compatibility with App Connect's client; not used."
    )
    rcAccessToken = text(
        max_length=4000,
        help_text=(
            "The user's RingCentral access token (the X-RC-Access-Token header is preferred). It tells which"
            " RingCentral account the user belongs to. The CRM user is then linked to that account, whose "
            "auto-logging rules apply."
        ),
    )


class OAuthCallbackQuerySerializer(CachedFieldsSerializer):
    """GET /oauth-callback's query (appconnect-api.md §2.5). Everything is optional here:
    the view answers the peer's texts for a missing `callbackUri` or platform."""

    callbackUri = text(
        max_length=4000,
        help_text=(
            "The full address the CRM sent the browser back to after the user consented, with its code and "
            "state."
        ),
    )
    code = text(max_length=2000, help_text="The authorization code, when it is not in callbackUri.")
    state = text(
        max_length=2000,
        help_text=(
            "The OAuth state, when it is not in callbackUri: a query string naming the platform "
            "(platform=pipedrive) and, for some CRMs, the hostname."
        ),
    )
    hostname = text(max_length=255, help_text="The CRM's host name, for CRMs with one address per company.")
    tokenUrl = text(
        max_length=2000,
        help_text="The CRM's token address, for CRMs whose OAuth addresses differ per company.",
    )
    apiUrl = text(
        max_length=2000, help_text="The CRM's API address, for CRMs whose API address differs per company."
    )
    username = text(
        max_length=255, help_text="The CRM user name, for CRMs that need it to complete the login."
    )
    proxyId = text(
        max_length=255,
        help_text="The id of a proxy connector configuration, for CRMs reached through a proxy connector.",
    )
    rcAccountId = text(
        max_length=64,
        help_text=(
            "App Connect's hashed RingCentral account id. The user is linked to this account only when the "
            "account's own OAuth app was used, or when a RingCentral access token of that account comes with"
            " the request."
        ),
    )
    rcExtensionId = text(
        max_length=64, help_text="Accepted for compatibility with App Connect's client; not used."
    )
    userEmail = text(
        max_length=320, help_text="The user's email address, for CRMs that need it to complete the login."
    )
    rcAccessToken = text(
        max_length=4000,
        help_text=(
            "The user's RingCentral access token (the X-RC-Access-Token header is preferred). It tells which"
            " RingCentral account the user belongs to."
        ),
    )


class ContactLookupQuerySerializer(CachedFieldsSerializer):
    phoneNumber = serializers.CharField(
        max_length=64,
        trim_whitespace=False,
        help_text=(
            "The number to look up, in any common format (E.164 is best; encode its + as %2B). With "
            "isExtension, an extension number (digits only)."
        ),
    )
    overridingFormat = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=500,
        help_text=(
            "Extra number formats to search with, comma-separated, for CRMs that store numbers in a local "
            "format (for example (***) ***-****)."
        ),
    )
    isExtension = BooleanFlagField(
        required=False,
        default=False,
        help_text="true when phoneNumber is an extension number rather than a phone number.",
    )
    isForceRefreshAccountData = BooleanFlagField(
        required=False,
        default=False,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        raw = attrs["phoneNumber"]
        # An unencoded "+" arrives as a leading space; the peer repairs it the same way.
        if raw.startswith(" "):
            raw = "+" + raw[1:]
        if attrs["isExtension"]:
            if not raw.strip().isdigit():
                raise serializers.ValidationError({"phoneNumber": ["An extension number is digits only."]})
            attrs["phoneNumber"] = raw.strip()
            return attrs
        try:
            attrs["phoneNumber"] = phone_number_normalize(raw)
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError({"phoneNumber": [str(exc)]}) from exc
        return attrs


class ContactSearchQuerySerializer(CachedFieldsSerializer):
    name = serializers.CharField(
        max_length=255, allow_blank=True, help_text="The name, or part of it, to search for."
    )


@extend_schema_serializer(description="A contact to create in the CRM.")
class ContactCreateInputSerializer(CachedFieldsSerializer):
    phoneNumber = PhoneNumberField(
        max_length=64, help_text="The new contact's phone number, in any common format."
    )
    newContactName = StrictCharField(max_length=255, help_text="The new contact's name.")
    newContactType = text(
        max_length=64,
        help_text=(
            "The CRM record type to create, one of the contactTypes of the platform's manifest (default: the"
            " first of them)."
        ),
    )
    additionalSubmission = ObjectField(
        required=False,
        help_text=(
            "Values of the extra fields the platform's manifest defines for this form, passed to the CRM as "
            "sent."
        ),
    )


@extend_schema_serializer(
    description=(
        "A party to a call: number, extension and name. Other keys are accepted and passed on to the CRM."
    )
)
class PartySerializer(OpenObjectSerializer):
    phoneNumber = text(max_length=64, allow_null=True, help_text="The party's phone number.")
    extensionNumber = text(
        max_length=32,
        allow_null=True,
        help_text="The party's extension number, for a party inside the RingCentral account.",
    )
    name = text(
        max_length=255,
        allow_null=True,
        help_text="The party's name as RingCentral knows it (for example the caller ID name).",
    )


@extend_schema_serializer(description="A recording or voicemail: its RingCentral id and links.")
class LinkSerializer(OpenObjectSerializer):
    """A recording or voicemail reference: `{id?, uri?, link?}`."""

    id = IdField(required=False, allow_null=True, help_text="RingCentral's id of the recording or voicemail.")
    uri = text(max_length=2000, allow_null=True, help_text="RingCentral's API address of the media.")
    link = text(max_length=2000, allow_null=True, help_text="A link a person can open to play the media.")


@extend_schema_serializer(
    description="A message attachment: a voicemail recording, a fax document, or an MMS image or video."
)
class AttachmentSerializer(OpenObjectSerializer):
    """A message attachment (recording, fax document, MMS image or video)."""

    id = IdField(required=False, allow_null=True, help_text="RingCentral's id of the attachment.")
    type = text(
        max_length=64,
        allow_null=True,
        help_text=(
            "RingCentral's attachment type (for example AudioRecording, RenderedDocument, MmsAttachment)."
        ),
    )
    uri = text(max_length=2000, allow_null=True, help_text="RingCentral's API address of the attachment.")
    link = text(
        max_length=2000, allow_null=True, help_text="A link a person can open to see or play the attachment."
    )
    contentType = text(
        max_length=200, allow_null=True, help_text="The attachment's media type (for example image/png)."
    )


@extend_schema_serializer(
    description="One leg of the call's journey: a transfer, a forward, or a ring group member answering."
)
class LegSerializer(OpenObjectSerializer):
    """One leg of a call's journey."""

    from_ = PartySerializer(required=False, allow_null=True, help_text="Who this leg came from.")
    to = PartySerializer(required=False, allow_null=True, help_text="Who this leg went to.")
    direction = text(max_length=16, allow_null=True, help_text="Inbound or Outbound.")
    legType = text(
        max_length=64,
        allow_null=True,
        help_text="RingCentral's leg type (for example Accept, FindMe, Voicemail).",
    )
    duration = serializers.JSONField(
        required=False, allow_null=True, help_text="The leg's length in seconds."
    )


@extend_schema_field(
    {
        "oneOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}],
        "nullable": True,
    }
)
class StartTimeField(serializers.JSONField):
    """A call's start: an ISO 8601 date-time or epoch milliseconds. A value outside what a
    date can hold is passed to the CRM as sent and recorded as unknown."""

    def to_internal_value(self, data: Any) -> Any:
        if (
            data is None
            or (isinstance(data, str) and ISO_DATE_TIME.fullmatch(data))
            or (isinstance(data, int) and not isinstance(data, bool) and data >= 0)
        ):
            return data
        raise serializers.ValidationError("Must be an ISO 8601 date-time or epoch milliseconds.")


@extend_schema_field(
    {"oneOf": [{"type": "number", "minimum": 0}, {"type": "string", "enum": ["pending"]}], "nullable": True}
)
class DurationField(serializers.JSONField):
    """A call's duration in seconds, or "pending" while server-side logging waits for it."""

    def to_internal_value(self, data: Any) -> Any:
        if (
            data is None
            or data == "pending"
            or (isinstance(data, (int, float)) and not isinstance(data, bool) and data >= 0)
        ):
            return data
        raise serializers.ValidationError('Must be a number of seconds or "pending".')


@extend_schema_serializer(
    description=(
        "RingCentral's record of a call. Other keys RingCentral sends are accepted and passed on to the CRM."
    )
)
class CallLogRecordSerializer(OpenObjectSerializer):
    sessionId = IdField(
        max_length=128,
        allow_blank=False,
        help_text=(
            "RingCentral's session id of the call. With the extension identity it names the log: the same "
            "call cannot be logged twice."
        ),
    )
    id = IdField(required=False, max_length=128, help_text="RingCentral's call-log record id.")
    telephonySessionId = IdField(
        required=False,
        max_length=128,
        allow_null=True,
        help_text="RingCentral's telephony session id of the call.",
    )
    direction = serializers.ChoiceField(
        choices=("Inbound", "Outbound"),
        required=False,
        help_text=(
            "Inbound or Outbound. It says whose number names the contact: the caller (from) of an inbound "
            "call, the called party (to) of an outbound one."
        ),
    )
    startTime = StartTimeField(
        required=False,
        allow_null=True,
        help_text="When the call started: an ISO 8601 date-time, or milliseconds since 1970-01-01 UTC.",
    )
    duration = DurationField(
        required=False,
        allow_null=True,
        help_text=(
            'The call\'s length in seconds, or "pending" while server-side call logging does not know it yet.'
        ),
    )
    result = text(
        max_length=64,
        allow_null=True,
        help_text="How the call ended, as RingCentral reports it (for example Accepted, Missed, Voicemail).",
    )
    customSubject = text(
        max_length=500,
        allow_null=True,
        help_text="A subject for the CRM activity, instead of the one the server writes.",
    )
    from_ = PartySerializer(
        required=False,
        allow_null=True,
        help_text=(
            "The calling party. A caller who withheld their number is sent without phoneNumber (for example "
            "with the name Anonymous)."
        ),
    )
    to = PartySerializer(required=False, allow_null=True, help_text="The called party.")
    legs = serializers.ListField(
        child=LegSerializer(),
        required=False,
        allow_null=True,
        help_text="The call's legs (transfers, forwards), written in the log as the call's journey.",
    )
    recording = LinkSerializer(
        required=False, allow_null=True, help_text="The call's recording, when there is one."
    )
    voicemail = LinkSerializer(
        required=False, allow_null=True, help_text="The voicemail the caller left, when there is one."
    )


def _e164_or_blank(raw: str) -> str:
    """The other party's number in E.164; "" when there is none, or when it is one real
    traffic carries without being a possible number (`number_without_e164`: a withheld
    caller's marker, a short code, an emergency number). Raises `InvalidPhoneNumber`
    for anything else."""
    if not raw:
        return ""
    try:
        return phone_number_normalize(raw)
    except InvalidPhoneNumber:
        if number_without_e164(raw):
            return ""
        raise


def _no_contact_when_zero(serializer: serializers.Serializer, attrs: dict[str, Any]) -> None:
    # App Connect treats a numeric 0 contactId as no contact at all.
    raw = serializer.initial_data.get("contactId") if isinstance(serializer.initial_data, Mapping) else None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and raw == 0:
        attrs["contactId"] = None


_CALL_EXTRAS = (
    "aiNote",
    "transcript",
    "voicemailLink",
    "voicemailMessageId",
    "ringSenseTranscript",
    "ringSenseSummary",
    "ringSenseBulletedSummary",
    "ringSenseLink",
)


class LogContactInputSerializer(CachedFieldsSerializer):
    """The fields a call log and a message log name their contact with, the same for both;
    `contactId` 0 counts as none, as App Connect reads it."""

    contactId = IdField(
        required=False,
        allow_null=True,
        help_text=(
            "The CRM contact to log against. Leave it out (or send 0) to let the server's auto-logging rules"
            " decide: log against the contact found by number, create a placeholder contact, or leave the "
            "decision to the user, as the rules say."
        ),
    )
    contactType = text(
        max_length=64,
        allow_null=True,
        help_text="The CRM record type of the contact, one of the contactTypes of the platform's manifest.",
    )
    contactName = text(
        max_length=255, allow_null=True, help_text="The contact's name, as shown in the CRM activity."
    )
    additionalSubmission = ObjectField(
        required=False,
        allow_null=True,
        help_text=(
            "Values of the extra fields the platform's manifest defines for this form, passed to the CRM as "
            "sent."
        ),
    )
    overridingFormat = serializers.JSONField(
        required=False,
        allow_null=True,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _no_contact_when_zero(self, attrs)
        return attrs


class CallExtrasSerializer(CachedFieldsSerializer):
    """The AI and RingSense texts a call's log may carry, the same on create and update;
    the CRM gets them as `extras`."""

    aiNote = text(max_length=100_000, allow_null=True, help_text="An AI-written summary of the call.")
    transcript = text(max_length=1_000_000, allow_null=True, help_text="The call's transcript.")
    voicemailLink = text(
        max_length=2000, allow_null=True, help_text="A link to the voicemail left by the caller."
    )
    voicemailMessageId = IdField(
        required=False, allow_null=True, help_text="RingCentral's message id of the voicemail."
    )
    ringSenseTranscript = text(
        max_length=1_000_000, allow_null=True, help_text="RingSense's transcript of the call."
    )
    ringSenseSummary = text(max_length=100_000, allow_null=True, help_text="RingSense's summary of the call.")
    ringSenseBulletedSummary = text(
        max_length=100_000, allow_null=True, help_text="RingSense's summary of the call as a bulleted list."
    )
    ringSenseLink = text(max_length=2000, allow_null=True, help_text="A link to the call in RingSense.")
    ringSenseAIScore = ObjectField(
        required=False, allow_null=True, help_text="RingSense's scores of the call."
    )

    extras_fields = (*_CALL_EXTRAS, "ringSenseAIScore")


@extend_schema_serializer(description="A call to log in the CRM.")
class CallLogCreateInputSerializer(CallExtrasSerializer, LogContactInputSerializer):
    logInfo = CallLogRecordSerializer(help_text="RingCentral's record of the call.")
    note = text(max_length=100_000, allow_null=True, help_text="The user's note on the call.")
    extensionNumber = IdField(
        required=False,
        max_length=32,
        help_text=(
            "The RingCentral extension number of the user who logs. With hashedExtensionId it tells apart "
            "logs of the same call made by different extensions."
        ),
    )
    hashedExtensionId = text(
        max_length=64, help_text="App Connect's hashed RingCentral extension id of the user who logs."
    )
    rcExtensionId = IdField(
        required=False,
        max_length=64,
        help_text="The RingCentral extension id; the server hashes it when hashedExtensionId is not given.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        log_info = attrs["logInfo"]
        party_key = "from" if log_info.get("direction") == "Inbound" else "to"
        party = log_info.get(party_key)
        if party is None:
            # A withheld caller is a party without a number ({"name": "Anonymous"}); no
            # party at all is not a call record. Named as the number, as it always was.
            message = "The other party is required (a withheld caller: without a phoneNumber)."
            raise serializers.ValidationError({"logInfo": {party_key: {"phoneNumber": [message]}}})
        # A withheld caller ({"name": "Anonymous"}, "anonymous"), a short code or an
        # emergency number has no E.164 number: accepted, and left to the rules.
        raw = party.get("phoneNumber") or party.get("extensionNumber") or ""
        try:
            attrs["phone_number"] = _e164_or_blank(party.get("phoneNumber") or "")
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError({"logInfo": {party_key: {"phoneNumber": [str(exc)]}}}) from exc
        attrs["raw_number"] = str(raw)
        return attrs


class AccountContextQuerySerializer(CachedFieldsSerializer):
    """`rcAccountId`: App Connect's hashed RingCentral account id, naming whose admin
    settings apply."""

    rcAccountId = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="App Connect's hashed RingCentral account id: whose admin settings apply.",
    )


class CallLogLookupQuerySerializer(CachedFieldsSerializer):
    sessionIds = serializers.CharField(
        max_length=2000,
        help_text="RingCentral session ids of the calls, comma-separated. Only the first 5 are checked.",
    )
    extensionNumber = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="The user's extension number, to find the logs that extension made.",
    )
    hashedExtensionId = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text=(
            "App Connect's hashed RingCentral extension id of the user, to find the logs that extension made."
        ),
    )
    requireDetails = BooleanFlagField(
        required=False,
        default=False,
        help_text="true to also read each log found from the CRM (its subject, note and other details).",
    )


@extend_schema_serializer(description="Changes to a logged call. Only the fields sent change in the CRM.")
class CallLogUpdateInputSerializer(CallExtrasSerializer):
    sessionId = IdField(
        max_length=128, allow_blank=False, help_text="RingCentral's session id of the logged call."
    )
    extensionNumber = IdField(
        required=False, max_length=32, help_text="The extension number of the user whose log to update."
    )
    hashedExtensionId = text(
        max_length=64,
        help_text="App Connect's hashed RingCentral extension id of the user whose log to update.",
    )
    rcExtensionId = IdField(
        required=False,
        max_length=64,
        help_text="The RingCentral extension id; the server hashes it when hashedExtensionId is not given.",
    )
    accountId = IdField(
        required=False,
        max_length=64,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )
    subject = text(max_length=500, allow_null=True, help_text="A new subject for the CRM activity.")
    note = text(
        max_length=100_000,
        allow_null=True,
        help_text="The user's note on the call, replacing the one logged.",
    )
    startTime = StartTimeField(
        required=False,
        allow_null=True,
        help_text="When the call started: an ISO 8601 date-time, or milliseconds since 1970-01-01 UTC.",
    )
    duration = DurationField(
        required=False,
        allow_null=True,
        help_text=(
            'The call\'s length in seconds, or "pending" while server-side call logging does not know it yet.'
        ),
    )
    result = text(
        max_length=64,
        allow_null=True,
        help_text="How the call ended, as RingCentral reports it (for example Accepted, Missed, Voicemail).",
    )
    direction = serializers.ChoiceField(
        choices=("Inbound", "Outbound"), required=False, allow_null=True, help_text="Inbound or Outbound."
    )
    from_ = PartySerializer(required=False, allow_null=True, help_text="The calling party.")
    to = PartySerializer(required=False, allow_null=True, help_text="The called party.")
    legs = serializers.ListField(
        child=LegSerializer(),
        required=False,
        allow_null=True,
        help_text="The call's legs (transfers, forwards), written in the log as the call's journey.",
    )
    recordingLink = text(
        max_length=2000, allow_null=True, help_text="A link to the call's recording, once RingCentral has it."
    )
    recordingDownloadLink = text(
        max_length=2000,
        allow_null=True,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )
    additionalSubmission = ObjectField(
        required=False,
        allow_null=True,
        help_text=(
            "Values of the extra fields the platform's manifest defines for this form, passed to the CRM as "
            "sent."
        ),
    )
    telephonySessionId = IdField(
        required=False,
        max_length=128,
        help_text="Accepted for compatibility with App Connect's client; not used.",
    )


@extend_schema_serializer(description="A note to keep until the server-side log of the call arrives.")
class CallNoteCacheInputSerializer(CachedFieldsSerializer):
    sessionId = IdField(
        max_length=128,
        allow_blank=False,
        help_text="RingCentral's session id of the call the note belongs to.",
    )
    note = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        max_length=100_000,
        help_text=(
            "The note. It is written into the log when the server-side log of this call arrives without a "
            "note of its own."
        ),
    )


@extend_schema_serializer(
    description=(
        "One RingCentral message: an SMS, MMS, fax or voicemail. Other keys are accepted and passed on to "
        "the CRM."
    )
)
class MessageSerializer(OpenObjectSerializer):
    id = IdField(
        max_length=100, help_text="RingCentral's message id. A message already logged is not logged again."
    )
    type = text(
        max_length=32, help_text="SMS (an MMS is an SMS with attachments), Fax, VoiceMail, Pager or Text."
    )
    direction = serializers.ChoiceField(
        choices=("Inbound", "Outbound"), required=False, help_text="Inbound or Outbound."
    )
    subject = text(max_length=100_000, allow_null=True, help_text="The message's text.")
    creationTime = text(
        max_length=64, allow_null=True, help_text="When the message was sent or received (ISO 8601)."
    )
    attachments = serializers.ListField(
        child=AttachmentSerializer(), required=False, allow_null=True, help_text="The message's attachments."
    )
    conversationId = IdField(
        required=False, max_length=128, allow_null=True, help_text="RingCentral's conversation id."
    )
    from_ = PartySerializer(required=False, allow_null=True, help_text="The sender.")
    to = serializers.ListField(
        child=PartySerializer(), required=False, allow_null=True, help_text="The recipients."
    )


@extend_schema_serializer(description="An outside party of the conversation.")
class CorrespondentSerializer(OpenObjectSerializer):
    phoneNumber = StrictCharField(
        max_length=64,
        help_text=(
            "The party's phone number. The first correspondent's number is the one the contact is found by."
        ),
    )
    name = text(max_length=255, allow_null=True, help_text="The party's name.")


@extend_schema_serializer(description="A person, by name.")
class NamedSerializer(OpenObjectSerializer):
    name = text(max_length=255, allow_null=True, help_text="The person's name.")


@extend_schema_serializer(description="A conversation's messages to log, with its outside parties.")
class MessageConversationSerializer(OpenObjectSerializer):
    messages = serializers.ListField(
        child=MessageSerializer(),
        max_length=1000,
        help_text=(
            "The messages, newest first as RingCentral lists them; at most 1000. Messages already logged are"
            " skipped."
        ),
    )
    correspondents = serializers.ListField(
        child=CorrespondentSerializer(),
        min_length=1,
        help_text="The outside parties of the conversation; at least one.",
    )
    conversationId = IdField(
        required=False, max_length=128, allow_null=True, help_text="RingCentral's conversation id."
    )
    conversationLogId = IdField(
        required=False,
        max_length=150,
        allow_null=True,
        help_text=(
            "The client's key for one CRM activity (the client uses the conversation id and the day): "
            "messages with the same key are added to the same activity."
        ),
    )
    owner = NamedSerializer(
        required=False,
        allow_null=True,
        help_text=(
            "For a shared SMS inbox: who owns the conversation. A name here logs the whole conversation as "
            "one activity."
        ),
    )
    assignee = NamedSerializer(
        required=False,
        allow_null=True,
        help_text="For a shared SMS inbox: who the conversation is assigned to.",
    )
    rcAccessToken = text(
        max_length=4000,
        allow_null=True,
        help_text=(
            "A RingCentral access token, used only to build download links for fax and MMS attachments."
        ),
    )


@extend_schema_serializer(description="Messages of one conversation to log in the CRM.")
class MessageLogCreateInputSerializer(LogContactInputSerializer):
    logInfo = MessageConversationSerializer(help_text="The conversation's messages and parties.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        first = attrs["logInfo"]["correspondents"][0]["phoneNumber"]
        # An SMS short code, or a withheld sender, is left to the rules.
        try:
            attrs["phone_number"] = _e164_or_blank(first)
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(
                {"logInfo": {"correspondents": {"0": {"phoneNumber": [str(exc)]}}}}
            ) from exc
        attrs["raw_number"] = first
        return attrs


class StrictBooleanField(serializers.BooleanField):
    """A JSON true or false, nothing else ("yes" or 1 are refused)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


@extend_schema_serializer(description="One setting: its value, and whether users may change it.")
class UserSettingSerializer(OpenObjectSerializer):
    """One entry of a settings map (App Connect's `UserSetting`)."""

    value = serializers.JSONField(
        required=False, allow_null=True, help_text="The setting's value; its type depends on the setting."
    )
    customizable = StrictBooleanField(
        required=False,
        help_text="Whether users may change the value. In admin settings, false enforces the admin's value.",
    )
    isCustomizable = StrictBooleanField(
        required=False, help_text="Older name of customizable, accepted for compatibility."
    )
    isRemoved = StrictBooleanField(
        required=False, help_text="In admin settings: true hides the setting from users."
    )
    defaultValue = serializers.JSONField(
        required=False, allow_null=True, help_text="The value that applies when none is set."
    )
    options = serializers.ListField(
        child=serializers.JSONField(allow_null=True),
        required=False,
        help_text="The values to choose from, for a setting with choices.",
    )


class SettingsMapField(serializers.DictField):
    """A settings map: each key names a setting, each value is a `UserSetting` object."""

    child = UserSettingSerializer()


@extend_schema_serializer(description="Changes to the user's own settings.")
class UserSettingsUpdateInputSerializer(CachedFieldsSerializer):
    userSettings = SettingsMapField(
        required=False,
        default=dict,
        help_text=(
            "Settings to store, keyed by setting id; each entry replaces the stored entry of that id. The "
            "values of the settings this server knows (the auto-logging rules among them) are checked; other"
            " settings are stored as sent."
        ),
    )
    settingKeysToRemove = serializers.ListField(
        child=StrictCharField(max_length=200),
        required=False,
        default=list,
        help_text="Setting ids whose stored entry is removed.",
    )


# A field of a placeholder-name template, or an escaped brace.
_TEMPLATE_PART = r"\{phoneNumber\}|\{last4\}|\{\{|\}\}"


def _value_schema(parameter: Parameter, contact_types: list[str]) -> dict[str, Any]:
    """The JSON schema of one setting's `value`, as `Parameter.validate` checks it."""
    kind = parameter.kind
    if kind == SettingKind.BOOLEAN:
        return {"type": "boolean"}
    if kind == SettingKind.CHOICE:
        return {"type": "string", "enum": list(parameter.choices)}
    if kind == SettingKind.TEMPLATE:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": PLACEHOLDER_NAME_MAX,
            # a visible character or a field first, then text and {phoneNumber}/{last4} fields
            "pattern": rf"^\s*(?:[^{{}}\s]|{_TEMPLATE_PART})(?:[^{{}}]|{_TEMPLATE_PART})*$",
        }
    if kind == SettingKind.CONTACT_TYPE:
        return {"type": "string", "enum": ["", *contact_types]}
    if kind == SettingKind.TEXT:
        return {"type": "string", "maxLength": 200}
    if kind == SettingKind.LIST:
        return {"oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string", "enum": [""]}]}
    if kind == SettingKind.OBJECT:
        return {"type": "object"}
    return {}


def _entry_schema(value: dict[str, Any], *, description: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            "value": value,
            "customizable": {"type": "boolean"},
            "isCustomizable": {"type": "boolean"},
            "isRemoved": {"type": "boolean"},
            "defaultValue": {},
            "options": {"type": "array", "items": {}},
        },
        "additionalProperties": True,
    }


def settings_map_schema(*, closed: bool) -> dict[str, Any]:
    """A settings map's schema: every known setting typed; others open (a user's map) or
    refused (an admin's, `closed`). Plugin keys (`plugin_*`) are accepted too, which an
    OpenAPI 3.0 schema cannot state."""
    from connector.crm.registry import crm_registry

    contact_types = sorted(
        {value for name in crm_registry.platforms() for value in crm_registry.get(name).contact_type_values()}
    )
    properties = {
        key: _entry_schema(_value_schema(p, contact_types), description=_setting_description(p))
        for key, p in PARAMETERS.items()
    }
    other = (
        "Another setting (of the CRM's manifest, or of App Connect's client), stored and returned as sent."
    )
    return {
        "type": "object",
        "description": (
            "Settings keyed by setting id, each with its value and whether users may change it."
            if closed
            else "Settings keyed by setting id, each with its value, whether users may change it, its "
            "default and its choices."
        ),
        "properties": properties,
        "additionalProperties": False if closed else _entry_schema({}, description=other),
    }


def _setting_description(parameter: Parameter) -> str:
    """A setting as /api/docs/ shows it: its admin label, then what it does. Settings the
    server only stores for App Connect's client say so instead of naming themselves."""
    if parameter.description.startswith("App Connect setting "):
        return f"{parameter.label}. A setting of App Connect's client; this server stores and returns it."
    return f"{parameter.label}. {parameter.description}"


class AdminSettingsField(serializers.Field):
    """`adminSettings`: exactly `{"userSettings": {...}}`, a map of known settings."""

    default_error_messages = {"invalid": "Must be an object with userSettings only."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self.fail("invalid")
        unknown = sorted(set(data) - {"userSettings"})
        if unknown:
            raise serializers.ValidationError(
                {key: ["Not supported by this server; only userSettings is."] for key in unknown}
            )
        if "userSettings" not in data:
            raise serializers.ValidationError({"userSettings": ["This field is required."]})
        try:
            return {"userSettings": _ADMIN_MAP.run_validation(data["userSettings"])}
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({"userSettings": exc.detail}) from exc

    def to_representation(self, value: Any) -> Any:
        return value


_ADMIN_MAP = SettingsMapField()


@extend_schema_serializer(
    description="The settings an administrator sets for every user of the RingCentral account."
)
class AdminSettingsUpdateInputSerializer(CachedFieldsSerializer):
    adminSettings = AdminSettingsField(
        help_text=(
            "The account's settings: an object with userSettings only, a map of the settings this server "
            "knows, keyed by setting id. It replaces the account's settings as a whole."
        )
    )


@extend_schema_serializer(description="Server-side call logging's options for the account.")
class ServerSideLoggingOptionsSerializer(CachedFieldsSerializer):
    enabled = serializers.BooleanField(help_text="Log every call of the account from the server.")
    ownerMode = serializers.ChoiceField(
        choices=("admin", "agent"),
        required=False,
        default="admin",
        help_text="Whose CRM identity the logs carry: the admin's, or the agent's where mapped.",
    )
    blockedNumbers = serializers.ListField(
        child=StrictCharField(max_length=32),
        required=False,
        default=list,
        max_length=1000,
        help_text="E.164 and extension numbers whose calls are never logged.",
    )


@extend_schema_field({"type": "object", "additionalProperties": False, "maxProperties": 0})
class NoAdditionalFieldsField(ObjectField):
    """`additionalFieldValues` of a connector that declares no additional fields: `{}`."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        values = super().to_internal_value(data)
        if values:
            names = ", ".join(sorted(str(name) for name in values))
            raise serializers.ValidationError(f"This connector has no additional fields: {names}.")
        return values


@extend_schema_serializer(description="Server-side call logging settings to apply to the account.")
class ServerLoggingSettingsInputSerializer(CachedFieldsSerializer):
    additionalFieldValues = NoAdditionalFieldsField(
        help_text="Values of the connector's additional server-side logging fields; none are declared, so {}."
    )
    serverSideLogging = ServerSideLoggingOptionsSerializer(
        required=False,
        help_text=(
            "Turns server-side call logging on or off, with its options. Leave it out to change nothing."
        ),
    )


# --- outputs -----------------------------------------------------------------------------


class OmitNoneSerializer(CachedFieldsSerializer):
    """Leaves out keys whose value is None (the peer's JSON omits undefined keys), except
    those named in `keep_none`, which the peer sends as null."""

    keep_none: tuple[str, ...] = ()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value is not None or key in self.keep_none}


RETURN_MESSAGE = (
    "A message for the client to show: message, messageType (success, warning or error), ttl (how "
    "long to show it, in milliseconds) and optional details."
)


class ReturnMessageField(serializers.JSONField):
    """App Connect's `returnMessage`: `{message, messageType, ttl, details?}` plus extras."""


@extend_schema_serializer(description="The contacts found.")
class ContactListOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField(
        help_text=(
            "true when the search ran, even when it found nothing; false when the user is not connected to "
            "the CRM."
        )
    )
    returnMessage = ReturnMessageField(
        source="return_message",
        required=False,
        help_text="A message for the client to show (for example Contact not found).",
    )
    contact = serializers.ListField(
        child=serializers.JSONField(),
        source="contacts",
        required=False,
        help_text=(
            "The contacts found, each with its CRM id, name, type and phone number. A lookup by number may "
            "end with an entry the client offers as Create new contact."
        ),
    )


@extend_schema_serializer(description="The contact created.")
class ContactCreateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField(help_text="true when the CRM created the contact.")
    returnMessage = ReturnMessageField(
        source="return_message", required=False, help_text="A message for the client to show."
    )
    contact = serializers.JSONField(
        required=False,
        help_text="The new contact: its CRM id (what call logs are attached to), name and type.",
    )


@extend_schema_serializer(description="The outcome of logging a call.")
class CallLogCreateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField(
        help_text=(
            "true when the call was logged in the CRM. false, with a returnMessage saying why, when it was "
            "not: the call was already logged, the rules leave an unknown caller to the user, or the CRM "
            "failed."
        )
    )
    logId = serializers.JSONField(
        source="log_id", required=False, help_text="The CRM's id of the activity created for the call."
    )
    returnMessage = ReturnMessageField(
        source="return_message", required=False, help_text="A message for the client to show."
    )


@extend_schema_serializer(description="The outcome of updating a logged call.")
class CallLogUpdateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField(
        help_text="true when the CRM activity was updated; false when the call was never logged."
    )
    logId = serializers.CharField(
        source="log_id", required=False, help_text="The CRM's id of the activity updated."
    )
    updatedNote = serializers.CharField(
        source="updated_note", required=False, help_text="The note as the CRM activity now holds it."
    )
    returnMessage = ReturnMessageField(
        source="return_message", required=False, help_text="A message for the client to show."
    )


@extend_schema_serializer(description="The outcome of logging messages.")
class MessageLogOutputSerializer(OmitNoneSerializer):
    keep_none = ("returnMessage",)

    successful = serializers.BooleanField(
        help_text="true when the messages were logged; false when the CRM created nothing."
    )
    logIds = serializers.ListField(
        child=serializers.CharField(),
        source="log_ids",
        required=False,
        help_text=(
            "The ids of the messages logged by this request; empty when every message was logged before."
        ),
    )
    returnMessage = ReturnMessageField(
        source="return_message",
        required=False,
        help_text=(
            "A message for the client to show, or null when the CRM was not called (every message was logged"
            " before)."
        ),
    )


# --- responses documented only (the views build these bodies) -------------------------


@extend_schema_serializer(
    component_name="ErrorResponse",
    description=(
        "Why the request was refused. Nothing was written. Invalid input names each bad field in "
        "errors and carries a returnMessage the client can show; a failure of a service the server "
        "depends on (RingCentral, the CRM) is reported in error."
    ),
)
class ErrorOutputSerializer(CachedFieldsSerializer):
    successful = serializers.BooleanField(required=False, help_text="Always false.")
    returnMessage = ReturnMessageField(required=False, help_text=RETURN_MESSAGE)
    # The JSON key is "errors"; DRF's metaclass takes declared fields off the class, so
    # Serializer.errors is not shadowed at run time.
    errors = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=(
            "For invalid input: each bad field, named by its path in the request (for example "
            "logInfo.from.phoneNumber), with what is wrong with it."
        ),
    )
    error = serializers.CharField(
        required=False,
        help_text="What failed outside the request (for example RingCentral refusing the access token).",
    )
    errorCode = serializers.CharField(
        required=False,
        help_text="CRM_SESSION_REVOKED when the CRM ended the user's session: log in to the CRM again.",
    )


_JWT_TOKEN = (
    "The App Connect JWT for every other call: send it in the Authorization header after Bearer (or as the "
    "jwtToken query parameter). It is valid 14 days; with 7 days or less left, any answer brings a "
    "renewed one in the x-refreshed-jwt-token header."
)


@extend_schema_serializer(
    component_name="ApiKeyLoginResponse",
    description="The user is logged in to the CRM: keep the JWT for the next calls.",
)
class ApiKeyLoginOutputSerializer(CachedFieldsSerializer):
    jwtToken = serializers.CharField(help_text=_JWT_TOKEN)
    name = serializers.CharField(help_text="The user's name in the CRM.")
    returnMessage = ReturnMessageField(help_text=RETURN_MESSAGE)


@extend_schema_serializer(
    component_name="OAuthCallbackResponse",
    description="The user is logged in to the CRM: keep the JWT for the next calls.",
)
class OAuthCallbackOutputSerializer(CachedFieldsSerializer):
    jwtToken = serializers.CharField(required=False, help_text=_JWT_TOKEN)
    name = serializers.CharField(required=False, help_text="The user's name in the CRM.")
    returnMessage = ReturnMessageField(required=False, help_text=RETURN_MESSAGE)
