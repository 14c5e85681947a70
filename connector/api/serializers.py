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

from drf_spectacular.utils import extend_schema_field
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


class ApiKeyLoginInputSerializer(CachedFieldsSerializer):
    platform = StrictCharField(max_length=64)
    apiKey = text(max_length=2000)
    hostname = text(max_length=255)
    proxyId = text(max_length=255)
    connectorId = text(max_length=255)
    additionalInfo = ObjectField(required=False)
    devRcAccountId = IdField(required=False, max_length=64)
    isPrivate = serializers.BooleanField(required=False)
    rcAccessToken = text(max_length=4000)


class OAuthCallbackQuerySerializer(CachedFieldsSerializer):
    """GET /oauth-callback's query (appconnect-api.md §2.5). Everything is optional here:
    the view answers the peer's texts for a missing `callbackUri` or platform."""

    callbackUri = text(max_length=4000)
    code = text(max_length=2000)
    state = text(max_length=2000)
    hostname = text(max_length=255)
    tokenUrl = text(max_length=2000)
    apiUrl = text(max_length=2000)
    username = text(max_length=255)
    proxyId = text(max_length=255)
    rcAccountId = text(max_length=64)
    rcExtensionId = text(max_length=64)
    userEmail = text(max_length=320)
    rcAccessToken = text(max_length=4000)


class ContactLookupQuerySerializer(CachedFieldsSerializer):
    phoneNumber = serializers.CharField(max_length=64, trim_whitespace=False)
    overridingFormat = serializers.CharField(required=False, allow_blank=True, max_length=500)
    isExtension = BooleanFlagField(required=False, default=False)
    isForceRefreshAccountData = BooleanFlagField(required=False, default=False)

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
    name = serializers.CharField(max_length=255, allow_blank=True)


class ContactCreateInputSerializer(CachedFieldsSerializer):
    phoneNumber = PhoneNumberField(max_length=64)
    newContactName = StrictCharField(max_length=255)
    newContactType = text(max_length=64)
    additionalSubmission = ObjectField(required=False)


class PartySerializer(OpenObjectSerializer):
    phoneNumber = text(max_length=64, allow_null=True)
    extensionNumber = text(max_length=32, allow_null=True)
    name = text(max_length=255, allow_null=True)


class LinkSerializer(OpenObjectSerializer):
    """A recording or voicemail reference: `{id?, uri?, link?}`."""

    id = IdField(required=False, allow_null=True)
    uri = text(max_length=2000, allow_null=True)
    link = text(max_length=2000, allow_null=True)


class AttachmentSerializer(OpenObjectSerializer):
    """A message attachment (recording, fax document, MMS image or video)."""

    id = IdField(required=False, allow_null=True)
    type = text(max_length=64, allow_null=True)
    uri = text(max_length=2000, allow_null=True)
    link = text(max_length=2000, allow_null=True)
    contentType = text(max_length=200, allow_null=True)


class LegSerializer(OpenObjectSerializer):
    """One leg of a call's journey."""

    from_ = PartySerializer(required=False, allow_null=True)
    to = PartySerializer(required=False, allow_null=True)
    direction = text(max_length=16, allow_null=True)
    legType = text(max_length=64, allow_null=True)
    duration = serializers.JSONField(required=False, allow_null=True)


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


class CallLogRecordSerializer(OpenObjectSerializer):
    sessionId = IdField(max_length=128, allow_blank=False)
    id = IdField(required=False, max_length=128)
    telephonySessionId = IdField(required=False, max_length=128, allow_null=True)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False)
    startTime = StartTimeField(required=False, allow_null=True)
    duration = DurationField(required=False, allow_null=True)
    result = text(max_length=64, allow_null=True)
    customSubject = text(max_length=500, allow_null=True)
    from_ = PartySerializer(required=False, allow_null=True)
    to = PartySerializer(required=False, allow_null=True)
    legs = serializers.ListField(child=LegSerializer(), required=False, allow_null=True)
    recording = LinkSerializer(required=False, allow_null=True)
    voicemail = LinkSerializer(required=False, allow_null=True)


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


class CallLogCreateInputSerializer(CachedFieldsSerializer):
    logInfo = CallLogRecordSerializer()
    contactId = IdField(required=False, allow_null=True)
    contactType = text(max_length=64, allow_null=True)
    contactName = text(max_length=255, allow_null=True)
    note = text(max_length=100_000, allow_null=True)
    additionalSubmission = ObjectField(required=False, allow_null=True)
    extensionNumber = IdField(required=False, max_length=32)
    hashedExtensionId = text(max_length=64)
    rcExtensionId = IdField(required=False, max_length=64)
    ringSenseAIScore = ObjectField(required=False, allow_null=True)
    overridingFormat = serializers.JSONField(required=False, allow_null=True)
    aiNote = text(max_length=100_000, allow_null=True)
    transcript = text(max_length=1_000_000, allow_null=True)
    voicemailLink = text(max_length=2000, allow_null=True)
    voicemailMessageId = IdField(required=False, allow_null=True)
    ringSenseTranscript = text(max_length=1_000_000, allow_null=True)
    ringSenseSummary = text(max_length=100_000, allow_null=True)
    ringSenseBulletedSummary = text(max_length=100_000, allow_null=True)
    ringSenseLink = text(max_length=2000, allow_null=True)

    extras_fields = (*_CALL_EXTRAS, "ringSenseAIScore")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _no_contact_when_zero(self, attrs)
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

    rcAccountId = serializers.CharField(required=False, allow_blank=True, max_length=64)


class CallLogLookupQuerySerializer(CachedFieldsSerializer):
    sessionIds = serializers.CharField(max_length=2000)
    extensionNumber = serializers.CharField(required=False, allow_blank=True, max_length=32)
    hashedExtensionId = serializers.CharField(required=False, allow_blank=True, max_length=64)
    requireDetails = BooleanFlagField(required=False, default=False)


class CallLogUpdateInputSerializer(CachedFieldsSerializer):
    sessionId = IdField(max_length=128, allow_blank=False)
    extensionNumber = IdField(required=False, max_length=32)
    hashedExtensionId = text(max_length=64)
    rcExtensionId = IdField(required=False, max_length=64)
    accountId = IdField(required=False, max_length=64)
    subject = text(max_length=500, allow_null=True)
    note = text(max_length=100_000, allow_null=True)
    startTime = StartTimeField(required=False, allow_null=True)
    duration = DurationField(required=False, allow_null=True)
    result = text(max_length=64, allow_null=True)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False, allow_null=True)
    from_ = PartySerializer(required=False, allow_null=True)
    to = PartySerializer(required=False, allow_null=True)
    legs = serializers.ListField(child=LegSerializer(), required=False, allow_null=True)
    recordingLink = text(max_length=2000, allow_null=True)
    recordingDownloadLink = text(max_length=2000, allow_null=True)
    additionalSubmission = ObjectField(required=False, allow_null=True)
    telephonySessionId = IdField(required=False, max_length=128)
    aiNote = text(max_length=100_000, allow_null=True)
    transcript = text(max_length=1_000_000, allow_null=True)
    voicemailLink = text(max_length=2000, allow_null=True)
    voicemailMessageId = IdField(required=False, allow_null=True)
    ringSenseTranscript = text(max_length=1_000_000, allow_null=True)
    ringSenseSummary = text(max_length=100_000, allow_null=True)
    ringSenseBulletedSummary = text(max_length=100_000, allow_null=True)
    ringSenseLink = text(max_length=2000, allow_null=True)
    ringSenseAIScore = ObjectField(required=False, allow_null=True)

    extras_fields = CallLogCreateInputSerializer.extras_fields


class CallNoteCacheInputSerializer(CachedFieldsSerializer):
    sessionId = IdField(max_length=128, allow_blank=False)
    note = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=100_000)


class MessageSerializer(OpenObjectSerializer):
    id = IdField(max_length=100)
    type = text(max_length=32)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False)
    subject = text(max_length=100_000, allow_null=True)
    creationTime = text(max_length=64, allow_null=True)
    attachments = serializers.ListField(child=AttachmentSerializer(), required=False, allow_null=True)
    conversationId = IdField(required=False, max_length=128, allow_null=True)
    from_ = PartySerializer(required=False, allow_null=True)
    to = serializers.ListField(child=PartySerializer(), required=False, allow_null=True)


class CorrespondentSerializer(OpenObjectSerializer):
    phoneNumber = StrictCharField(max_length=64)
    name = text(max_length=255, allow_null=True)


class NamedSerializer(OpenObjectSerializer):
    name = text(max_length=255, allow_null=True)


class MessageConversationSerializer(OpenObjectSerializer):
    messages = serializers.ListField(child=MessageSerializer(), max_length=1000)
    correspondents = serializers.ListField(child=CorrespondentSerializer(), min_length=1)
    conversationId = IdField(required=False, max_length=128, allow_null=True)
    conversationLogId = IdField(required=False, max_length=150, allow_null=True)
    owner = NamedSerializer(required=False, allow_null=True)
    assignee = NamedSerializer(required=False, allow_null=True)
    rcAccessToken = text(max_length=4000, allow_null=True)


class MessageLogCreateInputSerializer(CachedFieldsSerializer):
    logInfo = MessageConversationSerializer()
    contactId = IdField(required=False, allow_null=True)
    contactType = text(max_length=64, allow_null=True)
    contactName = text(max_length=255, allow_null=True)
    additionalSubmission = ObjectField(required=False, allow_null=True)
    overridingFormat = serializers.JSONField(required=False, allow_null=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _no_contact_when_zero(self, attrs)
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


class UserSettingSerializer(OpenObjectSerializer):
    """One entry of a settings map (App Connect's `UserSetting`)."""

    value = serializers.JSONField(required=False, allow_null=True)
    customizable = StrictBooleanField(required=False)
    isCustomizable = StrictBooleanField(required=False)
    isRemoved = StrictBooleanField(required=False)
    defaultValue = serializers.JSONField(required=False, allow_null=True)
    options = serializers.ListField(child=serializers.JSONField(allow_null=True), required=False)


class SettingsMapField(serializers.DictField):
    """A settings map: each key names a setting, each value is a `UserSetting` object."""

    child = UserSettingSerializer()


class UserSettingsUpdateInputSerializer(CachedFieldsSerializer):
    userSettings = SettingsMapField(required=False, default=dict)
    settingKeysToRemove = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, default=list
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


def _entry_schema(value: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
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
    properties = {key: _entry_schema(_value_schema(p, contact_types)) for key, p in PARAMETERS.items()}
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False if closed else _entry_schema({}),
    }


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


class AdminSettingsUpdateInputSerializer(CachedFieldsSerializer):
    adminSettings = AdminSettingsField()


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


class ServerLoggingSettingsInputSerializer(CachedFieldsSerializer):
    additionalFieldValues = NoAdditionalFieldsField(
        help_text="Values of the connector's additional server-side logging fields; none are declared, so {}."
    )
    serverSideLogging = ServerSideLoggingOptionsSerializer(required=False)


# --- outputs -----------------------------------------------------------------------------


class OmitNoneSerializer(CachedFieldsSerializer):
    """Leaves out keys whose value is None (the peer's JSON omits undefined keys), except
    those named in `keep_none`, which the peer sends as null."""

    keep_none: tuple[str, ...] = ()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        return {key: value for key, value in data.items() if value is not None or key in self.keep_none}


class ReturnMessageField(serializers.JSONField):
    """App Connect's `returnMessage`: `{message, messageType, ttl, details?}` plus extras."""


class ContactListOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField()
    returnMessage = ReturnMessageField(source="return_message", required=False)
    contact = serializers.ListField(child=serializers.JSONField(), source="contacts", required=False)


class ContactCreateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField()
    returnMessage = ReturnMessageField(source="return_message", required=False)
    contact = serializers.JSONField(required=False)


class CallLogCreateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField()
    logId = serializers.JSONField(source="log_id", required=False)
    returnMessage = ReturnMessageField(source="return_message", required=False)


class CallLogUpdateOutputSerializer(OmitNoneSerializer):
    successful = serializers.BooleanField()
    logId = serializers.CharField(source="log_id", required=False)
    updatedNote = serializers.CharField(source="updated_note", required=False)
    returnMessage = ReturnMessageField(source="return_message", required=False)


class MessageLogOutputSerializer(OmitNoneSerializer):
    keep_none = ("returnMessage",)

    successful = serializers.BooleanField()
    logIds = serializers.ListField(child=serializers.CharField(), source="log_ids", required=False)
    returnMessage = ReturnMessageField(source="return_message", required=False)
