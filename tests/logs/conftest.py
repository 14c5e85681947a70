"""Fixtures of the log-history admin tests: an auditor, an admin, and a small history.

The history holds a stored credential (`API_KEY`, the CRM user's access token) and a
marker in every stored request (`PAYLOAD_MARKER`): neither may appear on any page or export.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from django.utils import timezone

from connector.models import CrmUser
from logs.choices import DecidedBy, Direction, EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from rules.models import Account, PlaceholderContact
from tests.factories import CrmUserFactory
from tests.logs.factories import (
    AccountFactory,
    CallLogFactory,
    LogEventFactory,
    MessageLogFactory,
    PlaceholderContactFactory,
)

API_KEY = "crm-api-key-DO-NOT-SHOW-4f9c2d7e1b"
REFRESH_TOKEN = "crm-refresh-DO-NOT-SHOW-88a1c3"
PAYLOAD_MARKER = "stored-request-DO-NOT-SHOW-3b7f"
PASSWORD = "audit-pass-9c1e7f"


@pytest.fixture
def auditor(db) -> User:
    """A staff user in the `Auditors` group (created by the logs migration) and nothing else."""
    user = User.objects.create_user("audrey", password=PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name="Auditors"))
    return user


@pytest.fixture
def auditor_client(auditor: User) -> Client:
    client = Client()
    client.force_login(auditor)
    return client


@dataclass
class History:
    account: Account
    user: CrmUser  # holds API_KEY; in `account`
    other_user: CrmUser  # no account
    placeholder_by_rule: PlaceholderContact
    placeholder_by_hand: PlaceholderContact
    placeholder_call: CallLog  # logged against a placeholder a rule created
    manual_call: CallLog  # logged against a placeholder the user created, outbound
    matched_call: CallLog  # logged against a matched contact, another user
    failed_call: CallLog
    pending_call: CallLog
    logged_message: MessageLog
    failed_message: MessageLog


@pytest.fixture
def history(db) -> History:
    """A few calls and messages in every status, placeholders by rule and by hand, events."""
    account = AccountFactory(rc_account_id="37439510", name="Acme Support")
    user = CrmUserFactory(
        name="Alice Agent", rc_account_id="37439510", access_token=API_KEY, refresh_token=REFRESH_TOKEN
    )
    other_user = CrmUserFactory(name="Bob Agent", access_token=API_KEY + "-bob")
    by_rule = PlaceholderContactFactory(
        created_by=user, account=account, phone_number="+14155550123", contact_name="Jane Caller"
    )
    by_hand = PlaceholderContactFactory(
        created_by=user, account=account, phone_number="+14155550177", decided_by=DecidedBy.USER
    )
    payload = {"note": PAYLOAD_MARKER}
    placeholder_call = CallLogFactory(
        user=user,
        session_id="sess-placeholder",
        phone_number="+14155550123",
        contact_id=by_rule.contact_id,
        contact_name="Jane Caller",
        contact_is_placeholder=True,
        placeholder=by_rule,
        decision={"outcome": "placeholder_created", "rules": {"unknownContactAction": "createPlaceholder"}},
        payload=payload,
    )
    manual_call = CallLogFactory(
        user=user,
        session_id="sess-manual",
        phone_number="+14155550177",
        direction=Direction.OUTBOUND,
        contact_id=by_hand.contact_id,
        contact_is_placeholder=True,
        placeholder=by_hand,
        decided_by=DecidedBy.USER,
        payload=payload,
    )
    matched_call = CallLogFactory(user=other_user, session_id="sess-matched", payload=payload)
    failed_call = CallLogFactory(
        user=user,
        session_id="sess-failed",
        status=LogStatus.FAILED,
        crm_log_id="",
        attempts=2,
        last_error="The CRM is unavailable (503).",
        payload=payload,
    )
    pending_call = CallLogFactory(
        user=other_user, session_id="sess-pending", status=LogStatus.PENDING, crm_log_id="", attempts=0
    )
    LogEventFactory(call_log=placeholder_call, kind=EventKind.REQUESTED, detail={"attempt": 1})
    LogEventFactory(
        call_log=placeholder_call,
        kind=EventKind.PLACEHOLDER_CREATED,
        decided_by=DecidedBy.RULE,
        detail={"outcome": "placeholder_created", "contactName": "Jane Caller"},
    )
    LogEventFactory(call_log=placeholder_call, kind=EventKind.CRM_LOGGED, detail={"crmLogId": "crm-777"})
    LogEventFactory(call_log=failed_call, kind=EventKind.CRM_FAILED, detail={"error": "unavailable"})
    logged_message = MessageLogFactory(
        user=user, message_id="msg-logged", phone_number="+14155550123", payload=payload
    )
    failed_message = MessageLogFactory(
        user=other_user,
        message_id="msg-failed",
        status=LogStatus.FAILED,
        crm_log_id="",
        last_error="Rate limited",
        payload=payload,
    )
    LogEventFactory(call_log=None, message_log=logged_message, kind=EventKind.CRM_LOGGED)
    return History(
        account=account,
        user=user,
        other_user=other_user,
        placeholder_by_rule=by_rule,
        placeholder_by_hand=by_hand,
        placeholder_call=placeholder_call,
        manual_call=manual_call,
        matched_call=matched_call,
        failed_call=failed_call,
        pending_call=pending_call,
        logged_message=logged_message,
        failed_message=failed_message,
    )


def days_ago(row: CallLog | MessageLog | PlaceholderContact | LogEvent, days: int) -> None:
    """Move a row's creation `days` days back (created_at is set on insert)."""
    type(row).objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(days=days))
