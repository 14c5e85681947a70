"""Logging calls and messages into the CRM, and recording every step in the log history.

A log row is claimed (inserted as pending) before anything else happens, under a unique
key per user, platform, session and extension identity; only the request that claimed it
goes on. Then the contact is decided (rules), the CRM is called, and the row and its event
trail say what happened. A failed or skipped row can be claimed again, which is how a
retry logs against the contact that was already chosen or created.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from django.core.cache import cache
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from connector.conf import connector_settings
from connector.crm.base import (
    CallLogDetails,
    CallLogInput,
    CallLogUpdate,
    CrmClient,
    CrmError,
    JsonDict,
    LogContact,
    MessageLogInput,
)
from connector.crm.registry import crm_registry
from connector.db import insert_many, insert_returning_pk, update_and_insert, with_defaults
from connector.exceptions import return_message
from connector.models import CrmUser
from connector.selectors import crm_user_get
from connector.services import crm_failure_message
from logs.choices import DecidedBy, EventKind, LogStatus
from logs.composer import CallFields, call_log_details_compose, parse_time, shared_sms_compose
from logs.models import CallLog, LogEvent, MessageLog
from logs.selectors import call_log_find_logged, call_logs_of_session, identity_match
from rules.choices import DecisionOutcome
from rules.services import ContactDecision, contact_decide

# How long a note sent to POST /callLog/cacheNote waits for its call log.
CALL_NOTE_TTL_SECONDS = 3600
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


def _decision_event(decision: ContactDecision) -> tuple[str, str, JsonDict]:
    detail: JsonDict = {"outcome": decision.outcome.value, **decision.snapshot}
    if decision.contact is not None:
        detail["contactId"] = decision.contact.id
        detail["contactName"] = decision.contact.name
    return _OUTCOME_EVENTS[decision.outcome], decision.decided_by, detail


def _event_rows(log: CallLog | MessageLog, entries: list[tuple[str, str, JsonDict]]) -> list[JsonDict]:
    is_call = isinstance(log, CallLog)
    now = timezone.now()
    return [
        {
            "call_log": log.pk if is_call else None,
            "message_log": None if is_call else log.pk,
            "kind": kind,
            "decided_by": by,
            "detail": detail,
            "created_at": now,
        }
        for kind, by, detail in entries
    ]


def _events_record(*, log: CallLog | MessageLog, entries: list[tuple[str, str, JsonDict]]) -> None:
    """Append events to a log's trail."""
    insert_many(LogEvent, _event_rows(log, entries))


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


def _call_log_claim(*, user: CrmUser, request: CallLogRequest) -> tuple[CallLog, bool]:
    """Insert the pending row for this call, or take over a failed or skipped one.

    Returns the row and whether this request owns it; a row that is logged or pending
    belongs to another request (the duplicate case).
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
    row = with_defaults(CallLog, {**key, **fields})
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
        return CallLog(pk=pk, **{**row, "user": user}), True
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
            return CallLog(pk=pk, **{**row, "user": user}), True
        existing = CallLog.objects.get(**{**key, "user": user})
    if existing.status in (LogStatus.FAILED, LogStatus.SKIPPED):
        taken = CallLog.objects.filter(pk=existing.pk, status=existing.status).update(
            status=LogStatus.PENDING, updated_at=timezone.now(), **fields
        )
        if taken:
            existing.refresh_from_db()
            return existing, True
    return existing, False


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


def _log_finish(
    log: CallLog | MessageLog, *, status: str, events: list[tuple[str, str, JsonDict]], **values: Any
) -> None:
    """Record a log's outcome (status, one more attempt, the decision and CRM fields) and
    its events, all or nothing (one statement on PostgreSQL)."""
    update_and_insert(
        type(log),
        log.pk,
        {"status": status, "updated_at": timezone.now(), **values},
        increment="attempts",
        rows_model=LogEvent,
        rows=_event_rows(log, events),
    )


def _decision_fields(decision: ContactDecision) -> JsonDict:
    contact = decision.contact
    return {
        "placeholder": decision.placeholder.pk if decision.placeholder else None,
        "decided_by": decision.decided_by,
        "decision": {"outcome": decision.outcome.value, **decision.snapshot},
        "contact_is_placeholder": decision.is_placeholder,
        "contact_id": contact.id[:255] if contact else "",
        "contact_name": contact.name[:255] if contact else "",
        "contact_type": contact.type[:64] if contact else "",
    }


def _call_log_run(
    *,
    log: CallLog,
    user: CrmUser,
    client: CrmClient,
    request: CallLogRequest,
    events: list[tuple[str, str, JsonDict]],
) -> LogOutcome:
    """Decide the contact, create the CRM activity and record the outcome on `log`."""
    given = _given_contact(request.contact_id, request.raw_number, request.contact_type, request.contact_name)
    decision = contact_decide(
        user=user,
        client=client,
        phone_number=request.phone_number,
        raw_number=request.raw_number,
        given_contact=given,
        caller_id_name=_caller_id_name(request.log_info),
    )
    events.append(_decision_event(decision))
    if decision.contact is None:
        status = LogStatus.SKIPPED if decision.outcome == DecisionOutcome.PROMPTED else LogStatus.FAILED
        message_text = (decision.return_message or {}).get("message", "")
        _log_finish(
            log,
            status=status,
            last_error=message_text if status == LogStatus.FAILED else "",
            **_decision_fields(decision),
            events=events,
        )
        return LogOutcome(successful=False, return_message=decision.return_message)

    composed = call_log_details_compose(
        fields=_call_fields(request),
        user_settings=user.user_settings,
        timezone_offset=user.timezone_offset,
        log_format=client.get_log_format_type(),
    )
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
            ),
        )
    except CrmError as exc:
        message = crm_failure_message(operation="createCallLog", error=exc, platform=user.platform)
        events.append((EventKind.CRM_FAILED, "", {"error": str(exc), "status": exc.status_code}))
        _log_finish(
            log, status=LogStatus.FAILED, last_error=str(exc), **_decision_fields(decision), events=events
        )
        return LogOutcome(successful=False, return_message=message)
    if not result.log_id:
        error = (result.return_message or {}).get("message") or "The CRM created no log."
        events.append((EventKind.CRM_FAILED, "", {"error": error}))
        _log_finish(
            log, status=LogStatus.FAILED, last_error=error, **_decision_fields(decision), events=events
        )
        return LogOutcome(successful=False, return_message=result.return_message)
    events.append((EventKind.CRM_LOGGED, "", {"crmLogId": str(result.log_id)}))
    try:
        _log_finish(
            log,
            status=LogStatus.LOGGED,
            crm_log_id=str(result.log_id)[:255],
            last_error="",
            **_decision_fields(decision),
            events=events,
        )
    except DatabaseError:
        # The CRM holds the activity but our row still says pending: answer as the peer
        # does; the pending row (with its contact) stays visible to admins.
        return LogOutcome(successful=False, return_message=return_message("Database operation failed"))
    return LogOutcome(successful=True, log_id=result.log_id, return_message=result.return_message)


def _caller_id_name(log_info: JsonDict) -> str:
    party = log_info.get("from") if log_info.get("direction") == "Inbound" else log_info.get("to")
    return str((party or {}).get("name") or "")


def call_log_create(*, user_id: str, request: CallLogRequest) -> LogOutcome:
    """Log a call into the user's CRM (POST /callLog).

    Writes the call-log row and its events; calls the CRM at most once per session and
    extension identity, however many requests arrive for it at once.
    """
    user = crm_user_get(user_id=user_id)
    if user is None or not user.is_connected:
        return LogOutcome(successful=False, return_message=return_message("User not found"))
    client = crm_registry.get(user.platform)
    if request.is_from_sscl and not request.note:
        request.note = cache.get(_note_cache_key(user.pk, request.session_id)) or ""
    log, claimed = _call_log_claim(user=user, request=request)
    if not claimed:
        _events_record(
            log=log,
            entries=[(EventKind.DUPLICATE, "", {"sessionId": request.session_id, "status": log.status})],
        )
        return LogOutcome(
            successful=False,
            return_message=return_message(f"Existing log for session {request.session_id}", ttl=3000),
        )
    events: list[tuple[str, str, JsonDict]] = [
        (EventKind.REQUESTED, "", {"attempt": log.attempts + 1, "sscl": request.is_from_sscl})
    ]
    if log.attempts:
        events.insert(0, (EventKind.RETRIED, "", {"previousAttempts": log.attempts}))
    return _call_log_run(log=log, user=user, client=client, request=request, events=events)


def call_log_retry(*, log: CallLog) -> LogOutcome:
    """Send a failed (or stuck pending) call log to the CRM again, from its stored request.

    Idempotent: a log that is already logged is left alone, and so is a pending one that
    may still be in flight (see `_pending_stuck_before`). A placeholder created by the
    first attempt is found again by the rules, so the retry logs against that contact.
    """
    with transaction.atomic():
        taken = CallLog.objects.filter(_retryable(), pk=log.pk).update(
            status=LogStatus.PENDING, updated_at=timezone.now()
        )
    if not taken:
        return LogOutcome(successful=False, return_message=return_message("Nothing to retry"))
    log.refresh_from_db()
    request = CallLogRequest.from_payload(log.payload)
    if log.decided_by == DecidedBy.USER and log.contact_id:
        request.contact_id = log.contact_id
    client = crm_registry.get(log.user.platform)
    events: list[tuple[str, str, JsonDict]] = [
        (EventKind.RETRIED, "", {"previousAttempts": log.attempts, "by": "admin"})
    ]
    return _call_log_run(log=log, user=log.user, client=client, request=request, events=events)


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
        _events_record(log=log, entries=[(EventKind.CRM_FAILED, "", {"error": str(exc), "update": True})])
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
    phone_number: str  # correspondents[0], E.164
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


def _message_log_claim(*, user: CrmUser, message_id: str, fields: JsonDict) -> tuple[MessageLog, bool]:
    """Insert the pending row for this message, or take over a failed or skipped one.

    Returns the row and whether this request owns it (see `_call_log_claim`).
    """
    row = with_defaults(
        MessageLog, {"user": user.pk, "platform": user.platform, "message_id": message_id, **fields}
    )
    pk = insert_returning_pk(MessageLog, row, ignore_conflicts=True)
    if pk is not None:
        return MessageLog(pk=pk, **{**row, "user": user}), True
    existing = MessageLog.objects.get(user=user, platform=user.platform, message_id=message_id)
    if existing.status in (LogStatus.FAILED, LogStatus.SKIPPED):
        taken = MessageLog.objects.filter(pk=existing.pk, status=existing.status).update(
            status=LogStatus.PENDING, updated_at=timezone.now(), **fields
        )
        if taken:
            existing.refresh_from_db()
            return existing, True
    return existing, False


def message_log_create(*, user_id: str, request: MessageLogRequest) -> LogOutcome:
    """Log messages of a conversation into the user's CRM (POST /messageLog).

    Messages are logged oldest first; each message is logged once per user and platform.
    The first new message of a conversation day creates the CRM activity, later ones add
    to it. In shared-SMS mode (an owner is named) one activity holds the whole
    conversation. Writes one row and its events per message.
    """
    if not request.messages:
        return LogOutcome(successful=False, return_message=return_message("No message to log.", ttl=3000))
    user = crm_user_get(user_id=user_id)
    if user is None or not user.is_connected:
        return LogOutcome(successful=False, return_message=return_message("Contact not found"))
    client = crm_registry.get(user.platform)
    given = _given_contact(request.contact_id, request.raw_number, request.contact_type, request.contact_name)
    decision = contact_decide(
        user=user,
        client=client,
        phone_number=request.phone_number,
        raw_number=request.raw_number,
        given_contact=given,
        caller_id_name=str(request.correspondents[0].get("name") or ""),
    )
    if decision.contact is None:
        return LogOutcome(successful=False, return_message=decision.return_message)
    contact = decision.contact
    group = len(request.correspondents) > 1
    suffix = f"-{contact.id}" if group else ""
    conversation_log_id = (request.conversation_log_id + suffix) if request.conversation_log_id else ""
    conversation_id = (request.conversation_id + suffix) if request.conversation_id else ""

    if request.owner_name:
        return _shared_message_log(
            user=user,
            client=client,
            request=request,
            decision=decision,
            conversation_log_id=conversation_log_id or conversation_id,
        )

    crm_log_id = _conversation_crm_log_id(user=user, conversation_log_id=conversation_log_id)
    log_ids: list[str] = []
    last_message: JsonDict | None = None
    for message in reversed(request.messages):
        message_id = f"{message['id']}{suffix}"
        row, claimed = _message_log_claim(
            user=user,
            message_id=message_id,
            fields={
                "conversation_id": conversation_id[:128],
                "conversation_log_id": conversation_log_id[:160],
                "message_type": str(message.get("type") or "")[:32],
                "direction": message.get("direction") or "",
                "phone_number": request.phone_number,
                "payload": _without_secrets({"message": message, "correspondents": request.correspondents}),
            },
        )
        if not claimed:
            continue
        events = [
            (EventKind.REQUESTED, "", {"attempt": row.attempts + 1}),
            _decision_event(decision),
        ]
        data = MessageLogInput(
            message=message,
            correspondents=request.correspondents,
            additional_submission=request.additional_submission,
            links=_message_links(message, request.rc_access_token),
            owner_name=request.owner_name,
            assignee_name=request.assignee_name,
        )
        sent = _message_send(
            row, user=user, client=client, decision=decision, events=events, data=data, crm_log_id=crm_log_id
        )
        if sent.failure is not None:
            return LogOutcome(successful=False, return_message=sent.failure, log_ids=log_ids)
        crm_log_id, returned_message = sent.crm_log_id, sent.returned
        last_message = returned_message
        if not _crm_result_record(
            row, decision=decision, events=events, crm_log_id=crm_log_id, returned=returned_message
        ):
            return LogOutcome(successful=False, return_message=returned_message, log_ids=log_ids)
        log_ids.append(message_id)
    return LogOutcome(successful=True, log_ids=log_ids, return_message=last_message)


@dataclass(slots=True)
class _CrmSend:
    """What `_message_send` came to: the conversation's CRM activity and the CRM's message,
    or `failure`, App Connect's warning for a CRM error (the row is then recorded failed)."""

    crm_log_id: str
    returned: JsonDict | None = None
    failure: JsonDict | None = None


def _message_send(
    row: MessageLog,
    *,
    user: CrmUser,
    client: CrmClient,
    decision: ContactDecision,
    events: list[tuple[str, str, JsonDict]],
    data: MessageLogInput,
    crm_log_id: str,
) -> _CrmSend:
    """Add one message to its conversation's CRM activity (`crm_log_id`), or create that
    activity; on a CRM error, record the row failed with its events. For a request and for
    a retry alike."""
    assert decision.contact is not None
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
        events.append((EventKind.CRM_FAILED, "", {"error": str(exc), "status": exc.status_code}))
        _log_finish(
            row, status=LogStatus.FAILED, last_error=str(exc), **_decision_fields(decision), events=events
        )
        failure = crm_failure_message(operation=operation, error=exc, platform=user.platform)
        return _CrmSend(crm_log_id=crm_log_id, failure=failure)
    return _CrmSend(crm_log_id=crm_log_id, returned=returned)


def _crm_result_record(
    row: MessageLog,
    *,
    decision: ContactDecision,
    events: list[tuple[str, str, JsonDict]],
    crm_log_id: str,
    returned: JsonDict | None,
) -> bool:
    """Record what the CRM answered for a claimed message: logged under its CRM id, or
    failed when it created nothing. Returns whether the message was logged."""
    if not crm_log_id:
        error = (returned or {}).get("message") or "The CRM created no log."
        events.append((EventKind.CRM_FAILED, "", {"error": error}))
        _log_finish(
            row, status=LogStatus.FAILED, last_error=error, **_decision_fields(decision), events=events
        )
        return False
    events.append((EventKind.CRM_LOGGED, "", {"crmLogId": crm_log_id}))
    _log_finish(
        row,
        status=LogStatus.LOGGED,
        crm_log_id=crm_log_id[:255],
        last_error="",
        **_decision_fields(decision),
        events=events,
    )
    return True


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
) -> LogOutcome:
    """Shared SMS: one CRM activity per conversation, rewritten whole on each request."""
    assert decision.contact is not None
    content = shared_sms_compose(
        messages=request.messages,
        contact_name=decision.contact.name,
        owner_name=request.owner_name,
        timezone_offset=user.timezone_offset,
    )
    data = MessageLogInput(
        message=request.messages[0],
        correspondents=request.correspondents,
        additional_submission=request.additional_submission,
        owner_name=request.owner_name,
        assignee_name=request.assignee_name,
        shared_content=content,
    )
    row, claimed = _message_log_claim(
        user=user,
        message_id=conversation_log_id,
        fields={
            "conversation_id": request.conversation_id[:128],
            "conversation_log_id": conversation_log_id[:160],
            "message_type": "SMS",
            "phone_number": request.phone_number,
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
    )
    events = [_decision_event(decision)]
    try:
        if not claimed and row.crm_log_id:
            result = client.update_message_log(
                user=user, contact=decision.contact, crm_log_id=row.crm_log_id, data=data
            )
            _events_record(log=row, entries=[*events, (EventKind.CRM_UPDATED, "", {"shared": True})])
            return LogOutcome(successful=True, log_ids=[], return_message=result.return_message)
        if not claimed:
            return LogOutcome(successful=True, log_ids=[], return_message=None)
        created = client.create_message_log(user=user, contact=decision.contact, data=data)
    except CrmError as exc:
        failed = [*events, (EventKind.CRM_FAILED, "", {"error": str(exc)})]
        if claimed:
            _log_finish(
                row, status=LogStatus.FAILED, last_error=str(exc), **_decision_fields(decision), events=failed
            )
        else:
            _events_record(log=row, entries=failed)
        return LogOutcome(
            successful=False,
            return_message=crm_failure_message(
                operation="createMessageLog", error=exc, platform=user.platform
            ),
        )
    if not created.log_id:
        _log_finish(
            row,
            status=LogStatus.FAILED,
            last_error="The CRM created no log.",
            **_decision_fields(decision),
            events=[*events, (EventKind.CRM_FAILED, "", {})],
        )
        return LogOutcome(successful=False, return_message=created.return_message)
    _log_finish(
        row,
        status=LogStatus.LOGGED,
        crm_log_id=str(created.log_id)[:255],
        last_error="",
        **_decision_fields(decision),
        events=[*events, (EventKind.CRM_LOGGED, "", {"crmLogId": str(created.log_id)})],
    )
    return LogOutcome(successful=True, log_ids=[conversation_log_id], return_message=created.return_message)


# --- retries (admin) ---


@dataclass(slots=True)
class RetrySummary:
    """What retrying a selection of logs came to: each selected log is counted once."""

    logged: int = 0  # sent again and now held by the CRM
    not_logged: int = 0  # tried again and not logged; `errors` says why
    # nothing to retry: already logged, skipped, pending and maybe in flight, or taken by
    # another retry
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


def _pending_stuck_before() -> datetime:
    """Pending rows last written before this are stuck (their request died); younger ones
    may still be in flight, and a retry would send the same log to the CRM twice.

    A request makes a few CRM calls, each bounded by OUTBOUND_TIMEOUT_SECONDS, so ten
    timeouts, and at least five minutes, is well past any live request.
    """
    wait = max(300.0, 10 * connector_settings.OUTBOUND_TIMEOUT_SECONDS)
    return timezone.now() - timedelta(seconds=wait)


def _retryable() -> Q:
    """Failed rows, and pending rows that are stuck."""
    return Q(status=LogStatus.FAILED) | Q(status=LogStatus.PENDING, updated_at__lt=_pending_stuck_before())


def _is_retryable(log: CallLog | MessageLog) -> bool:
    return log.status == LogStatus.FAILED or (
        log.status == LogStatus.PENDING and log.updated_at < _pending_stuck_before()
    )


# Retries run in the admin's request, one CRM round trip after another: at most this many.
RETRY_BATCH_LIMIT = 200
# What call_log_retry and message_log_retry answer for a row they leave alone.
_NOTHING_TO_RETRY = "Nothing to retry"


def call_logs_retry(*, log_ids: list[int]) -> RetrySummary:
    """Retry the failed and stuck pending call logs among `log_ids` through `call_log_retry`.

    Logged and skipped rows are left alone, and pending ones that may still be in flight.
    Each retry writes its row and events and may call the CRM (contact lookup or creation,
    the call log).
    """
    summary = RetrySummary()
    for log in CallLog.objects.filter(pk__in=log_ids).select_related("user").order_by("id"):
        if not _is_retryable(log):
            summary.left_alone += 1
            continue
        summary.count(call_log_retry(log=log))
    return summary


def message_log_retry(*, log: MessageLog) -> LogOutcome:
    """Send a failed (or stuck pending) message log to the CRM again, from its stored message.

    Idempotent: a logged (or skipped) row is left alone, and so is a pending one that may
    still be in flight (see `_pending_stuck_before`); of two simultaneous retries
    of one row only one goes on (the row is taken only if unchanged since it was read).
    The contact a user chose is kept; otherwise the rules decide again and find the
    placeholder an earlier attempt created. The message joins its conversation's CRM
    activity when one exists. Writes the row and a `retried` event trail; calls the CRM.
    A shared-SMS conversation is rebuilt from its stored messages and owner (rows stored
    before the owner was kept are rebuilt without it; the client's next request rewrites
    the conversation whole anyway).
    """
    row = MessageLog.objects.select_related("user").filter(pk=log.pk).first()
    if row is None or not _is_retryable(row):
        return LogOutcome(successful=False, return_message=return_message(_NOTHING_TO_RETRY))
    user = row.user
    if not user.is_connected:
        return LogOutcome(
            successful=False, return_message=return_message("The user is not connected to the CRM.")
        )
    with transaction.atomic():
        taken = MessageLog.objects.filter(_retryable(), pk=row.pk, updated_at=row.updated_at).update(
            status=LogStatus.PENDING, updated_at=timezone.now()
        )
    if not taken:
        return LogOutcome(successful=False, return_message=return_message(_NOTHING_TO_RETRY))
    client = crm_registry.get(user.platform)
    payload = row.payload or {}
    correspondents: list[JsonDict] = payload.get("correspondents") or []
    shared_messages: list[JsonDict] | None = payload.get("messages")
    events: list[tuple[str, str, JsonDict]] = [
        (
            EventKind.RETRIED,
            "",
            {"previousAttempts": row.attempts, "by": "admin", "shared": bool(shared_messages)},
        )
    ]
    given = (
        _given_contact(row.contact_id, row.phone_number, row.contact_type, row.contact_name)
        if row.decided_by == DecidedBy.USER
        else None
    )
    decision = contact_decide(
        user=user,
        client=client,
        phone_number=row.phone_number,
        raw_number=row.phone_number,
        given_contact=given,
        caller_id_name=str((correspondents[0] if correspondents else {}).get("name") or ""),
    )
    events.append(_decision_event(decision))
    if decision.contact is None:
        status = LogStatus.SKIPPED if decision.outcome == DecisionOutcome.PROMPTED else LogStatus.FAILED
        error = (decision.return_message or {}).get("message", "") if status == LogStatus.FAILED else ""
        _log_finish(row, status=status, last_error=error, **_decision_fields(decision), events=events)
        return LogOutcome(successful=False, return_message=decision.return_message)

    if shared_messages:
        owner_name = str(payload.get("ownerName") or "")
        data = MessageLogInput(
            message=shared_messages[0],
            correspondents=correspondents,
            owner_name=owner_name,
            assignee_name=str(payload.get("assigneeName") or ""),
            shared_content=shared_sms_compose(
                messages=shared_messages,
                contact_name=decision.contact.name,
                owner_name=owner_name,
                timezone_offset=user.timezone_offset,
            ),
        )
        crm_log_id = ""
    else:
        message: JsonDict = payload.get("message") or {}
        data = MessageLogInput(
            message=message, correspondents=correspondents, links=_message_links(message, "")
        )
        crm_log_id = _conversation_crm_log_id(user=user, conversation_log_id=row.conversation_log_id)
    sent = _message_send(
        row, user=user, client=client, decision=decision, events=events, data=data, crm_log_id=crm_log_id
    )
    if sent.failure is not None:
        return LogOutcome(successful=False, return_message=sent.failure)
    crm_log_id, returned = sent.crm_log_id, sent.returned
    if not _crm_result_record(
        row, decision=decision, events=events, crm_log_id=crm_log_id, returned=returned
    ):
        return LogOutcome(successful=False, return_message=returned)
    return LogOutcome(successful=True, log_ids=[row.message_id], return_message=returned)


def message_logs_retry(*, log_ids: list[int]) -> RetrySummary:
    """Retry the failed and stuck pending message logs among `log_ids` through
    `message_log_retry`, oldest first (so a conversation's first message creates its CRM
    activity)."""
    summary = RetrySummary()
    for log in MessageLog.objects.filter(pk__in=log_ids).order_by("created_at", "id"):
        if not _is_retryable(log):
            summary.left_alone += 1
            continue
        summary.count(message_log_retry(log=log))
    return summary
