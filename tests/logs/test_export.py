"""CSV export of the filtered lists: fixed columns, export only, no credential or stored request."""

from __future__ import annotations

import csv
import io

import pytest
from django.test import Client
from django.urls import reverse

from logs.resources import CallLogResource
from tests.logs.conftest import API_KEY, PAYLOAD_MARKER, REFRESH_TOKEN, History
from tests.logs.factories import CallLogFactory

CALL_COLUMNS = [
    "id",
    "created_at",
    "updated_at",
    "status",
    "attempts",
    "last_error",
    "platform",
    "user_id",
    "user_name",
    "rc_account_id",
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
]
MESSAGE_COLUMNS = [
    "id",
    "created_at",
    "updated_at",
    "status",
    "attempts",
    "last_error",
    "platform",
    "user_id",
    "user_name",
    "rc_account_id",
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
]
EVENT_COLUMNS = [
    "id",
    "created_at",
    "kind",
    "decided_by",
    "call_log_id",
    "session_id",
    "message_log_id",
    "message_id",
    "detail",
]
PLACEHOLDER_COLUMNS = [
    "id",
    "created_at",
    "updated_at",
    "platform",
    "phone_number",
    "rc_account_id",
    "created_by",
    "created_by_name",
    "decided_by",
    "status",
    "attempts",
    "last_error",
    "contact_id",
    "contact_name",
    "contact_type",
    "life",
    "named_as",
    "superseded_by",
    "superseded_at",
]


def export(
    client: Client, name: str, params: dict[str, str] | None = None
) -> tuple[str, list[dict[str, str]]]:
    response = client.get(reverse(f"admin:{name}_export"), params or {})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    text = response.content.decode()
    return text, list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(
    ("name", "columns"),
    [
        ("logs_calllog", CALL_COLUMNS),
        ("logs_messagelog", MESSAGE_COLUMNS),
        ("logs_logevent", EVENT_COLUMNS),
        ("rules_placeholdercontact", PLACEHOLDER_COLUMNS),
    ],
)
def test_exports_have_the_fixed_columns_and_no_secret(
    auditor_client: Client, history: History, name: str, columns: list[str]
) -> None:
    text, rows = export(auditor_client, name)

    assert text.splitlines()[0].split(",") == columns
    assert rows
    for secret in (API_KEY, REFRESH_TOKEN, PAYLOAD_MARKER, "payload", "access_token"):
        assert secret not in text


def test_the_call_export_is_the_filtered_list(auditor_client: Client, history: History) -> None:
    _, rows = export(auditor_client, "logs_calllog", {"placeholder": "rule"})
    assert [row["session_id"] for row in rows] == ["sess-placeholder"]
    row = rows[0]
    assert row["phone_number"] == "+14155550123"
    assert row["contact_is_placeholder"] == "1"
    assert row["placeholder_created_by"] == "rule"
    assert row["account_name"] == "Acme Support"
    assert row["user_name"] == "Alice Agent"

    _, failed = export(auditor_client, "logs_calllog", {"status__exact": "failed"})
    assert [(r["session_id"], r["attempts"], r["last_error"]) for r in failed] == [
        ("sess-failed", "2", "The CRM is unavailable (503).")
    ]


def test_the_export_follows_the_phone_search(auditor_client: Client, history: History) -> None:
    _, rows = export(auditor_client, "logs_calllog", {"q": "(415) 555-0177"})
    assert [row["session_id"] for row in rows] == ["sess-manual"]


def test_the_export_link_keeps_the_filters(auditor_client: Client, history: History) -> None:
    page = auditor_client.get(reverse("admin:logs_calllog_changelist"), {"status__exact": "failed"}).content
    assert b'/admin/logs/calllog/export/?status__exact=failed"' in page


def test_free_text_is_redacted_and_no_formula(auditor_client: Client, history: History) -> None:
    CallLogFactory(
        user=history.user,
        session_id="sess-evil",
        contact_name='=HYPERLINK("http://evil.example","x")',
        last_error="GET /x?access_token=abc123secret failed",
    )
    _, rows = export(auditor_client, "logs_calllog", {"q": "sess-evil"})
    assert rows[0]["contact_name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows[0]["last_error"] == "GET /x?access_token=*** failed"


def test_there_is_no_import(auditor_client: Client, admin_client: Client, history: History) -> None:
    for client in (auditor_client, admin_client):
        page = client.get(reverse("admin:logs_calllog_changelist")).content.decode()
        assert "/export/" in page and "/import/" not in page
    with pytest.raises(NotImplementedError):
        CallLogResource().import_data(None)
