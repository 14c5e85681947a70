"""OpenAPI schema extensions (drf-spectacular) for fields whose schema depends on settings."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension

from connector.api.serializers import settings_map_schema


class IdFieldExtension(OpenApiSerializerFieldExtension):
    """An id: a string (of the field's lengths) or a 64-bit integer."""

    target_class = "connector.api.serializers.IdField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        text: dict[str, Any] = {"type": "string", "maxLength": field.max_length}
        if not field.allow_blank:
            text["minLength"] = 1
        schema: dict[str, Any] = {"oneOf": [text, {"type": "integer", "format": "int64"}]}
        if field.allow_null:
            schema["nullable"] = True
        return schema


class SettingsMapFieldExtension(OpenApiSerializerFieldExtension):
    """A user's settings map: known settings typed, others open."""

    target_class = "connector.api.serializers.SettingsMapField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return settings_map_schema(closed=False)


class AdminSettingsFieldExtension(OpenApiSerializerFieldExtension):
    """An admin's settings: `{"userSettings": {...}}` with known settings only."""

    target_class = "connector.api.serializers.AdminSettingsField"

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"userSettings": settings_map_schema(closed=True)},
            "required": ["userSettings"],
            "additionalProperties": False,
        }


# The enum components drf-spectacular makes from choice fields, as users read them.
ENUM_DESCRIPTIONS = {
    "DirectionEnum": "The call's or message's direction, as RingCentral reports it.",
    "NullEnum": "No value (null).",
    "OwnerModeEnum": "Whose CRM identity server-side call logs carry: the administrator's (admin), or "
    "the agent's where one is mapped (agent).",
}


def describe_enums(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: gives the enum components their description."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, description in ENUM_DESCRIPTIONS.items():
        if name in schemas:
            schemas[name]["description"] = description
    return result
