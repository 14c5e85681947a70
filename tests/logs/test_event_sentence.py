"""The event trail in sentences: `event_sentence` and `event_actor` for every kind of event."""

from __future__ import annotations

from typing import Any

import pytest

from logs.choices import DecidedBy, EventKind
from logs.selectors import event_actor, event_sentence

SENTENCES: list[tuple[str, dict[str, Any], str]] = [
    (EventKind.REQUESTED, {"attempt": 1, "sscl": False}, "Log requested (attempt 1)"),
    (
        EventKind.REQUESTED,
        {"attempt": 2, "sscl": True},
        "Log requested (attempt 2) by server-side call logging",
    ),
    (
        EventKind.DUPLICATE,
        {"sessionId": "s-1", "status": "logged"},
        "Refused as a duplicate of session s-1, already logged",
    ),
    (EventKind.LOOKED_UP, {"phoneNumber": "+14155550100"}, "Contact looked up for +14155550100"),
    (
        EventKind.MATCHED,
        {"outcome": "matched", "contactId": "12", "contactName": "Ann Lee"},
        "Rule matched contact Ann Lee (12)",
    ),
    (
        EventKind.MATCHED,
        {"outcome": "matched", "contactId": "12", "contactName": "Jane Roe", "placeholderId": 3},
        "Rule matched contact Jane Roe (12) (a placeholder)",
    ),
    (
        EventKind.MATCHED,
        {
            "outcome": "multiple_resolved",
            "contactId": "7",
            "contactName": "Bo",
            "matches": 2,
            "policy": "newest",
        },
        "Rule chose contact Bo (7) among 2 matches (newest)",
    ),
    (
        EventKind.MATCHED,
        {"outcome": "given", "contactId": "12", "contactName": "Ann Lee"},
        "The user chose contact Ann Lee (12)",
    ),
    (
        EventKind.PROMPTED,
        {"outcome": "prompted", "reason": "the unknown-contact rule leaves it to the user"},
        "Left to the user: the unknown-contact rule leaves it to the user",
    ),
    (
        EventKind.PROMPTED,
        {
            "outcome": "prompted",
            "placeholderRefused": "blockList",
            "reason": "prefix +1900 is on the block list",
        },
        "Left to the user, no placeholder allowed: prefix +1900 is on the block list",
    ),
    (
        EventKind.PLACEHOLDER_CREATED,
        {"outcome": "placeholder_created", "contactName": "Jane Roe", "nameSource": "caller ID"},
        "Rule created placeholder Jane Roe (Caller ID name)",
    ),
    (
        EventKind.PLACEHOLDER_CREATED,
        {
            "outcome": "placeholder_created",
            "contactName": "Caller 0199",
            "contactId": "31",
            "replacesPlaceholder": {"placeholderId": 4, "supersededBy": "27"},
        },
        "Rule created placeholder Caller 0199 (31), taking over from placeholder #4: contact 27, "
        "which superseded it, is no longer found for the number",
    ),
    (
        EventKind.PLACEHOLDER_REUSED,
        {"outcome": "placeholder_reused", "contactName": "Jane Roe", "contactId": "9"},
        "Rule reused placeholder Jane Roe (9)",
    ),
    (EventKind.CRM_LOGGED, {"crmLogId": "12345"}, "Logged in the CRM as 12345"),
    (
        EventKind.RELINKED,
        {
            "by": "admin",
            "admin": "ada",
            "fromContactId": "31",
            "fromContactName": "Caller 0199",
            "toContactId": "27",
            "toContactName": "Jane Real",
        },
        "Moved by an admin (ada) from placeholder Caller 0199 (31) to contact Jane Real (27)",
    ),
    (
        EventKind.CRM_FAILED,
        {"relink": True, "toContactId": "27", "error": "pipedrive rejected the request", "status": 400},
        "The CRM failed while moving the log to contact 27; it stays where it was: "
        "pipedrive rejected the request (HTTP 400)",
    ),
    (EventKind.CRM_UPDATED, {"fields": ["note", "subject"]}, "Updated in the CRM: note, subject"),
    (EventKind.CRM_UPDATED, {"shared": True}, "Added to the conversation's activity in the CRM"),
    (
        EventKind.CRM_FAILED,
        {"error": "rate limited", "status": 429, "retryAfter": 30},
        "The CRM failed: rate limited (HTTP 429); it asked to wait 30 s",
    ),
    (
        EventKind.CRM_FAILED,
        {"error": "timeout", "status": None, "check": True},
        "The CRM failed while checking whether it holds the log: timeout",
    ),
    (
        EventKind.RETRIED,
        {"previousAttempts": 2, "by": "admin"},
        "Retry requested by an admin after 2 attempts",
    ),
    (
        EventKind.RETRIED,
        {"previousAttempts": 1, "by": "admin", "resend": True},
        "Retry requested by an admin after 1 attempt; sent again once the CRM was checked",
    ),
    (EventKind.CRM_CHECKED, {"found": True, "crmLogId": "77"}, "Checked the CRM: it holds the log (77)"),
    (EventKind.CRM_CHECKED, {"found": False, "crmLogId": ""}, "Checked the CRM: it does not hold the log"),
    (
        EventKind.UNCONFIRMED,
        {"reason": "clio cannot be asked whether it holds the log"},
        "Left for an admin: clio cannot be asked whether it holds the log",
    ),
]


@pytest.mark.parametrize(("kind", "detail", "sentence"), SENTENCES)
def test_event_sentence(kind: str, detail: dict[str, Any], sentence: str) -> None:
    assert event_sentence(kind=kind, detail=detail) == sentence


def test_every_kind_has_a_sentence() -> None:
    assert {kind for kind, _, _ in SENTENCES} == set(EventKind.values)


def test_an_empty_detail_still_reads() -> None:
    for kind in EventKind.values:
        assert event_sentence(kind=kind, detail={})


@pytest.mark.parametrize(
    ("kind", "decided_by", "detail", "actor"),
    [
        (EventKind.PLACEHOLDER_CREATED, DecidedBy.RULE, {}, "Auto-logging rule"),
        (EventKind.MATCHED, DecidedBy.USER, {}, "User"),
        (EventKind.RETRIED, "", {"by": "task"}, "The recovery task"),
        (EventKind.RELINKED, "", {"by": "admin", "admin": "ada"}, "An admin"),
        (EventKind.CRM_LOGGED, "", {}, "The CRM"),
        (EventKind.REQUESTED, "", {"sscl": True}, "Server-side call logging"),
        (EventKind.UNCONFIRMED, "", {}, ""),
    ],
)
def test_event_actor(kind: str, decided_by: str, detail: dict[str, Any], actor: str) -> None:
    assert event_actor(kind=kind, decided_by=decided_by, detail=detail) == actor
