"""Read-only queries of the log history."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from connector.models import CrmUser
from connector.utils import InvalidPhoneNumber, phone_number_normalize
from logs.choices import DecidedBy, EventKind, LogStatus
from logs.models import CallLog, MessageLog
from rules.choices import PlaceholderStatus
from rules.models import Account, PlaceholderContact


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


def call_log_last_failure(*, log: CallLog) -> dict[str, Any]:
    """The detail of the log's last CRM failure (error, status, `retryAfter` when the CRM
    throttled), or {} when it has none."""
    event = log.events.filter(kind=EventKind.CRM_FAILED).order_by("-id").only("detail").first()
    return dict(event.detail) if event is not None and isinstance(event.detail, dict) else {}


# --- admin screens ---
# Queries behind the log-history admin (logs/admin.py): what its lists load, the choices of
# its filters, and the extra terms of its search.


_Log = TypeVar("_Log", CallLog, MessageLog)

_CRM_USER_SECRETS = ("access_token", "refresh_token", "platform_additional_info_json")


def log_history_queryset(*, queryset: QuerySet[_Log]) -> QuerySet[_Log]:
    """`queryset` of call or message logs as the admin shows them, in one query per page.

    Joins the user and the placeholder contact but never loads the user's credentials (so
    they are never decrypted or shown) nor the log's stored request (`payload`), and
    annotates `account_name`: the name of the user's RingCentral account (users link to
    accounts through `rc_account_id`). Counting the rows joins nothing.
    """
    rc_account_id = CrmUser.objects.filter(pk=OuterRef(OuterRef("user_id"))).values("rc_account_id")[:1]
    account_name = Account.objects.filter(rc_account_id=Subquery(rc_account_id)).values("name")[:1]
    return (
        queryset.select_related("user", "placeholder")
        .defer(
            "payload",
            "user__user_settings",
            *(f"user__{name}" for name in _CRM_USER_SECRETS),
            "placeholder__rule_snapshot",
            "placeholder__last_error",
        )
        .annotate(account_name=Subquery(account_name))
    )


def crm_user_choices() -> list[tuple[str, str]]:
    """(id, "name (platform)") of every connected CRM user, by name: one query, no credentials."""
    return [
        (user_id, f"{name or user_id} ({platform})")
        for user_id, name, platform in CrmUser.objects.order_by("name", "id").values_list(
            "id", "name", "platform"
        )
    ]


def account_choices() -> list[tuple[str, str]]:
    """(RingCentral account id, label) of every known account, by label: one query."""
    rows = Account.objects.values_list("rc_account_id", "name")
    return sorted(
        ((rc_id, name or f"Account {rc_id}") for rc_id, name in rows), key=lambda choice: choice[1].casefold()
    )


def phone_search_number(*, term: str) -> str | None:
    """The E.164 form of a search term typed as a phone number in any format, else None.

    Logs store numbers in E.164, so `(415) 555-0100` or `415.555.0100` must be searched
    as `+14155550100`; a term that is no phone number (a session id, a name) gives None.
    """
    if not any(char.isdigit() for char in term):
        return None
    try:
        return phone_number_normalize(term)
    except InvalidPhoneNumber:
        return None


# --- dashboard ---


@dataclass(frozen=True, slots=True)
class DayActivity:
    """What the log history recorded on one day (in the site's time zone)."""

    day: date
    calls_logged: int = 0
    messages_logged: int = 0
    placeholders_by_rule: int = 0
    placeholders_by_hand: int = 0
    calls_failed: int = 0
    messages_failed: int = 0

    @property
    def failures(self) -> int:
        return self.calls_failed + self.messages_failed

    @property
    def placeholders(self) -> int:
        return self.placeholders_by_rule + self.placeholders_by_hand


def log_activity_per_day(*, days: int = 30, today: date | None = None) -> list[DayActivity]:
    """Per day of the last `days` days (oldest first, every day present): calls and
    messages logged, placeholder contacts created by a rule and by hand, and failed logs.

    A log counts on the day it was first requested, under its current status (a failure
    retried into a logged row counts as logged). Placeholders count once created in the
    CRM. Three aggregate queries, whatever the number of rows.
    """
    last = today or timezone.localdate()
    first = last - timedelta(days=days - 1)
    since = timezone.make_aware(datetime.combine(first, time.min))

    def per_day(queryset: QuerySet[Any], **counts: Count) -> dict[date, dict[str, int]]:
        rows = (
            queryset.filter(created_at__gte=since)
            .order_by()
            .annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(**counts)
        )
        return {row.pop("day"): row for row in rows}

    calls = per_day(
        CallLog.objects.all(),
        calls_logged=Count("id", filter=Q(status=LogStatus.LOGGED)),
        calls_failed=Count("id", filter=Q(status=LogStatus.FAILED)),
    )
    messages = per_day(
        MessageLog.objects.all(),
        messages_logged=Count("id", filter=Q(status=LogStatus.LOGGED)),
        messages_failed=Count("id", filter=Q(status=LogStatus.FAILED)),
    )
    placeholders = per_day(
        PlaceholderContact.objects.filter(status=PlaceholderStatus.READY),
        placeholders_by_rule=Count("id", filter=Q(decided_by=DecidedBy.RULE)),
        placeholders_by_hand=Count("id", filter=Q(decided_by=DecidedBy.USER)),
    )
    activity = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        activity.append(
            DayActivity(day=day, **calls.get(day, {}), **messages.get(day, {}), **placeholders.get(day, {}))
        )
    return activity


# --- the event trail in sentences ---

_RETRIED_BY = {"admin": "an admin", "client": "App Connect's client", "task": "the recovery task"}


def _name(detail: dict[str, Any]) -> str:
    name, contact_id = str(detail.get("contactName") or ""), str(detail.get("contactId") or "")
    if name and contact_id:
        return f"{name} ({contact_id})"
    return name or contact_id or "a contact"


def _name_source(source: str) -> str:
    return "Caller ID name" if source == "caller ID" else source


def _failure(detail: dict[str, Any]) -> str:
    when = " while checking whether it holds the log" if detail.get("check") else ""
    when = " while updating the log" if detail.get("update") else when
    if detail.get("relink"):
        when = f" while moving the log to contact {detail.get('toContactId') or '?'}; it stays where it was"
    sentence = f"The CRM failed{when}: {detail.get('error') or 'no answer'}"
    if detail.get("status"):
        sentence += f" (HTTP {detail['status']})"
    if detail.get("retryAfter"):
        sentence += f"; it asked to wait {detail['retryAfter']} s"
    return sentence


def _decided(kind: str, detail: dict[str, Any]) -> str:
    outcome = detail.get("outcome")
    placeholder = " (a placeholder)" if detail.get("placeholderId") else ""
    if kind == EventKind.MATCHED:
        if outcome == "given":
            return f"The user chose contact {_name(detail)}"
        if outcome == "multiple_resolved":
            return (
                f"Rule chose contact {_name(detail)}{placeholder} among {detail.get('matches', 'several')} "
                f"matches ({detail.get('policy', 'policy')})"
            )
        return f"Rule matched contact {_name(detail)}{placeholder}"
    if kind == EventKind.PLACEHOLDER_CREATED:
        source = f" ({_name_source(str(detail['nameSource']))})" if detail.get("nameSource") else ""
        sentence = f"Rule created placeholder {_name(detail)}{source}"
        replaced = detail.get("replacesPlaceholder")
        if isinstance(replaced, dict):
            sentence += (
                f", taking over from placeholder #{replaced.get('placeholderId')}: contact "
                f"{replaced.get('supersededBy')}, which superseded it, is no longer found for the number"
            )
        return sentence
    if kind == EventKind.PLACEHOLDER_REUSED:
        return f"Rule reused placeholder {_name(detail)}"
    # PROMPTED
    if detail.get("placeholderRefused"):
        why = detail.get("reason") or detail["placeholderRefused"]
        return f"Left to the user, no placeholder allowed: {why}"
    if detail.get("reason"):
        return f"Left to the user: {detail['reason']}"
    number = f" for {detail['phoneNumber']}" if detail.get("phoneNumber") else ""
    return f"Left to the user: no contact found{number}"


def event_sentence(*, kind: str, detail: dict[str, Any]) -> str:
    """One entry of a log's event trail as a sentence an auditor reads, built from its
    kind and detail, e.g. "Rule created placeholder Jane Roe (Caller ID name)". A kind this
    function does not know reads as its label. No query; nothing is redacted here."""
    if kind == EventKind.REQUESTED:
        attempt = detail.get("attempt")
        sentence = f"Log requested (attempt {attempt})" if attempt else "Log requested"
        return sentence + (" by server-side call logging" if detail.get("sscl") else "")
    if kind == EventKind.DUPLICATE:
        status = f", already {detail['status']}" if detail.get("status") else ""
        return f"Refused as a duplicate of session {detail.get('sessionId', '?')}{status}"
    if kind == EventKind.LOOKED_UP:
        number = f" for {detail['phoneNumber']}" if detail.get("phoneNumber") else ""
        return f"Contact looked up{number}"
    if kind in {
        EventKind.MATCHED,
        EventKind.PROMPTED,
        EventKind.PLACEHOLDER_CREATED,
        EventKind.PLACEHOLDER_REUSED,
    }:
        return _decided(kind, detail)
    if kind == EventKind.CRM_LOGGED:
        return f"Logged in the CRM as {detail.get('crmLogId') or '?'}"
    if kind == EventKind.CRM_UPDATED:
        if detail.get("shared"):
            return "Added to the conversation's activity in the CRM"
        fields = ", ".join(str(name) for name in detail.get("fields") or [])
        return f"Updated in the CRM: {fields}" if fields else "Updated in the CRM"
    if kind == EventKind.CRM_FAILED:
        if detail.get("outcome") == "failed":  # the contact decision failed (lookup or creation)
            return f"No contact: {detail.get('error') or detail.get('reason') or 'the CRM failed'}"
        return _failure(detail)
    if kind == EventKind.RETRIED:
        by = _RETRIED_BY.get(str(detail.get("by")), str(detail.get("by") or "someone"))
        attempts = detail.get("previousAttempts")
        plural = "" if attempts == 1 else "s"
        sentence = f"Retry requested by {by}" + (
            f" after {attempts} attempt{plural}" if attempts is not None else ""
        )
        return sentence + ("; sent again once the CRM was checked" if detail.get("resend") else "")
    if kind == EventKind.CRM_CHECKED:
        if detail.get("found"):
            return f"Checked the CRM: it holds the log ({detail.get('crmLogId')})"
        return "Checked the CRM: it does not hold the log"
    if kind == EventKind.RELINKED:
        admin = f" ({detail['admin']})" if detail.get("admin") else ""
        source = {"contactName": detail.get("fromContactName"), "contactId": detail.get("fromContactId")}
        target = {"contactName": detail.get("toContactName"), "contactId": detail.get("toContactId")}
        return f"Moved by an admin{admin} from placeholder {_name(source)} to contact {_name(target)}"
    if kind == EventKind.UNCONFIRMED:
        return f"Left for an admin: {detail.get('reason') or 'the CRM cannot be asked'}"
    return str(EventKind(kind).label) if kind in EventKind.values else kind


def event_actor(*, kind: str, decided_by: str, detail: dict[str, Any]) -> str:
    """Who acted in an event, where known: the rule or the user that decided, who asked
    for a retry, or the CRM for its answers; else ""."""
    if decided_by:
        return str(DecidedBy(decided_by).label) if decided_by in DecidedBy.values else decided_by
    if kind in {EventKind.RETRIED, EventKind.RELINKED}:
        return _RETRIED_BY.get(str(detail.get("by")), str(detail.get("by") or "")).capitalize()
    if kind in {EventKind.CRM_LOGGED, EventKind.CRM_UPDATED, EventKind.CRM_FAILED, EventKind.CRM_CHECKED}:
        return "The CRM"
    if kind == EventKind.REQUESTED:
        return "Server-side call logging" if detail.get("sscl") else "App Connect's client"
    return ""
