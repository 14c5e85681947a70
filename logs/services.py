"""Logging calls and messages into the CRM, and recording every step in the log history.

One pipeline, whichever way a log arrives (an API request, an admin's retry, the recovery
task): claim the row -> decide the contact (rules) -> write to the CRM -> finish.

- **Claim.** A row per call (user, platform, session, extension identity) or message is
  inserted as pending under a unique key, with a *lease*: a random token and a time. Only
  the lease holder goes on. A failed or skipped row, or a pending one whose lease lapsed
  (its request died), is taken over by the next request, retry or task for it, with a
  compare-and-set on the token it saw, so exactly one of them wins.
- **Write.** Just before the CRM write, the holder records the decided contact and marks
  the write as started (`crm_write_started_at`), fenced by its token: a holder that lost
  its lease writes nothing.
- **Finish.** The outcome and the attempt's events are recorded together, in one
  transaction; the write mark is cleared once the CRM's answer is known.
- **Reconcile.** A row still marked as written (its holder died, or the CRM's answer was
  lost) is never sent again blind: the CRM is asked first (`find_call_log`,
  `find_message_log`). Found: the row is recorded as logged. Not found: it is sent. A CRM
  that cannot be asked: the row becomes `unconfirmed`, for an admin.

So each call or message is written to the CRM at most once however requests, retries and
crashes interleave, and what a dead request left is finished by the next touch.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import quote

from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.models import Q
from django.utils import timezone

from connector.conf import connector_settings
from connector.crm.base import (
    CallLogDetails,
    CallLogInput,
    CallLogUpdate,
    CrmClient,
    CrmError,
    CrmRateLimited,
    JsonDict,
    LogContact,
    MessageLogInput,
)
from connector.crm.registry import crm_registry
from connector.db import (
    connection_release_while_waiting,
    insert_returning_pk,
    update_where,
    update_where_and_insert,
    with_defaults,
)
from connector.exceptions import CrmSessionRevoked, return_message
from connector.models import CrmUser
from connector.selectors import crm_user_get
from connector.services import crm_failure_message
from connector.utils import InvalidPhoneNumber, phone_number_normalize
from logs.choices import DecidedBy, EventKind, LogStatus
from logs.composer import (
    CallFields,
    call_log_details_compose,
    date_time_format,
    parse_time,
    shared_sms_compose,
)
from logs.models import CallLog, LogEvent, MessageLog
from logs.selectors import (
    call_log_find_logged,
    call_logs_of_session,
    identity_match,
)
from rules.choices import DecisionOutcome
from rules.models import PlaceholderContact
from rules.selectors import placeholders_in_scope
from rules.services import ContactDecision, LogTraffic, contact_decide

logger = logging.getLogger(__name__)

# How long a note sent to POST /callLog/cacheNote waits for its call log.
CALL_NOTE_TTL_SECONDS = 3600
# A request for a log that another live request holds waits this long for it to finish.
DUPLICATE_WAIT_SECONDS = 5.0
# RingCentral fields that carry credentials; never stored in the history.
_SECRET_KEYS = frozenset({"rcAccessToken", "accessToken", "access_token", "adminAssignedUserToken"})


def identity_key(*, hashed_extension_id: str, extension_number: str) -> str:
    """The extension identity a call log is unique under: the hashed RingCentral
    extension id when known, else the extension number, else nothing."""
    if hashed_extension_id:
        return f"h:{hashed_extension_id}"
    if extension_number:
        return f"e:{extension_number}"
    return ""


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if k not in _SECRET_KEYS}
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    return value


@dataclass(slots=True)
class LogOutcome:
    """What a logging route answers: `successful`, the CRM id(s), the message to show."""

    successful: bool
    log_id: str | int | None = None
    return_message: JsonDict | None = None
    log_ids: list[str] | None = None
    updated_note: str | None = None


_OUTCOME_EVENTS = {
    DecisionOutcome.GIVEN: EventKind.MATCHED,
    DecisionOutcome.MATCHED: EventKind.MATCHED,
    DecisionOutcome.MULTIPLE_RESOLVED: EventKind.MATCHED,
    DecisionOutcome.PROMPTED: EventKind.PROMPTED,
    DecisionOutcome.PLACEHOLDER_CREATED: EventKind.PLACEHOLDER_CREATED,
    DecisionOutcome.PLACEHOLDER_REUSED: EventKind.PLACEHOLDER_REUSED,
    DecisionOutcome.FAILED: EventKind.CRM_FAILED,
}


def _given_contact(contact_id: str, phone_number: str, contact_type: str, name: str) -> LogContact | None:
    """The contact a request (or a user's earlier choice) names, if any: the manual flow."""
    if not contact_id:
        return None
    return LogContact(id=contact_id, phone_number=phone_number, type=contact_type, name=name)


# Outcomes whose contact the CRM's lookup found: the decision cannot know whether it is a
# placeholder (created earlier, by a rule or a user), so the registry is asked.
_LOOKED_UP_OUTCOMES = frozenset({DecisionOutcome.MATCHED, DecisionOutcome.MULTIPLE_RESOLVED})


def _contact_decide(*, user: CrmUser, **kwargs: Any) -> ContactDecision:
    """`rules.services.contact_decide`, with every contact that is a placeholder marked so.

    A placeholder the decision created, reused or was given (the manual flow) is already
    marked; a contact the lookup matched is looked for in the registry (one statement),
    since the CRM returns an earlier placeholder as any other contact. A marked match
    records `placeholderId` in its snapshot. Same side effects as `contact_decide`.
    """
    decision = contact_decide(user=user, **kwargs)
    if decision.is_placeholder or decision.contact is None or decision.outcome not in _LOOKED_UP_OUTCOMES:
        return decision
    found = placeholders_in_scope(user=user, contact_id=decision.contact.id) if decision.contact.id else []
    if not found:
        return decision
    placeholder_id = found[0].pk
    return replace(
        decision,
        is_placeholder=True,
        placeholder=PlaceholderContact(pk=placeholder_id),
        snapshot={**decision.snapshot, "placeholderId": placeholder_id},
    )


def _decision_event(decision: ContactDecision) -> tuple[str, str, JsonDict]:
    detail: JsonDict = {"outcome": decision.outcome.value, **decision.snapshot}
    if decision.contact is not None:
        detail["contactId"] = decision.contact.id
        detail["contactName"] = decision.contact.name
    return _OUTCOME_EVENTS[decision.outcome], decision.decided_by, detail


Events = list[tuple[str, str, JsonDict]]


def _event_objects(log: CallLog | MessageLog, entries: Events) -> list[LogEvent]:
    is_call = isinstance(log, CallLog)
    return [
        LogEvent(
            call_log_id=log.pk if is_call else None,
            message_log_id=None if is_call else log.pk,
            kind=kind,
            decided_by=by,
            detail=detail,
        )
        for kind, by, detail in entries
    ]


def _events_record(*, log: CallLog | MessageLog, entries: Events) -> None:
    """Append events to a log's trail."""
    LogEvent.objects.bulk_create(_event_objects(log, entries))


# --- the pipeline: leases, the write mark, the outcome -------------------------------------


def _lease_seconds() -> float:
    return float(connector_settings.LOG_LEASE_SECONDS)


def _new_token() -> str:
    """A lease token: unique per claim, so a compare-and-set on it sees any other claim."""
    return secrets.token_hex(16)


def _lapsed() -> Q:
    """Pending rows whose lease lapsed: the request holding them died (or never renewed)."""
    return Q(status=LogStatus.PENDING) & (Q(lease_until__lt=timezone.now()) | Q(lease_until__isnull=True))


def _takeable(*, skipped: bool) -> Q:
    """Rows a request, retry or task may take over: failed ones, pending ones whose lease
    lapsed, and (for a client's request, which may now name a contact) skipped ones."""
    condition = Q(status=LogStatus.FAILED) | _lapsed()
    return condition | Q(status=LogStatus.SKIPPED) if skipped else condition


def _is_takeable(row: CallLog | MessageLog, *, skipped: bool) -> bool:
    if row.status == LogStatus.FAILED or (skipped and row.status == LogStatus.SKIPPED):
        return True
    return row.status == LogStatus.PENDING and (row.lease_until is None or row.lease_until < timezone.now())


def _take_over(row: CallLog | MessageLog, *, token: str, skipped: bool, **changes: Any) -> bool:
    """Take `row` over for the lease `token` if it may be taken and no one else took it
    since it was read. One statement decides between competing takers; the winner reads
    the row again (an attempt may have finished between the read and the take-over)."""
    now = timezone.now()
    taken = (
        type(row)
        .objects.filter(_takeable(skipped=skipped), pk=row.pk, lease_owner=row.lease_owner)
        .update(
            status=LogStatus.PENDING,
            lease_owner=token,
            lease_until=now + timedelta(seconds=_lease_seconds()),
            updated_at=now,
            **changes,
        )
    )
    if taken:
        row.refresh_from_db()
    return bool(taken)


@dataclass(slots=True)
class _Lease:
    """A request's hold on a claimed row."""

    row: CallLog | MessageLog
    token: str

    def fence(self) -> JsonDict:
        """The row, only while this lease holds it: the WHERE of every fenced UPDATE."""
        return {"id": self.row.pk, "lease_owner": self.token, "status": LogStatus.PENDING}


# The two writes every log makes around its CRM call are hand-written statements
# (connector.db): through the ORM they were a third of POST /callLog's CPU, and the outcome
# with its events took a transaction of three round trips instead of one statement
# (bench/profile.py). Neither model has save() logic, signals or history to skip.


def _write_begin(lease: _Lease, decision: ContactDecision) -> bool:
    """Record the decided contact and mark the CRM write as started, renewing the lease.
    False when the lease was lost to another request: then nothing may be written."""
    now = timezone.now()
    changes = {
        "crm_write_started_at": now,
        "lease_until": now + timedelta(seconds=_lease_seconds()),
        "updated_at": now,
        **_decision_fields(decision),
    }
    return bool(update_where(type(lease.row), changes, where=lease.fence()))


def _finish(lease: _Lease, *, status: str, events: Events, settled: bool = True, **values: Any) -> bool:
    """Record an attempt's outcome (status, one more attempt, CRM fields) and its events,
    all or nothing, and end the lease. `settled` clears the write mark: the CRM's answer
    is known. False when the lease had been lost (nothing is recorded then)."""
    now = timezone.now()
    changes: dict[str, Any] = {"status": status, "lease_until": None, "updated_at": now, **values}
    if settled:
        changes["crm_write_started_at"] = None
    row = lease.row
    link = "call_log_id" if isinstance(row, CallLog) else "message_log_id"
    events_rows = [
        {link: row.pk, "kind": kind, "decided_by": by, "detail": detail, "created_at": now}
        for kind, by, detail in events
    ]
    done = update_where_and_insert(
        type(row),
        changes,
        where=lease.fence(),
        increment="attempts",
        rows_model=LogEvent,
        rows=events_rows,
    )
    if done:
        row.status = status
    return done


def _decision_fields(decision: ContactDecision) -> JsonDict:
    contact = decision.contact
    return {
        "placeholder_id": decision.placeholder.pk if decision.placeholder else None,
        "decided_by": decision.decided_by,
        "decision": {"outcome": decision.outcome.value, **decision.snapshot},
        "contact_is_placeholder": decision.is_placeholder,
        "contact_id": contact.id[:255] if contact else "",
        "contact_name": contact.name[:255] if contact else "",
        "contact_type": contact.type[:64] if contact else "",
    }


def _finish_without_contact(lease: _Lease, decision: ContactDecision, events: Events) -> LogOutcome:
    """No contact to log against: skipped when the rules left it to the user, else failed."""
    status = LogStatus.SKIPPED if decision.outcome == DecisionOutcome.PROMPTED else LogStatus.FAILED
    error = (decision.return_message or {}).get("message", "") if status == LogStatus.FAILED else ""
    _finish(lease, status=status, last_error=error, **_decision_fields(decision), events=events)
    return LogOutcome(successful=False, return_message=decision.return_message)


# What a request is told about a log another request holds or that waits for an admin.
UNCONFIRMED_TEXT = (
    "This log may already be in the CRM, which cannot be asked; "
    "an admin will check it before it is sent again."
)
IN_FLIGHT_TEXT = "This log is still being written to the CRM. Please try again in a moment."


def _await_holder(row: CallLog | MessageLog, *, token: str) -> bool:
    """Wait (at most DUPLICATE_WAIT_SECONDS) for the live request holding `row` to finish,
    and take the row over if that request fails or dies. True when this request holds the
    row now; otherwise `row` is as last read."""
    deadline = time.monotonic() + min(DUPLICATE_WAIT_SECONDS, _lease_seconds())
    pause = 0.02
    while row.status == LogStatus.PENDING and time.monotonic() < deadline:
        connection_release_while_waiting()
        time.sleep(pause)
        pause = min(pause * 2, 0.25)
        row.refresh_from_db()
        if _is_takeable(row, skipped=True) and _take_over(row, token=token, skipped=True):
            return True
    return False


def _not_held_message(row: CallLog | MessageLog, *, existing: str) -> JsonDict:
    """The answer for a log this request could not take: in flight, waiting for an admin,
    or logged already (App Connect's duplicate answer)."""
    if row.status == LogStatus.UNCONFIRMED:
        return return_message(UNCONFIRMED_TEXT)
    if row.status == LogStatus.PENDING:
        return return_message(IN_FLIGHT_TEXT, ttl=3000)
    return return_message(existing, ttl=3000)


def _reconcile(
    lease: _Lease, *, user: CrmUser, client: CrmClient, kind: str, log_key: str, events: Events
) -> tuple[str, LogOutcome | None]:
    """Ask the CRM whether it holds the write this row began and never recorded.

    Returns (its CRM log id, None) when it does, the row recorded logged; ("", None) when
    it does not, so the caller sends; ("", outcome) when that cannot be known, with the
    row recorded `unconfirmed` (this CRM cannot be asked) or failed (it did not answer),
    its write mark kept so the next attempt asks again.
    """
    row = lease.row
    find = client.find_call_log if kind == "call" else client.find_message_log
    try:
        found = find(user=user, log_key=log_key, contact_id=row.contact_id)
    except NotImplementedError:
        reason = f"{user.platform} cannot be asked whether it holds the log"
        events.append((EventKind.UNCONFIRMED, "", {"reason": reason}))
        _finish(lease, status=LogStatus.UNCONFIRMED, settled=False, last_error=reason, events=events)
        return "", LogOutcome(successful=False, return_message=return_message(UNCONFIRMED_TEXT))
    except CrmError as exc:
        events.append((EventKind.CRM_FAILED, "", {**crm_failure_detail(exc), "check": True}))
        _finish(lease, status=LogStatus.FAILED, settled=False, last_error=str(exc), events=events)
        operation = "findCallLog" if kind == "call" else "findMessageLog"
        failure = crm_failure_message(operation=operation, error=exc, platform=user.platform)
        return "", LogOutcome(successful=False, return_message=failure)
    events.append((EventKind.CRM_CHECKED, "", {"found": bool(found), "crmLogId": found or ""}))
    if not found:
        return "", None
    _finish(lease, status=LogStatus.LOGGED, crm_log_id=str(found)[:255], last_error="", events=events)
    return str(found), None


def crm_failure_detail(exc: CrmError) -> JsonDict:
    """What the event trail keeps of a CRM failure: the error, the CRM's HTTP status and,
    when it throttled us, how long it asked us to wait and its rate-limit headers."""
    detail: JsonDict = {"error": str(exc), "status": exc.status_code}
    if isinstance(exc, CrmRateLimited):
        detail["retryAfter"] = exc.retry_after
        if exc.limits:
            detail["rateLimit"] = exc.limits
    return detail


@contextmanager
def _revocation_fails(lease: _Lease, events: Events, *, earlier_mark: bool) -> Iterator[None]:
    """A CRM session revoked during an attempt (its OAuth grant is gone) records the row
    failed and goes up: the route answers App Connect's 401 CRM_SESSION_REVOKED.

    The revocation comes before any CRM call of the attempt is sent, so this attempt wrote
    nothing: a write mark it set itself is cleared; one an earlier attempt left
    (`earlier_mark`) is kept, and the next attempt still asks the CRM first."""
    try:
        yield
    except CrmSessionRevoked:
        events.append((EventKind.CRM_FAILED, "", {"error": "the CRM session was revoked", "status": 401}))
        _finish(
            lease,
            status=LogStatus.FAILED,
            settled=not earlier_mark,
            last_error=_SESSION_REVOKED,
            events=events,
        )
        raise


_SESSION_REVOKED = "The CRM session was revoked; the user must connect again."


def _write_failed(lease: _Lease, exc: CrmError, *, events: Events, decision: ContactDecision) -> None:
    """Record a CRM write that raised: failed, and still marked as written when the CRM may
    have carried it out (its answer was lost)."""
    events.append((EventKind.CRM_FAILED, "", crm_failure_detail(exc)))
    _finish(
        lease,
        status=LogStatus.FAILED,
        settled=not exc.uncertain,
        last_error=str(exc),
        **_decision_fields(decision),
        events=events,
    )


# --- call logs ---------------------------------------------------------------------------


@dataclass(slots=True)
class CallLogRequest:
    """A validated POST /callLog body, with the counterpart's number already normalised."""

    log_info: JsonDict
    phone_number: str  # E.164, or "" when the call object has none
    raw_number: str  # the number as the client sent it (used in messages, as the peer does)
    contact_id: str = ""
    contact_type: str = ""
    contact_name: str = ""
    note: str = ""
    additional_submission: JsonDict = field(default_factory=dict)
    extras: JsonDict = field(default_factory=dict)
    extension_number: str = ""
    hashed_extension_id: str = ""
    hashed_account_id: str = ""
    is_from_sscl: bool = False

    @property
    def session_id(self) -> str:
        return str(self.log_info["sessionId"])

    def payload(self) -> JsonDict:
        """The request as stored for a retry, without credentials."""
        return _without_secrets(
            {
                "logInfo": self.log_info,
                "phoneNumber": self.phone_number,
                "rawNumber": self.raw_number,
                "contactId": self.contact_id,
                "contactType": self.contact_type,
                "contactName": self.contact_name,
                "note": self.note,
                "additionalSubmission": self.additional_submission,
                "extras": self.extras,
                "extensionNumber": self.extension_number,
                "hashedExtensionId": self.hashed_extension_id,
                "hashedAccountId": self.hashed_account_id,
                "isFromSSCL": self.is_from_sscl,
            }
        )

    @classmethod
    def from_payload(cls, payload: JsonDict) -> CallLogRequest:
        return cls(
            log_info=payload["logInfo"],
            phone_number=payload.get("phoneNumber", ""),
            raw_number=payload.get("rawNumber", ""),
            contact_id=payload.get("contactId", ""),
            contact_type=payload.get("contactType", ""),
            contact_name=payload.get("contactName", ""),
            note=payload.get("note", ""),
            additional_submission=payload.get("additionalSubmission", {}),
            extras=payload.get("extras", {}),
            extension_number=payload.get("extensionNumber", ""),
            hashed_extension_id=payload.get("hashedExtensionId", ""),
            hashed_account_id=payload.get("hashedAccountId", ""),
            is_from_sscl=payload.get("isFromSSCL", False),
        )


def _seconds(duration: Any) -> int | None:
    """A duration as the history stores it: whole seconds that fit the column, else None."""
    if isinstance(duration, (int, float)) and not isinstance(duration, bool) and 0 <= duration <= 2**31 - 1:
        return int(duration)
    return None


def _call_log_claim(
    *, user: CrmUser, request: CallLogRequest, token: str, decision: ContactDecision | None = None
) -> tuple[CallLog, bool, bool]:
    """Insert the pending row for this call under the lease `token`, or take over a failed,
    skipped or abandoned one.

    Returns the row, whether this request holds it, and whether it is new; a row that is
    logged, unconfirmed or held by a live request belongs to someone else (the duplicate
    case). A `decision` made before the claim goes into a new row with its write mark (see
    `call_log_create`); a row taken over gets neither, since it may need reconciling first.
    """
    info = request.log_info
    duration = info.get("duration")
    fields: JsonDict = {
        "record_id": str(info.get("telephonySessionId") or info.get("id") or "")[:128],
        "hashed_extension_id": request.hashed_extension_id,
        "extension_number": request.extension_number,
        "direction": info.get("direction") or "",
        "phone_number": request.phone_number or request.raw_number[:32],
        "started_at": parse_time(info.get("startTime")),
        "duration_seconds": _seconds(duration),
        "result": str(info.get("result") or "")[:64],
        "payload": request.payload(),
    }
    key = {
        "user": user.pk,
        "platform": user.platform,
        "session_id": request.session_id,
        "identity_key": identity_key(
            hashed_extension_id=request.hashed_extension_id, extension_number=request.extension_number
        ),
    }
    now = timezone.now()
    lease = {"lease_owner": token, "lease_until": now + timedelta(seconds=_lease_seconds())}
    decided = {**_decision_fields(decision), "crm_write_started_at": now} if decision is not None else {}
    row = with_defaults(CallLog, {**key, **fields, **lease, **decided})
    # The usual case, a session never seen, in one statement (the ORM's SELECT and INSERT in
    # a transaction were a fifth of POST /callLog, bench/profile.py): insert unless the
    # session has any row; a concurrent twin hits the unique key and inserts nothing.
    table = connection.ops.quote_name(CallLog._meta.db_table)
    session_rows = f"SELECT 1 FROM {table} WHERE user_id = %s AND platform = %s AND session_id = %s"  # noqa: S608
    pk = insert_returning_pk(
        CallLog,
        row,
        condition=f"NOT EXISTS ({session_rows})",
        condition_params=[user.pk, user.platform, request.session_id],
        ignore_conflicts=True,
    )
    if pk is not None:
        return CallLog(pk=pk, **{**row, "user": user}), True, True
    # The session has rows: App Connect's identity rules decide whether one is this log (a
    # row logged with only the extension number matches a request with the hashed id, ...).
    existing = identity_match(
        call_logs_of_session(user=user, session_id=request.session_id),
        hashed_extension_id=request.hashed_extension_id,
        extension_number=request.extension_number,
    )
    if existing is None:
        pk = insert_returning_pk(CallLog, row, ignore_conflicts=True)
        if pk is not None:
            return CallLog(pk=pk, **{**row, "user": user}), True, True
        existing = CallLog.objects.get(**{**key, "user": user})
    held = _is_takeable(existing, skipped=True) and _take_over(existing, token=token, skipped=True, **fields)
    return existing, held, False


def call_log_key(log: CallLog) -> str:
    """The key a call is written to the CRM under (`CallLogInput.log_key`)."""
    return f"call:{log.session_id}:{log.identity_key}"


def _call_log_process(
    lease: _Lease,
    *,
    user: CrmUser,
    client: CrmClient,
    request: CallLogRequest,
    events: Events,
    marked: ContactDecision | None = None,
) -> LogOutcome:
    """The rest of the pipeline for a held call row: reconcile a write an earlier attempt
    began, else decide the contact, write the CRM activity and record the outcome.
    `marked` is the decision a new row was claimed with, its write already marked."""
    row = lease.row
    assert isinstance(row, CallLog)
    log_key = call_log_key(row)
    if marked is None and row.crm_write_started_at is not None:
        found, outcome = _reconcile(
            lease, user=user, client=client, kind="call", log_key=log_key, events=events
        )
        if outcome is not None:
            return outcome
        if found:
            logged = return_message("Call logged", message_type="success", ttl=2000)
            return LogOutcome(successful=True, log_id=found, return_message=logged)
    decision = marked or _call_log_decide(user=user, client=client, request=request)
    events.append(_decision_event(decision))
    if decision.contact is None:
        return _finish_without_contact(lease, decision, events)

    composed = call_log_details_compose(
        fields=_call_fields(request),
        user_settings=user.user_settings,
        timezone_offset=user.timezone_offset,
        log_format=client.get_log_format_type(),
    )
    if marked is None and not _write_begin(lease, decision):
        return LogOutcome(successful=False, return_message=return_message(IN_FLIGHT_TEXT, ttl=3000))
    try:
        result = client.create_call_log(
            user=user,
            contact=decision.contact,
            data=CallLogInput(
                call_log=request.log_info,
                note=request.note,
                additional_submission=request.additional_submission,
                composed_log_details=composed,
                extras=request.extras,
                hashed_account_id=request.hashed_account_id,
                is_from_sscl=request.is_from_sscl,
                log_key=log_key,
            ),
        )
    except CrmError as exc:
        _write_failed(lease, exc, events=events, decision=decision)
        message = crm_failure_message(operation="createCallLog", error=exc, platform=user.platform)
        return LogOutcome(successful=False, return_message=message)
    if not result.log_id:
        error = (result.return_message or {}).get("message") or "The CRM created no log."
        events.append((EventKind.CRM_FAILED, "", {"error": error}))
        _finish(lease, status=LogStatus.FAILED, last_error=error, events=events)
        return LogOutcome(successful=False, return_message=result.return_message)
    events.append((EventKind.CRM_LOGGED, "", {"crmLogId": str(result.log_id)}))
    try:
        _finish(
            lease, status=LogStatus.LOGGED, crm_log_id=str(result.log_id)[:255], last_error="", events=events
        )
    except DatabaseError:
        # The CRM holds the activity; the row keeps its write mark, so the next touch (the
        # client's retry, an admin's, the recovery task) finds it there and records it.
        logger.warning("Call log %s is in the CRM but its outcome was not recorded", row.pk, exc_info=True)
    return LogOutcome(successful=True, log_id=result.log_id, return_message=result.return_message)


def _call_log_decide(*, user: CrmUser, client: CrmClient, request: CallLogRequest) -> ContactDecision:
    given = _given_contact(request.contact_id, request.raw_number, request.contact_type, request.contact_name)
    return _contact_decide(
        user=user,
        client=client,
        phone_number=request.phone_number,
        raw_number=request.raw_number,
        given_contact=given,
        caller_id_name=caller_id_name_of(request.log_info),
        traffic=None if given else _call_traffic(request.log_info, user=user),
    )


def _day(value: Any, *, user: CrmUser) -> date | None:
    """The day of a call or message time in the user's time zone (for `{date}`)."""
    text = date_time_format(value, date_format="YYYY-MM-DD", timezone_offset=user.timezone_offset)
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _call_traffic(log_info: JsonDict, *, user: CrmUser) -> LogTraffic:
    """What the rules weigh besides the number (see `rules.services.placeholder_refusal`)."""
    inbound = log_info.get("direction") == "Inbound"
    party = (log_info.get("from") if inbound else log_info.get("to")) or {}
    agent = (log_info.get("to") if inbound else log_info.get("from")) or {}
    return LogTraffic(
        kind="call",
        direction=str(log_info.get("direction") or ""),
        result=str(log_info.get("result") or ""),
        duration_seconds=_seconds(log_info.get("duration")),
        party=party,
        own_numbers=(str(agent.get("phoneNumber") or ""),),
        day=_day(log_info.get("startTime"), user=user),
    )


def _e164(raw: str) -> str:
    try:
        return phone_number_normalize(raw)
    except InvalidPhoneNumber:
        return raw


def _message_traffic(
    messages: list[JsonDict], correspondents: list[JsonDict], *, user: CrmUser
) -> LogTraffic:
    """As `_call_traffic`, for a conversation: inbound when any message is, every
    message's type, and the agent's numbers (the ends of its messages that are no
    correspondent's)."""
    theirs = {_e164(str(c.get("phoneNumber") or "")) for c in correspondents}
    ends: list[str] = []
    for message in messages:
        ends.append(str((message.get("from") or {}).get("phoneNumber") or ""))
        ends.extend(str((to or {}).get("phoneNumber") or "") for to in message.get("to") or [])
    inbound = any(m.get("direction") == "Inbound" for m in messages)
    outbound = any(m.get("direction") == "Outbound" for m in messages)
    return LogTraffic(
        kind="message",
        direction="Inbound" if inbound else "Outbound" if outbound else "",
        message_types=tuple(str(m.get("type") or "") for m in messages),
        party=correspondents[0] if correspondents else {},
        own_numbers=tuple(dict.fromkeys(end for end in ends if end and _e164(end) not in theirs)),
        day=_day(messages[-1].get("creationTime"), user=user) if messages else None,
    )


def caller_id_name_of(log_info: JsonDict) -> str:
    """The name RingCentral shows for the other party of a call (its Caller ID name)."""
    party = log_info.get("from") if log_info.get("direction") == "Inbound" else log_info.get("to")
    return str((party or {}).get("name") or "")


def call_log_create(*, user_id: str, request: CallLogRequest) -> LogOutcome:
    """Log a call into the user's CRM (POST /callLog).

    Writes the call-log row and its events; writes the CRM activity at most once per
    session and extension identity, however many requests arrive for it at once. A request
    for a call another live request is logging waits for it (DUPLICATE_WAIT_SECONDS), and
    takes it over if that request fails or dies.
    """
    user = crm_user_get(user_id=user_id)
    if user is None or not user.is_connected:
        return LogOutcome(successful=False, return_message=return_message("User not found"))
    client = crm_registry.get(user.platform)
    if request.is_from_sscl and not request.note:
        request.note = cache.get(_note_cache_key(user.pk, request.session_id)) or ""
    token = _new_token()
    # A call against the contact the request names needs no CRM call to decide (the
    # manual flow, most calls): decided first, the claim of a new row also marks its write,
    # one statement fewer on the way to the CRM.
    decided = _call_log_decide(user=user, client=client, request=request) if request.contact_id else None
    log, held, new = _call_log_claim(user=user, request=request, token=token, decision=decided)
    marked = decided if new else None
    if not held and log.status == LogStatus.PENDING:
        held = _await_holder(log, token=token)
    if not held:
        _events_record(
            log=log,
            entries=[(EventKind.DUPLICATE, "", {"sessionId": request.session_id, "status": log.status})],
        )
        existing = f"Existing log for session {request.session_id}"
        return LogOutcome(successful=False, return_message=_not_held_message(log, existing=existing))
    events: Events = [(EventKind.REQUESTED, "", {"attempt": log.attempts + 1, "sscl": request.is_from_sscl})]
    if not new and (log.attempts or log.crm_write_started_at is not None):
        events.insert(0, (EventKind.RETRIED, "", {"previousAttempts": log.attempts, "by": "client"}))
    lease = _Lease(log, token)
    earlier_mark = not new and log.crm_write_started_at is not None
    with _revocation_fails(lease, events, earlier_mark=earlier_mark):
        return _call_log_process(
            lease, user=user, client=client, request=request, events=events, marked=marked
        )


def _retry_take(row: CallLog | MessageLog, *, token: str, resend: bool) -> bool:
    """Take a row over for a retry: a failed one, or a pending one whose request died. With
    `resend`, an unconfirmed one too: an admin checked that the CRM does not hold it, so its
    write mark goes and it is sent again."""
    if resend and row.status == LogStatus.UNCONFIRMED:
        taken = (
            type(row)
            .objects.filter(pk=row.pk, status=LogStatus.UNCONFIRMED, lease_owner=row.lease_owner)
            .update(
                status=LogStatus.PENDING,
                lease_owner=token,
                lease_until=timezone.now() + timedelta(seconds=_lease_seconds()),
                crm_write_started_at=None,
                updated_at=timezone.now(),
            )
        )
        if taken:
            row.refresh_from_db()
        return bool(taken)
    return _is_takeable(row, skipped=False) and _take_over(row, token=token, skipped=False)


def call_log_retry(*, log: CallLog, by: str = "admin", resend: bool = False) -> LogOutcome:
    """Send a failed call log to the CRM again from its stored request, or finish one whose
    request died (its lease lapsed), through the same pipeline as a request.

    A log that is logged, skipped or held by a live request is left alone, and so is an
    unconfirmed one unless `resend` (see `_retry_take`). A write an earlier attempt began
    is first looked for in the CRM. The contact a user chose is kept; otherwise the rules
    decide again and find the placeholder an earlier attempt created. `by` names who
    retried ("admin", "task") on the trail.
    """
    taken = _retry_start(CallLog, log.pk, resend=resend)
    if isinstance(taken, LogOutcome):
        return taken
    row, token = taken
    assert isinstance(row, CallLog)
    request = CallLogRequest.from_payload(row.payload)
    if row.decided_by == DecidedBy.USER and row.contact_id:
        request.contact_id = row.contact_id
    events: Events = [_retried_event(row, by=by, resend=resend)]
    client = crm_registry.get(row.user.platform)
    lease = _Lease(row, token)
    with _revocation_fails(lease, events, earlier_mark=row.crm_write_started_at is not None):
        return _call_log_process(lease, user=row.user, client=client, request=request, events=events)


def _retry_start(
    model: type[CallLog] | type[MessageLog], pk: int, *, resend: bool
) -> tuple[CallLog | MessageLog, str] | LogOutcome:
    """Read a log with its user and take it over for a retry (see `_retry_take`): the row
    and the lease token, or the answer when there is nothing to retry."""
    row = model.objects.select_related("user").filter(pk=pk).first()
    if row is None:
        return LogOutcome(successful=False, return_message=return_message(_NOTHING_TO_RETRY))
    if not row.user.is_connected:
        return LogOutcome(successful=False, return_message=return_message(_NOT_CONNECTED))
    token = _new_token()
    if not _retry_take(row, token=token, resend=resend):
        return LogOutcome(successful=False, return_message=return_message(_NOTHING_TO_RETRY))
    return row, token


def _retried_event(
    row: CallLog | MessageLog, *, by: str, resend: bool, **detail: Any
) -> tuple[str, str, JsonDict]:
    entry: JsonDict = {"previousAttempts": row.attempts, "by": by, **detail}
    if resend:
        entry["resend"] = True
    return EventKind.RETRIED, "", entry


def _call_fields(request: CallLogRequest) -> CallFields:
    info = request.log_info
    voicemail = request.extras.get("voicemailLink") or (info.get("voicemail") or {}).get("link")
    return CallFields(
        note=request.note or None,
        session_id=request.session_id,
        direction=info.get("direction"),
        from_party=info.get("from") or {},
        to_party=info.get("to") or {},
        subject=info.get("customSubject"),
        contact_number=request.raw_number or None,
        start_time=info.get("startTime"),
        duration=info.get("duration"),
        has_duration="duration" in info,
        result=info.get("result"),
        recording_link=(info.get("recording") or {}).get("link"),
        voicemail_link=voicemail,
        ai_note=request.extras.get("aiNote"),
        transcript=request.extras.get("transcript"),
        legs=info.get("legs") or [],
    )


def call_log_details_get(*, user: CrmUser, client: CrmClient, log: CallLog) -> CallLogDetails:
    """What the CRM holds for a logged call (GET /callLog?requireDetails=true)."""
    try:
        return client.get_call_log(user=user, crm_log_id=log.crm_log_id, contact_id=log.contact_id)
    except NotImplementedError:
        return CallLogDetails(info=None)
    except CrmError as exc:
        return CallLogDetails(
            info=None,
            return_message=crm_failure_message(operation="getCallLog", error=exc, platform=user.platform),
        )


def _note_cache_key(user_id: str, session_id: str) -> str:
    # Hashed: session ids are client text, and cache keys may not hold spaces or controls.
    return "call-note:" + hashlib.sha256(f"{user_id}\n{session_id}".encode()).hexdigest()


def call_note_cache(*, user_id: str, session_id: str, note: str) -> None:
    """Keep a note for an upcoming server-side call log of `session_id` (one hour)."""
    cache.set(_note_cache_key(user_id, session_id), note, CALL_NOTE_TTL_SECONDS)


@dataclass(slots=True)
class CallLogPatch:
    """A validated PATCH /callLog body."""

    session_id: str
    extension_number: str = ""
    hashed_extension_id: str = ""
    subject: str | None = None
    note: str | None = None
    start_time: Any = None
    duration: Any = None
    has_duration: bool = False
    result: str | None = None
    direction: str | None = None
    from_party: JsonDict = field(default_factory=dict)
    to_party: JsonDict = field(default_factory=dict)
    legs: list[JsonDict] = field(default_factory=list)
    recording_link: str | None = None
    additional_submission: JsonDict = field(default_factory=dict)
    extras: JsonDict = field(default_factory=dict)


def call_log_update(*, user_id: str, patch: CallLogPatch) -> LogOutcome:
    """Update a logged call in the CRM (PATCH /callLog): note, subject, final data.

    Reads the CRM's current body, recomposes it, and sends the update. Records a
    `crm_updated` (or `crm_failed`) event and the call's final duration and result.
    """
    user = crm_user_get(user_id=user_id)
    if user is None or not user.is_connected:
        return LogOutcome(successful=False)
    log = call_log_find_logged(
        user=user,
        session_id=patch.session_id,
        hashed_extension_id=patch.hashed_extension_id,
        extension_number=patch.extension_number,
    )
    if log is None:
        return LogOutcome(successful=False)
    client = crm_registry.get(user.platform)
    log_format = client.get_log_format_type()
    existing_body = ""
    try:
        details = client.get_call_log(user=user, crm_log_id=log.crm_log_id, contact_id=log.contact_id)
        info = details.info or {}
        existing_body = info.get("fullBody") or info.get("note") or ""
    except (CrmError, NotImplementedError):
        existing_body = ""
    composed = call_log_details_compose(
        fields=CallFields(
            note=patch.note or None,
            session_id=log.session_id,
            direction=patch.direction,
            from_party=patch.from_party,
            to_party=patch.to_party,
            subject=patch.subject,
            start_time=patch.start_time,
            duration=patch.duration,
            has_duration=patch.has_duration,
            result=patch.result,
            recording_link=patch.recording_link,
            voicemail_link=patch.extras.get("voicemailLink"),
            ai_note=patch.extras.get("aiNote"),
            transcript=patch.extras.get("transcript"),
            legs=patch.legs,
        ),
        user_settings=user.user_settings,
        timezone_offset=user.timezone_offset,
        existing_body=existing_body,
        log_format=log_format,
    )
    try:
        result = client.update_call_log(
            user=user,
            data=CallLogUpdate(
                crm_log_id=log.crm_log_id,
                contact_id=log.contact_id,
                subject=patch.subject,
                note=patch.note,
                start_time=patch.start_time,
                duration=patch.duration,
                result=patch.result,
                recording_link=patch.recording_link,
                additional_submission=patch.additional_submission,
                composed_log_details=composed,
                extras=patch.extras,
            ),
        )
    except CrmError as exc:
        _events_record(
            log=log, entries=[(EventKind.CRM_FAILED, "", {**crm_failure_detail(exc), "update": True})]
        )
        return LogOutcome(
            successful=False,
            return_message=crm_failure_message(operation="updateCallLog", error=exc, platform=user.platform),
        )
    changes: JsonDict = {"updated_at": timezone.now()}
    if _seconds(patch.duration) is not None:
        changes["duration_seconds"] = _seconds(patch.duration)
    if patch.result:
        changes["result"] = patch.result[:64]
    CallLog.objects.filter(pk=log.pk).update(**changes)
    _events_record(
        log=log,
        entries=[
            (EventKind.CRM_UPDATED, "", {"fields": sorted(k for k, v in _patch_summary(patch).items() if v)})
        ],
    )
    return LogOutcome(
        successful=True,
        log_id=log.crm_log_id,
        updated_note=result.updated_note,
        return_message=result.return_message,
    )


def _patch_summary(patch: CallLogPatch) -> JsonDict:
    return {
        "subject": patch.subject,
        "note": patch.note,
        "duration": patch.has_duration,
        "result": patch.result,
        "recordingLink": patch.recording_link,
        "legs": patch.legs,
    }


# --- message logs ------------------------------------------------------------------------


@dataclass(slots=True)
class MessageLogRequest:
    """A validated POST /messageLog body."""

    messages: list[JsonDict]  # newest first, as the client sends them
    correspondents: list[JsonDict]
    phone_number: str  # correspondents[0], E.164; "" for a short code or a withheld sender
    raw_number: str
    conversation_id: str = ""
    conversation_log_id: str = ""
    owner_name: str = ""
    assignee_name: str = ""
    rc_access_token: str = ""
    contact_id: str = ""
    contact_type: str = ""
    contact_name: str = ""
    additional_submission: JsonDict = field(default_factory=dict)


def _message_links(message: JsonDict, rc_access_token: str) -> JsonDict:
    """Media links App Connect derives for a message (recording, fax, MMS image, video)."""
    links: JsonDict = {}
    reader = "https://ringcentral.github.io/ringcentral-media-reader/?media="
    for attachment in message.get("attachments") or []:
        kind, uri = attachment.get("type"), attachment.get("uri") or ""
        content_type = attachment.get("contentType") or ""
        if kind == "AudioRecording":
            links["recordingLink"] = attachment.get("link")
        elif kind == "RenderedDocument" and rc_access_token:
            links["faxDocLink"] = attachment.get("link")
            links["faxDownloadLink"] = f"{uri}?access_token={rc_access_token}"
        elif kind == "MmsAttachment" and content_type.startswith("image/"):
            links["imageLink"] = reader + quote(uri, safe="")
            if rc_access_token:
                links["imageDownloadLink"] = f"{uri}?access_token={rc_access_token}"
                links["imageContentType"] = content_type
        elif kind == "MmsAttachment" and content_type.startswith("video/"):
            links["videoLink"] = reader + quote(uri, safe="")
    return {k: v for k, v in links.items() if v}


def _message_log_claim(
    *, user: CrmUser, message_id: str, fields: JsonDict, token: str
) -> tuple[MessageLog, bool]:
    """Insert the pending row for this message under the lease `token`, or take over a
    failed, skipped or abandoned one. Returns the row and whether this request holds it
    (see `_call_log_claim`)."""
    lease = {"lease_owner": token, "lease_until": timezone.now() + timedelta(seconds=_lease_seconds())}
    row = with_defaults(
        MessageLog, {"user": user.pk, "platform": user.platform, "message_id": message_id, **fields, **lease}
    )
    pk = insert_returning_pk(MessageLog, row, ignore_conflicts=True)
    if pk is not None:
        return MessageLog(pk=pk, **{**row, "user": user}), True
    existing = MessageLog.objects.get(user=user, platform=user.platform, message_id=message_id)
    held = _is_takeable(existing, skipped=True) and _take_over(existing, token=token, skipped=True, **fields)
    return existing, held


def message_log_key(log: MessageLog) -> str:
    """The key a message is written to the CRM under (`MessageLogInput.log_key`)."""
    return f"message:{log.message_id}"


@dataclass(slots=True)
class _CrmSend:
    """What sending one message came to: `ok` with the conversation's CRM activity and the
    CRM's message, or not, with the message to show (the row is recorded either way)."""

    ok: bool
    crm_log_id: str = ""
    returned: JsonDict | None = None


def _message_send(
    lease: _Lease,
    *,
    user: CrmUser,
    client: CrmClient,
    decision: ContactDecision,
    events: Events,
    data: MessageLogInput,
    crm_log_id: str,
) -> _CrmSend:
    """The rest of the pipeline for a held message row, once the contact is decided:
    reconcile a write an earlier attempt began, else add the message to its conversation's
    CRM activity (`crm_log_id`) or create that activity, and record the outcome."""
    assert decision.contact is not None
    row = lease.row
    assert isinstance(row, MessageLog)
    data.log_key = message_log_key(row)
    if row.crm_write_started_at is not None:
        found, outcome = _reconcile(
            lease, user=user, client=client, kind="message", log_key=data.log_key, events=events
        )
        if outcome is not None:
            return _CrmSend(ok=False, crm_log_id=crm_log_id, returned=outcome.return_message)
        if found:
            return _CrmSend(ok=True, crm_log_id=found)
    if not _write_begin(lease, decision):
        return _CrmSend(ok=False, crm_log_id=crm_log_id, returned=return_message(IN_FLIGHT_TEXT, ttl=3000))
    operation = "updateMessageLog" if crm_log_id else "createMessageLog"
    try:
        if crm_log_id:
            returned = client.update_message_log(
                user=user, contact=decision.contact, crm_log_id=crm_log_id, data=data
            ).return_message
        else:
            created = client.create_message_log(user=user, contact=decision.contact, data=data)
            returned = created.return_message
            crm_log_id = str(created.log_id) if created.log_id else ""
    except CrmError as exc:
        _write_failed(lease, exc, events=events, decision=decision)
        failure = crm_failure_message(operation=operation, error=exc, platform=user.platform)
        return _CrmSend(ok=False, crm_log_id=crm_log_id, returned=failure)
    if not crm_log_id:
        error = (returned or {}).get("message") or "The CRM created no log."
        events.append((EventKind.CRM_FAILED, "", {"error": error}))
        _finish(lease, status=LogStatus.FAILED, last_error=error, events=events)
        return _CrmSend(ok=False, returned=returned)
    events.append((EventKind.CRM_LOGGED, "", {"crmLogId": crm_log_id}))
    try:
        _finish(lease, status=LogStatus.LOGGED, crm_log_id=crm_log_id[:255], last_error="", events=events)
    except DatabaseError:
        # As for calls: the CRM holds it, the write mark stays, the next touch records it.
        logger.warning("Message log %s is in the CRM but its outcome was not recorded", row.pk, exc_info=True)
    return _CrmSend(ok=True, crm_log_id=crm_log_id, returned=returned)


def message_log_create(*, user_id: str, request: MessageLogRequest) -> LogOutcome:
    """Log messages of a conversation into the user's CRM (POST /messageLog).

    The contact is decided once for the request; then each message, oldest first, goes
    through the pipeline: claimed once per user and platform, written, recorded (a message
    another live request holds is waited for, as a call is; if it is still in flight, the
    answer asks the client to come back). The first
    new message of a conversation day creates the CRM activity, later ones add to it. In
    shared-SMS mode (an owner is named) one activity holds the whole conversation. With no
    contact to log against (the rules left it to the user), each message's row records
    that it was skipped.
    """
    if not request.messages:
        return LogOutcome(successful=False, return_message=return_message("No message to log.", ttl=3000))
    user = crm_user_get(user_id=user_id)
    if user is None or not user.is_connected:
        return LogOutcome(successful=False, return_message=return_message("Contact not found"))
    client = crm_registry.get(user.platform)
    given = _given_contact(request.contact_id, request.raw_number, request.contact_type, request.contact_name)
    decision = _contact_decide(
        user=user,
        client=client,
        phone_number=request.phone_number,
        raw_number=request.raw_number,
        given_contact=given,
        caller_id_name=str(request.correspondents[0].get("name") or ""),
        traffic=None if given else _message_traffic(request.messages, request.correspondents, user=user),
    )
    contact = decision.contact
    # In a group conversation each contact gets its own log of a message.
    suffix = f"-{contact.id}" if len(request.correspondents) > 1 and contact is not None else ""
    conversation_log_id = (request.conversation_log_id + suffix) if request.conversation_log_id else ""
    conversation_id = (request.conversation_id + suffix) if request.conversation_id else ""
    token = _new_token()
    if request.owner_name:
        return _shared_message_log(
            user=user,
            client=client,
            request=request,
            decision=decision,
            conversation_log_id=conversation_log_id or conversation_id,
            token=token,
        )

    crm_log_id = (
        _conversation_crm_log_id(user=user, conversation_log_id=conversation_log_id) if contact else ""
    )
    log_ids: list[str] = []
    last_message: JsonDict | None = None
    in_flight = False  # a message another live request is writing: the client must come back
    for message in reversed(request.messages):
        message_id = f"{message['id']}{suffix}"
        row, held = _message_log_claim(
            user=user,
            message_id=message_id,
            fields={
                "conversation_id": conversation_id[:128],
                "conversation_log_id": conversation_log_id[:160],
                "message_type": str(message.get("type") or "")[:32],
                "direction": message.get("direction") or "",
                "phone_number": request.phone_number or request.raw_number[:32],
                "payload": _without_secrets({"message": message, "correspondents": request.correspondents}),
            },
            token=token,
        )
        if not held and row.status == LogStatus.PENDING:
            held = _await_holder(row, token=token)
        if not held and row.status == LogStatus.PENDING:
            # Still being written by another request: the messages after it wait for it
            # (they would start another CRM activity for the conversation).
            in_flight = True
            break
        if not held:
            continue
        lease = _Lease(row, token)
        events: Events = [(EventKind.REQUESTED, "", {"attempt": row.attempts + 1}), _decision_event(decision)]
        if contact is None:
            _finish_without_contact(lease, decision, events)
            continue
        data = MessageLogInput(
            message=message,
            correspondents=request.correspondents,
            additional_submission=request.additional_submission,
            links=_message_links(message, request.rc_access_token),
            owner_name=request.owner_name,
            assignee_name=request.assignee_name,
        )
        with _revocation_fails(lease, events, earlier_mark=row.crm_write_started_at is not None):
            sent = _message_send(
                lease,
                user=user,
                client=client,
                decision=decision,
                events=events,
                data=data,
                crm_log_id=crm_log_id,
            )
        if not sent.ok:
            return LogOutcome(successful=False, return_message=sent.returned, log_ids=log_ids)
        crm_log_id, last_message = sent.crm_log_id, sent.returned
        log_ids.append(message_id)
    if contact is None:
        return LogOutcome(successful=False, return_message=decision.return_message)
    if in_flight:
        return LogOutcome(
            successful=False, return_message=return_message(IN_FLIGHT_TEXT, ttl=3000), log_ids=log_ids
        )
    return LogOutcome(successful=True, log_ids=log_ids, return_message=last_message)


def _conversation_crm_log_id(*, user: CrmUser, conversation_log_id: str) -> str:
    """The CRM activity already holding this conversation day, if any."""
    if not conversation_log_id:
        return ""
    return (
        MessageLog.objects.filter(
            user=user,
            platform=user.platform,
            conversation_log_id=conversation_log_id,
            status=LogStatus.LOGGED,
        )
        .exclude(crm_log_id="")
        .values_list("crm_log_id", flat=True)
        .first()
        or ""
    )


def _shared_message_log(
    *,
    user: CrmUser,
    client: CrmClient,
    request: MessageLogRequest,
    decision: ContactDecision,
    conversation_log_id: str,
    token: str,
) -> LogOutcome:
    """Shared SMS: one CRM activity per conversation, rewritten whole on each request.

    The conversation's row goes through the pipeline once (it creates the activity); once
    it is logged, each request rewrites the activity, which is safe to repeat.
    """
    row, held = _message_log_claim(
        user=user,
        message_id=conversation_log_id,
        fields={
            "conversation_id": request.conversation_id[:128],
            "conversation_log_id": conversation_log_id[:160],
            "message_type": "SMS",
            "phone_number": request.phone_number or request.raw_number[:32],
            "payload": _without_secrets(
                {
                    "messages": request.messages,
                    "correspondents": request.correspondents,
                    # for a retry to rebuild the conversation as the client sent it
                    "ownerName": request.owner_name,
                    "assigneeName": request.assignee_name,
                }
            ),
        },
        token=token,
    )
    events: Events = [_decision_event(decision)]
    if decision.contact is None:
        if held:
            _finish_without_contact(_Lease(row, token), decision, events)
        return LogOutcome(successful=False, return_message=decision.return_message)
    data = _shared_input(
        messages=request.messages,
        correspondents=request.correspondents,
        contact_name=decision.contact.name,
        owner_name=request.owner_name,
        assignee_name=request.assignee_name,
        additional_submission=request.additional_submission,
        timezone_offset=user.timezone_offset,
    )
    if not held:
        if row.status != LogStatus.LOGGED or not row.crm_log_id:
            return LogOutcome(successful=True, log_ids=[], return_message=None)
        data.log_key = message_log_key(row)
        try:
            result = client.update_message_log(
                user=user, contact=decision.contact, crm_log_id=row.crm_log_id, data=data
            )
        except CrmError as exc:
            _events_record(log=row, entries=[*events, (EventKind.CRM_FAILED, "", crm_failure_detail(exc))])
            failure = crm_failure_message(operation="updateMessageLog", error=exc, platform=user.platform)
            return LogOutcome(successful=False, return_message=failure)
        _events_record(log=row, entries=[*events, (EventKind.CRM_UPDATED, "", {"shared": True})])
        return LogOutcome(successful=True, log_ids=[], return_message=result.return_message)
    events.insert(0, (EventKind.REQUESTED, "", {"attempt": row.attempts + 1}))
    lease = _Lease(row, token)
    with _revocation_fails(lease, events, earlier_mark=row.crm_write_started_at is not None):
        sent = _message_send(
            lease, user=user, client=client, decision=decision, events=events, data=data, crm_log_id=""
        )
    if not sent.ok:
        return LogOutcome(successful=False, return_message=sent.returned)
    return LogOutcome(successful=True, log_ids=[conversation_log_id], return_message=sent.returned)


def _shared_input(
    *,
    messages: list[JsonDict],
    correspondents: list[JsonDict],
    contact_name: str,
    owner_name: str,
    assignee_name: str,
    additional_submission: JsonDict,
    timezone_offset: str,
) -> MessageLogInput:
    """A shared-SMS conversation as the CRM gets it: one activity with the whole thread."""
    return MessageLogInput(
        message=messages[0],
        correspondents=correspondents,
        additional_submission=additional_submission,
        owner_name=owner_name,
        assignee_name=assignee_name,
        shared_content=shared_sms_compose(
            messages=messages,
            contact_name=contact_name,
            owner_name=owner_name,
            timezone_offset=timezone_offset,
        ),
    )


# --- retries (admin, tasks) and recovery ----------------------------------------------------


@dataclass(slots=True)
class RetrySummary:
    """What retrying a selection of logs came to: each selected log is counted once."""

    logged: int = 0  # now held by the CRM (sent again, or found there)
    not_logged: int = 0  # tried again and not logged; `errors` says why
    # nothing to retry: already logged, skipped, unconfirmed, held by a live request, or
    # taken by another retry
    left_alone: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # why not logged -> how many logs

    def count(self, outcome: LogOutcome) -> None:
        """Count one retried log by its outcome."""
        message = str((outcome.return_message or {}).get("message") or "")
        if outcome.successful:
            self.logged += 1
        elif message == _NOTHING_TO_RETRY:
            self.left_alone += 1
        else:
            self.not_logged += 1
            reason = message or "not logged"
            self.errors[reason] = self.errors.get(reason, 0) + 1


# Retries run in the admin's request, one CRM round trip after another: at most this many.
RETRY_BATCH_LIMIT = 200
# What a retry answers for a row it leaves alone, and for a user who logged out.
_NOTHING_TO_RETRY = "Nothing to retry"
_NOT_CONNECTED = "The user is not connected to the CRM."


def call_logs_retry(*, log_ids: list[int], by: str = "admin", resend: bool = False) -> RetrySummary:
    """Retry the call logs among `log_ids` through `call_log_retry`; the ones it would
    leave alone are counted without a CRM call."""
    summary = RetrySummary()
    for log in CallLog.objects.filter(pk__in=log_ids).order_by("id"):
        if not (_is_takeable(log, skipped=False) or (resend and log.status == LogStatus.UNCONFIRMED)):
            summary.left_alone += 1
            continue
        try:
            summary.count(call_log_retry(log=log, by=by, resend=resend))
        except CrmSessionRevoked:
            summary.count(LogOutcome(successful=False, return_message=return_message(_SESSION_REVOKED)))
    return summary


def message_log_retry(*, log: MessageLog, by: str = "admin", resend: bool = False) -> LogOutcome:
    """Send a failed message log to the CRM again from its stored message, or finish one
    whose request died, through the same pipeline as a request (see `call_log_retry`).

    The contact a user chose is kept; otherwise the rules decide again and find the
    placeholder an earlier attempt created. The message joins its conversation's CRM
    activity when one exists. A shared-SMS conversation is rebuilt from its stored
    messages and owner (rows stored before the owner was kept are rebuilt without it; the
    client's next request rewrites the conversation whole anyway).
    """
    taken = _retry_start(MessageLog, log.pk, resend=resend)
    if isinstance(taken, LogOutcome):
        return taken
    row, token = taken
    assert isinstance(row, MessageLog)
    user = row.user
    client = crm_registry.get(user.platform)
    shared = bool((row.payload or {}).get("messages"))
    events: Events = [_retried_event(row, by=by, resend=resend, shared=shared)]
    lease = _Lease(row, token)
    with _revocation_fails(lease, events, earlier_mark=row.crm_write_started_at is not None):
        return _message_resend(lease, user=user, client=client, events=events)


def _message_resend(lease: _Lease, *, user: CrmUser, client: CrmClient, events: Events) -> LogOutcome:
    """The rest of a message log's retry: decide the contact again (or keep the user's),
    rebuild the message (or shared conversation) from the row, send it."""
    row = lease.row
    assert isinstance(row, MessageLog)
    payload = row.payload or {}
    correspondents: list[JsonDict] = payload.get("correspondents") or []
    shared_messages: list[JsonDict] | None = payload.get("messages")
    given = (
        _given_contact(row.contact_id, row.phone_number, row.contact_type, row.contact_name)
        if row.decided_by == DecidedBy.USER
        else None
    )
    stored_messages = shared_messages or ([payload["message"]] if payload.get("message") else [])
    try:  # a short code or a withheld sender is stored as sent, not in E.164
        phone_number = phone_number_normalize(row.phone_number)
    except InvalidPhoneNumber:
        phone_number = ""
    decision = _contact_decide(
        user=user,
        client=client,
        phone_number=phone_number,
        raw_number=row.phone_number,
        given_contact=given,
        caller_id_name=str((correspondents[0] if correspondents else {}).get("name") or ""),
        traffic=None if given else _message_traffic(stored_messages, correspondents, user=user),
    )
    events.append(_decision_event(decision))
    if decision.contact is None:
        return _finish_without_contact(lease, decision, events)
    if shared_messages:
        data = _shared_input(
            messages=shared_messages,
            correspondents=correspondents,
            contact_name=decision.contact.name,
            owner_name=str(payload.get("ownerName") or ""),
            assignee_name=str(payload.get("assigneeName") or ""),
            additional_submission={},
            timezone_offset=user.timezone_offset,
        )
        crm_log_id = ""
    else:
        message: JsonDict = payload.get("message") or {}
        data = MessageLogInput(
            message=message, correspondents=correspondents, links=_message_links(message, "")
        )
        crm_log_id = _conversation_crm_log_id(user=user, conversation_log_id=row.conversation_log_id)
    sent = _message_send(
        lease, user=user, client=client, decision=decision, events=events, data=data, crm_log_id=crm_log_id
    )
    if not sent.ok:
        return LogOutcome(successful=False, return_message=sent.returned)
    return LogOutcome(successful=True, log_ids=[row.message_id], return_message=sent.returned)


def message_logs_retry(*, log_ids: list[int], by: str = "admin", resend: bool = False) -> RetrySummary:
    """Retry the message logs among `log_ids` through `message_log_retry`, oldest first (so
    a conversation's first message creates its CRM activity)."""
    summary = RetrySummary()
    for log in MessageLog.objects.filter(pk__in=log_ids).order_by("created_at", "id"):
        if not (_is_takeable(log, skipped=False) or (resend and log.status == LogStatus.UNCONFIRMED)):
            summary.left_alone += 1
            continue
        try:
            summary.count(message_log_retry(log=log, by=by, resend=resend))
        except CrmSessionRevoked:
            summary.count(LogOutcome(successful=False, return_message=return_message(_SESSION_REVOKED)))
    return summary


def logs_recover(*, limit: int = RETRY_BATCH_LIMIT) -> RetrySummary:
    """Finish what dead requests left behind: pending logs whose lease lapsed, and failed
    ones a CRM write may have reached (still marked as written), oldest first, through the
    retries above (recorded as by "task"). At most `limit` logs of each kind per run.

    Failed logs whose CRM answer was known are left to clients and admins: the CRM said no.
    """
    abandoned = _lapsed() | Q(status=LogStatus.FAILED, crm_write_started_at__isnull=False)
    calls = list(CallLog.objects.filter(abandoned).order_by("id").values_list("id", flat=True)[:limit])
    messages = list(
        MessageLog.objects.filter(abandoned).order_by("created_at", "id").values_list("id", flat=True)[:limit]
    )
    summary = call_logs_retry(log_ids=calls, by="task")
    for_messages = message_logs_retry(log_ids=messages, by="task")
    summary.logged += for_messages.logged
    summary.not_logged += for_messages.not_logged
    summary.left_alone += for_messages.left_alone
    for reason, count in for_messages.errors.items():
        summary.errors[reason] = summary.errors.get(reason, 0) + count
    return summary
