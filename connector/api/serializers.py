"""Input and output serializers of App Connect's HTTP API.

Inputs validate everything a route needs before any write or CRM call. App Connect's
objects are open (a call-log record carries many RingCentral fields we only pass on), so
`OpenObjectSerializer` checks the declared fields and keeps the rest as sent. Outputs omit
keys whose value is None, as the peer's JSON does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from connector.utils import InvalidPhoneNumber, phone_number_normalize

# --- fields ------------------------------------------------------------------------------


class PhoneNumberField(serializers.CharField):
    """A phone number in any common format, returned in E.164."""

    default_error_messages = {"invalid_phone": "{reason}"}

    def to_internal_value(self, data: Any) -> str:
        text = super().to_internal_value(data)
        try:
            return phone_number_normalize(text)
        except InvalidPhoneNumber as exc:
            self.fail("invalid_phone", reason=str(exc))
            raise  # unreachable: fail() raises


class IdField(serializers.Field):
    """An identifier sent as a string or a number (CRMs use both); kept as a string."""

    default_error_messages = {"invalid": "Must be a string or a number."}

    def __init__(self, *, max_length: int = 255, **kwargs: Any) -> None:
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            self.fail("invalid")
        text = str(data).strip()
        if len(text) > self.max_length:
            raise serializers.ValidationError(f"Ensure this has at most {self.max_length} characters.")
        return text

    def to_representation(self, value: Any) -> Any:
        return value


class StrictCharField(serializers.CharField):
    """A string that must arrive as a JSON string (no silent coercion of numbers)."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class ObjectField(serializers.DictField):
    """A JSON object passed on as is (e.g. `additionalSubmission`)."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self.fail("not_a_dict", input_type=type(data).__name__)
        return dict(data)


class BooleanFlagField(serializers.BooleanField):
    """A query flag: `true`/`false` (any case), `1`/`0`."""


class OpenObjectSerializer(serializers.Serializer):
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


class ApiKeyLoginInputSerializer(serializers.Serializer):
    platform = StrictCharField(max_length=64)
    apiKey = text(max_length=2000)
    hostname = text(max_length=255)
    proxyId = text(max_length=255)
    connectorId = text(max_length=255)
    additionalInfo = ObjectField(required=False)
    devRcAccountId = IdField(required=False, max_length=64)
    isPrivate = serializers.BooleanField(required=False)
    rcAccessToken = text(max_length=4000)


class ContactLookupQuerySerializer(serializers.Serializer):
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


class ContactSearchQuerySerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, allow_blank=True)


class ContactCreateInputSerializer(serializers.Serializer):
    phoneNumber = PhoneNumberField(max_length=64)
    newContactName = StrictCharField(max_length=255)
    newContactType = text(max_length=64)
    additionalSubmission = ObjectField(required=False)


class PartySerializer(OpenObjectSerializer):
    phoneNumber = text(max_length=64)
    extensionNumber = text(max_length=32)
    name = text(max_length=255, allow_null=True)


class CallLogRecordSerializer(OpenObjectSerializer):
    sessionId = IdField(max_length=128)
    id = IdField(required=False, max_length=128)
    telephonySessionId = IdField(required=False, max_length=128)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False)
    startTime = serializers.JSONField(required=False)
    duration = serializers.JSONField(required=False)
    result = text(max_length=64, allow_null=True)
    customSubject = text(max_length=500, allow_null=True)
    from_ = PartySerializer(required=False)
    to = PartySerializer(required=False)
    legs = serializers.ListField(child=ObjectField(), required=False)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate_sessionId(self, value: str) -> str:
        if not value:
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_duration(self, value: Any) -> Any:
        if (
            value is None
            or value == "pending"
            or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0)
        ):
            return value
        raise serializers.ValidationError('Must be a number of seconds or "pending".')

    def validate_startTime(self, value: Any) -> Any:
        from logs.composer import parse_time

        if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0):
            return value
        if isinstance(value, str) and parse_time(value) is not None:
            return value
        raise serializers.ValidationError("Must be an ISO 8601 date-time or epoch milliseconds.")


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


class CallLogCreateInputSerializer(serializers.Serializer):
    logInfo = CallLogRecordSerializer()
    contactId = IdField(required=False, allow_null=True)
    contactType = text(max_length=64, allow_null=True)
    contactName = text(max_length=255, allow_null=True)
    note = text(max_length=100_000, allow_null=True)
    additionalSubmission = ObjectField(required=False, allow_null=True)
    extensionNumber = IdField(required=False, max_length=32)
    hashedExtensionId = text(max_length=64)
    rcExtensionId = IdField(required=False, max_length=64)
    ringSenseAIScore = serializers.JSONField(required=False)
    overridingFormat = serializers.JSONField(required=False)
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
        party = log_info.get(party_key) or {}
        raw = party.get("phoneNumber") or party.get("extensionNumber") or ""
        if not raw:
            raise serializers.ValidationError(
                {"logInfo": {party_key: {"phoneNumber": ["The other party's phone number is required."]}}}
            )
        phone_number = ""
        if party.get("phoneNumber"):
            try:
                phone_number = phone_number_normalize(party["phoneNumber"])
            except InvalidPhoneNumber as exc:
                raise serializers.ValidationError(
                    {"logInfo": {party_key: {"phoneNumber": [str(exc)]}}}
                ) from exc
        attrs["phone_number"] = phone_number
        attrs["raw_number"] = str(raw)
        return attrs


class CallLogLookupQuerySerializer(serializers.Serializer):
    sessionIds = serializers.CharField(max_length=2000)
    extensionNumber = serializers.CharField(required=False, allow_blank=True, max_length=32)
    hashedExtensionId = serializers.CharField(required=False, allow_blank=True, max_length=64)
    requireDetails = BooleanFlagField(required=False, default=False)


class CallLogUpdateInputSerializer(serializers.Serializer):
    sessionId = IdField(max_length=128)
    extensionNumber = IdField(required=False, max_length=32)
    hashedExtensionId = text(max_length=64)
    rcExtensionId = IdField(required=False, max_length=64)
    accountId = IdField(required=False, max_length=64)
    subject = text(max_length=500, allow_null=True)
    note = text(max_length=100_000, allow_null=True)
    startTime = serializers.JSONField(required=False)
    duration = serializers.JSONField(required=False)
    result = text(max_length=64, allow_null=True)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False, allow_null=True)
    from_ = PartySerializer(required=False)
    to = PartySerializer(required=False)
    legs = serializers.ListField(child=ObjectField(), required=False, allow_null=True)
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
    ringSenseAIScore = serializers.JSONField(required=False)

    extras_fields = CallLogCreateInputSerializer.extras_fields

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    validate_duration = CallLogRecordSerializer.validate_duration
    validate_startTime = CallLogRecordSerializer.validate_startTime


class CallNoteCacheInputSerializer(serializers.Serializer):
    sessionId = IdField(max_length=128)
    note = StrictCharField(allow_blank=True, trim_whitespace=False, max_length=100_000)


class MessageSerializer(OpenObjectSerializer):
    id = IdField(max_length=100)
    type = text(max_length=32)
    direction = serializers.ChoiceField(choices=("Inbound", "Outbound"), required=False)
    subject = text(max_length=100_000, allow_null=True)
    creationTime = text(max_length=64, allow_null=True)
    attachments = serializers.ListField(child=ObjectField(), required=False)
    conversationId = IdField(required=False, max_length=128, allow_null=True)


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


class MessageLogCreateInputSerializer(serializers.Serializer):
    logInfo = MessageConversationSerializer()
    contactId = IdField(required=False, allow_null=True)
    contactType = text(max_length=64, allow_null=True)
    contactName = text(max_length=255, allow_null=True)
    additionalSubmission = ObjectField(required=False, allow_null=True)
    overridingFormat = serializers.JSONField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _no_contact_when_zero(self, attrs)
        first = attrs["logInfo"]["correspondents"][0]["phoneNumber"]
        try:
            attrs["phone_number"] = phone_number_normalize(first)
        except InvalidPhoneNumber as exc:
            raise serializers.ValidationError(
                {"logInfo": {"correspondents": {"0": {"phoneNumber": [str(exc)]}}}}
            ) from exc
        attrs["raw_number"] = first
        return attrs


class SettingsMapField(serializers.DictField):
    """A settings map: each key names a setting, each value is an object `{value, ...}`."""

    child = ObjectField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            self.fail("not_a_dict", input_type=type(data).__name__)
        for key in data:
            if not isinstance(key, str) or not key or len(key) > 200:
                raise serializers.ValidationError(
                    "Setting keys must be non-empty strings of at most 200 characters."
                )
        return super().to_internal_value(data)


class UserSettingsUpdateInputSerializer(serializers.Serializer):
    userSettings = SettingsMapField(required=False, default=dict)
    settingKeysToRemove = serializers.ListField(
        child=StrictCharField(max_length=200), required=False, default=list
    )


class AdminSettingsSerializer(serializers.Serializer):
    userSettings = SettingsMapField()

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - {"userSettings"})
            if unknown:
                raise serializers.ValidationError(
                    {key: ["Not supported by this server; only userSettings is."] for key in unknown}
                )
        return super().to_internal_value(data)


class AdminSettingsUpdateInputSerializer(serializers.Serializer):
    adminSettings = AdminSettingsSerializer()


# --- outputs -----------------------------------------------------------------------------


class OmitNoneSerializer(serializers.Serializer):
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
