"""Read-only queries of the log history."""

from __future__ import annotations

from collections.abc import Iterable

from connector.models import CrmUser
from logs.choices import LogStatus
from logs.models import CallLog


def identity_match(rows: list[CallLog], *, hashed_extension_id: str, extension_number: str) -> CallLog | None:
    """App Connect's identity matching (appconnect-api.md §2.12): the exact hashed
    extension id first, then a row with no hash and the same extension number, then a row
    with no identity at all; with only an extension number, any row having it."""
    if hashed_extension_id:
        for row in rows:
            if row.hashed_extension_id == hashed_extension_id:
                return row
        if extension_number:
            for row in rows:
                if not row.hashed_extension_id and row.extension_number == extension_number:
                    return row
        for row in rows:
            if not row.hashed_extension_id and not row.extension_number:
                return row
        return None
    if extension_number:
        return next((row for row in rows if row.extension_number == extension_number), None)
    return rows[0] if rows else None


def call_logs_of_session(*, user: CrmUser, session_id: str) -> list[CallLog]:
    """Every log row of one session for this user and platform, oldest first."""
    return list(
        CallLog.objects.filter(user=user, platform=user.platform, session_id=session_id).order_by("id")
    )


def call_logs_lookup(
    *, user: CrmUser, session_ids: Iterable[str], hashed_extension_id: str = "", extension_number: str = ""
) -> dict[str, CallLog]:
    """The logged call of each session id (one query), keyed by session id.

    Only logs the CRM holds count: pending, failed and skipped ones are not "logged".
    """
    wanted = list(dict.fromkeys(session_ids))
    rows: dict[str, list[CallLog]] = {}
    for row in CallLog.objects.filter(
        user=user, platform=user.platform, session_id__in=wanted, status=LogStatus.LOGGED
    ).order_by("id"):
        rows.setdefault(row.session_id, []).append(row)
    found = {}
    for session_id, candidates in rows.items():
        match = identity_match(
            candidates, hashed_extension_id=hashed_extension_id, extension_number=extension_number
        )
        if match is not None:
            found[session_id] = match
    return found


def call_log_find_logged(
    *, user: CrmUser, session_id: str, hashed_extension_id: str = "", extension_number: str = ""
) -> CallLog | None:
    """The logged call of one session for this user and extension identity, or None."""
    return call_logs_lookup(
        user=user,
        session_ids=[session_id],
        hashed_extension_id=hashed_extension_id,
        extension_number=extension_number,
    ).get(session_id)
