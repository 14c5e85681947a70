"""CSV export of the log history (django-import-export resources, export only).

Each resource fixes its columns: the stored request (`payload`), the decision snapshot
and anything credential-bearing are never exported, and free text (contact names, CRM
errors, event details) is redacted of credentials and neutralised against spreadsheet
formulas.
"""

from __future__ import annotations

import json
from typing import Any

from import_export import fields, resources, widgets

from config.logging import redact
from logs.models import CallLog, LogEvent, MessageLog

# A cell starting with one of these is read as a formula by spreadsheet programs.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class SafeTextWidget(widgets.CharWidget):
    """Free text as exported: credentials redacted, formulas turned into plain text."""

    def render(self, value: Any, obj: Any = None, **kwargs: Any) -> str:
        text = redact("" if value is None else str(value))
        return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


class ExportOnlyResource(resources.ModelResource):
    """A resource that can only export: importing through it is refused."""

    def import_data(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("The log history is export-only.")


def _text(attribute: str, column: str) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=column, widget=SafeTextWidget(), readonly=True)


def _plain(attribute: str, column: str | None = None, widget: widgets.Widget | None = None) -> fields.Field:
    return fields.Field(attribute=attribute, column_name=column or attribute, widget=widget, readonly=True)


_WHEN = widgets.DateTimeWidget(format="%Y-%m-%dT%H:%M:%S%z")


class _LogRecordColumns(ExportOnlyResource):
    """Columns shared by call and message logs. Needs `logs.selectors.log_history_queryset`."""

    created_at = _plain("created_at", widget=_WHEN)
    updated_at = _plain("updated_at", widget=_WHEN)
    status = _plain("status")
    attempts = _plain("attempts")
    last_error = _text("last_error", "last_error")
    platform = _plain("platform")
    user_id = _plain("user_id", "user_id")
    user_name = _text("user__name", "user_name")
    account_id = _plain("user__rc_account_id", "rc_account_id")
    account_name = _text("account_name", "account_name")
    direction = _plain("direction")
    phone_number = _plain("phone_number")
    contact_id = _plain("contact_id")
    contact_name = _text("contact_name", "contact_name")
    contact_type = _plain("contact_type")
    contact_is_placeholder = _plain("contact_is_placeholder", widget=widgets.BooleanWidget())
    placeholder_created_by = _plain("placeholder__decided_by", "placeholder_created_by")
    decided_by = _plain("decided_by")
    crm_log_id = _plain("crm_log_id")


class CallLogResource(_LogRecordColumns):
    """The columns of a call-log export."""

    session_id = _plain("session_id")
    record_id = _plain("record_id")
    extension_number = _plain("extension_number")
    started_at = _plain("started_at", widget=_WHEN)
    duration_seconds = _plain("duration_seconds")
    result = _text("result", "result")

    class Meta:
        model = CallLog
        fields = (
            "id",
            "created_at",
            "updated_at",
            "status",
            "attempts",
            "last_error",
            "platform",
            "user_id",
            "user_name",
            "account_id",
            "account_name",
            "session_id",
            "record_id",
            "extension_number",
            "direction",
            "phone_number",
            "started_at",
            "duration_seconds",
            "result",
            "contact_id",
            "contact_name",
            "contact_type",
            "contact_is_placeholder",
            "placeholder_created_by",
            "decided_by",
            "crm_log_id",
        )
        export_order = fields


class MessageLogResource(_LogRecordColumns):
    """The columns of a message-log export."""

    message_id = _plain("message_id")
    conversation_id = _plain("conversation_id")
    conversation_log_id = _plain("conversation_log_id")
    message_type = _plain("message_type")

    class Meta:
        model = MessageLog
        fields = (
            "id",
            "created_at",
            "updated_at",
            "status",
            "attempts",
            "last_error",
            "platform",
            "user_id",
            "user_name",
            "account_id",
            "account_name",
            "message_id",
            "conversation_id",
            "conversation_log_id",
            "message_type",
            "direction",
            "phone_number",
            "contact_id",
            "contact_name",
            "contact_type",
            "contact_is_placeholder",
            "placeholder_created_by",
            "decided_by",
            "crm_log_id",
        )
        export_order = fields


class LogEventResource(ExportOnlyResource):
    """The columns of an event-trail export. Needs the admin's `session_id`/`message_id` annotations."""

    created_at = _plain("created_at", widget=_WHEN)
    kind = _plain("kind")
    decided_by = _plain("decided_by")
    call_log_id = _plain("call_log_id")
    session_id = _plain("session_id")
    message_log_id = _plain("message_log_id")
    message_id = _plain("message_id")
    detail = fields.Field(column_name="detail", widget=SafeTextWidget(), readonly=True)

    class Meta:
        model = LogEvent
        fields = (
            "id",
            "created_at",
            "kind",
            "decided_by",
            "call_log_id",
            "session_id",
            "message_log_id",
            "message_id",
            "detail",
        )
        export_order = fields

    def dehydrate_detail(self, event: LogEvent) -> str:
        return json.dumps(event.detail, sort_keys=True, default=str)
