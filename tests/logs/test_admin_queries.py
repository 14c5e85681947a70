"""Query counts of the log-history admin: bounded, and the same for 20 rows as for a thousand.

Each page is loaded once with a small history and once with a thousand rows of every kind
(bulk-created); the number of queries must not change, and stays within its budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from connector.models import CrmUser
from logs.choices import DecidedBy, EventKind, LogStatus
from logs.models import CallLog, LogEvent, MessageLog
from rules.models import PlaceholderContact
from tests.factories import CrmUserFactory
from tests.logs.factories import (
    AccountFactory,
    CallLogFactory,
    LogEventFactory,
    MessageLogFactory,
    PlaceholderContactFactory,
)

STATUSES = [LogStatus.LOGGED, LogStatus.FAILED, LogStatus.PENDING, LogStatus.SKIPPED]


@dataclass
class Rows:
    users: list[CrmUser] = field(default_factory=list)
    calls: list[CallLog] = field(default_factory=list)
    messages: list[MessageLog] = field(default_factory=list)
    placeholders: list[PlaceholderContact] = field(default_factory=list)

    def add(self, count: int) -> None:
        """Bulk-create `count` placeholders, calls, messages, and two events per call and message."""
        users = self.users
        placeholders = PlaceholderContact.objects.bulk_create(
            PlaceholderContactFactory.build(
                created_by=users[i % len(users)],
                scope_key=f"user:{users[i % len(users)].pk}",
                decided_by=DecidedBy.RULE if i % 2 else DecidedBy.USER,
            )
            for i in range(count)
        )
        calls = CallLog.objects.bulk_create(
            CallLogFactory.build(
                user=users[i % len(users)],
                status=STATUSES[i % 4],
                placeholder=placeholders[i] if i % 3 == 0 else None,
                contact_is_placeholder=i % 3 == 0,
                last_error="The CRM is unavailable (503)." if i % 4 == 1 else "",
            )
            for i in range(count)
        )
        messages = MessageLog.objects.bulk_create(
            MessageLogFactory.build(user=users[i % len(users)], status=STATUSES[i % 4]) for i in range(count)
        )
        LogEvent.objects.bulk_create(
            [
                *(LogEventFactory.build(call_log=log, kind=kind) for log in calls for kind in _KINDS),
                *(
                    LogEventFactory.build(call_log=None, message_log=log, kind=kind)
                    for log in messages
                    for kind in _KINDS
                ),
            ]
        )
        self.placeholders += placeholders
        self.calls += calls
        self.messages += messages


_KINDS = (EventKind.REQUESTED, EventKind.CRM_LOGGED)


@pytest.fixture
def rows(db) -> Rows:
    account = AccountFactory(rc_account_id="37439510")
    users = [CrmUserFactory(rc_account_id=account.rc_account_id if i % 2 else "") for i in range(5)]
    created = Rows(users=users)
    created.add(20)
    return created


def _first_call(rows: Rows) -> str:
    return reverse("admin:logs_calllog_change", args=[rows.calls[0].pk])


def _first_message(rows: Rows) -> str:
    return reverse("admin:logs_messagelog_change", args=[rows.messages[0].pk])


def _first_event(rows: Rows) -> str:
    return reverse("admin:logs_logevent_change", args=[rows.calls[0].events.first().pk])


def _first_placeholder(rows: Rows) -> str:
    return reverse("admin:rules_placeholdercontact_change", args=[rows.placeholders[0].pk])


CALLS = reverse("admin:logs_calllog_changelist")
MESSAGES = reverse("admin:logs_messagelog_changelist")
EVENTS = reverse("admin:logs_logevent_changelist")
PLACEHOLDERS = reverse("admin:rules_placeholdercontact_changelist")

# (screen, its query budget for a superuser). Auditors may add two queries: their
# permissions (their own and their groups') are read once per request.
PAGES: list[tuple[str, Callable[[Rows], str], int]] = [
    ("calls", lambda rows: CALLS, 8),
    ("calls filtered", lambda rows: CALLS + "?status__exact=failed&placeholder=rule&account=37439510", 8),
    ("calls by user", lambda rows: f"{CALLS}?user={rows.users[1].pk}&decided_by__exact=rule", 8),
    ("calls phone search", lambda rows: CALLS + "?q=%28650%29+555-0001", 8),
    ("calls drill-down", lambda rows: f"{CALLS}?created_at__year={rows.calls[0].created_at.year}", 8),
    ("call detail", _first_call, 4),
    ("call export", lambda rows: reverse("admin:logs_calllog_export") + "?status__exact=failed", 5),
    ("messages", lambda rows: MESSAGES, 8),
    ("messages filtered", lambda rows: MESSAGES + "?status__exact=failed&placeholder=no&platform=builtin", 8),
    ("messages phone search", lambda rows: MESSAGES + "?q=650.555.0001", 8),
    ("message detail", _first_message, 4),
    ("message export", lambda rows: reverse("admin:logs_messagelog_export"), 5),
    ("events", lambda rows: EVENTS, 7),
    ("events filtered", lambda rows: EVENTS + "?kind__exact=requested&log=call", 7),
    ("events search", lambda rows: EVENTS + "?q=session-1", 7),
    ("event detail", _first_event, 3),
    ("event export", lambda rows: reverse("admin:logs_logevent_export"), 3),
    ("placeholders", lambda rows: PLACEHOLDERS, 8),
    ("placeholders filtered", lambda rows: PLACEHOLDERS + "?decided_by__exact=rule&status__exact=ready", 8),
    ("placeholders by creator", lambda rows: f"{PLACEHOLDERS}?created_by={rows.users[0].pk}", 8),
    ("placeholders phone search", lambda rows: PLACEHOLDERS + "?q=%28415%29+555-0001", 8),
    ("placeholder detail", _first_placeholder, 3),
    ("placeholder export", lambda rows: reverse("admin:rules_placeholdercontact_export"), 5),
    ("dashboard", lambda rows: reverse("admin:logs_dashboard"), 5),
]


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(captured)


@pytest.mark.parametrize("who", ["admin_client", "auditor_client"])
def test_query_counts_are_bounded_with_a_thousand_rows(
    request: pytest.FixtureRequest, django_assert_max_num_queries, subtests, rows: Rows, who: str
) -> None:
    client: Client = request.getfixturevalue(who)
    extra = 2 if who == "auditor_client" else 0
    small = {}
    for screen, url_of, _ in PAGES:
        url = url_of(rows)
        client.get(url)  # warm caches (content types) as a running server has them
        small[screen] = _queries(client, url)

    rows.add(1000)

    for screen, url_of, budget in PAGES:
        url = url_of(rows)
        with subtests.test(screen=screen):
            with django_assert_max_num_queries(budget + extra, info=screen):
                response = client.get(url)
            assert response.status_code == 200
            assert _queries(client, url) == small[screen], "the count grows with the rows"


def test_the_thousand_rows_are_there(rows: Rows) -> None:
    rows.add(1000)
    assert (CallLog.objects.count(), MessageLog.objects.count(), PlaceholderContact.objects.count()) == (
        1020,
        1020,
        1020,
    )
    assert LogEvent.objects.count() == 2 * 2 * 1020
