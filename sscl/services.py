"""Server-side call logging: the webhook's intake, the folding of events into calls, the
logging of each ended call through the one pipeline, the subscription's upkeep, and the
settings an admin changes.

Nothing here holds a transaction or a row lock while RingCentral or a CRM answers: each
step claims its row (a lease, by compare-and-set), calls out, then records the outcome.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from connector.api.serializers import CallLogCreateInputSerializer
from connector.crm.registry import crm_registry
from connector.exceptions import CrmSessionRevoked
from connector.models import CrmUser, RingCentralConnection
from connector.ringcentral import (
    RingCentralError,
    RingCentralRateLimited,
    RingCentralRefused,
    rc_call_records_by_session,
    rc_extensions_list,
    rc_subscription_create,
    rc_subscription_delete,
    rc_subscription_get,
    rc_subscription_renew,
)
from connector.utils import InvalidPhoneNumber, hash_value, phone_number_normalize
from logs.choices import LogStatus
from logs.models import CallLog
from logs.selectors import call_log_last_failure
from logs.services import CallLogRequest, call_log_create, caller_id_name_of
from rules.choices import DecisionOutcome
from rules.models import Account
from rules.services import account_ensure, placeholder_contact_create_manual, placeholder_name_for
from sscl import selectors
from sscl.choices import MappingSource, OwnerMode, SessionState, SubscriptionStatus
from sscl.conf import TELEPHONY_EVENT_FILTER, WEBHOOK_PATH, conf
from sscl.dispatch import dispatch
from sscl.models import CallSession, ServerLogging, UserMapping, WebhookEvent, WebhookSubscription

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# A party whose status is one of these has left the call (developers.ringcentral.com,
# "Account Telephony Sessions" event: status.code). "Gone" is a party replaced by a
# transfer or a park; its leg ended for this extension too.
ENDED_STATUSES = frozenset({"Disconnected", "Gone"})


class WebhookRefused(Exception):
    """A delivery the webhook does not accept: unknown subscription or wrong token."""


class WebhookInvalid(Exception):
    """A delivery that is not a RingCentral notification (not JSON, no uuid, ...)."""


class ServerLoggingError(Exception):
    """An admin's request the server cannot carry out; the message says why."""


# --- the webhook ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the webhook did with one delivery."""

    stored: bool  # False: a redelivery of an event already stored
    event_id: int | None


def webhook_receive(*, verification_token: str, body: Any) -> Receipt:
    """Store one delivery and queue it; no RingCentral or CRM call here, whatever the load.

    The delivery must name a subscription of ours (`subscriptionId`) and carry its
    verification token (header `Verification-Token`, developers.ringcentral.com "Receiving
    webhooks"). A redelivery (same `uuid`) is acknowledged and dropped.
    """
    if not isinstance(body, dict) or not isinstance(body.get("body"), dict):
        raise WebhookInvalid("Not a RingCentral notification.")
    uuid = body.get("uuid")
    if not isinstance(uuid, str) or not 0 < len(uuid) <= 64:
        raise WebhookInvalid("The notification has no uuid.")
    subscription = selectors.subscription_by_rc_id(str(body.get("subscriptionId") or "")[:64])
    if subscription is None or not subscription.verification_token:
        raise WebhookRefused("Unknown subscription.")
    if not hmac.compare_digest(subscription.verification_token.encode(), (verification_token or "").encode()):
        raise WebhookRefused("Wrong verification token.")
    receipt = event_store(account=subscription.account, body=body)
    if receipt.stored:
        _last_delivery_stamp(subscription)
    return receipt


# How stale the subscription's "last delivery" may get: the admin shows it as the
# subscription's health, which needs no finer grain.
LAST_DELIVERY_RESOLUTION = timedelta(seconds=60)


def _last_delivery_stamp(subscription: WebhookSubscription) -> None:
    """Record that a delivery came, at most once per LAST_DELIVERY_RESOLUTION.

    Every delivery of the account names this one row: written each time, a burst's
    concurrent deliveries queued on its row lock (bench/sscl_burst.py saw ~2 webhook
    threads waiting on it on average, up to 30 at once, with 32 senders). A delivery
    that finds a recent stamp (on the row it already read, else in the UPDATE's WHERE)
    writes nothing and takes no lock.
    """
    now = timezone.now()
    seen = subscription.last_delivery_at
    if seen is not None and now - seen < LAST_DELIVERY_RESOLUTION:
        return
    stale = Q(last_delivery_at=None) | Q(last_delivery_at__lt=now - LAST_DELIVERY_RESOLUTION)
    WebhookSubscription.objects.filter(stale, pk=subscription.pk).update(last_delivery_at=now)


def event_store(*, account: Account, body: JsonDict) -> Receipt:
    """Store one delivery for the account (once per `uuid`) and queue its folding."""
    event_body = body["body"]
    sequence = event_body.get("sequence")
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.create(
                uuid=body["uuid"],
                account=account,
                telephony_session_id=str(event_body.get("telephonySessionId") or "")[:128],
                sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
                body=body,
            )
    except IntegrityError:
        return Receipt(stored=False, event_id=None)
    dispatch("sscl.fold_event", event.pk)
    return Receipt(stored=True, event_id=event.pk)


# --- folding events into calls ----------------------------------------------------------------


def _our_parties(event: WebhookEvent, rc_account_id: str) -> list[JsonDict]:
    """The parties of the event that are extensions of the account (the others are the
    outside callers, or other accounts' extensions)."""
    parties = (event.body.get("body") or {}).get("parties") or []
    return [
        party
        for party in parties
        if isinstance(party, dict)
        and party.get("extensionId")
        and str(party.get("accountId") or rc_account_id) == rc_account_id
    ]


def _counterpart(party: JsonDict) -> str:
    """The outside number of an extension's party: the caller of an inbound call, the
    called number of an outbound one."""
    side = party.get("from") if party.get("direction") == "Inbound" else party.get("to")
    return str((side or {}).get("phoneNumber") or "")[:32]


def event_fold(*, event_id: int) -> None:
    """Fold one stored delivery into the calls it concerns. An event older than what a
    call already holds (RingCentral's `sequence`) changes nothing; the party's end queues
    the call's logging once, however many times it is delivered."""
    event = WebhookEvent.objects.select_related("account").filter(pk=event_id).first()
    if event is None or event.processed_at is not None:
        return
    account = event.account
    body = event.body.get("body") or {}
    sequence = event.sequence if event.sequence is not None else -1
    for party in _our_parties(event, account.rc_account_id):
        _party_fold(account=account, body=body, party=party, sequence=sequence)
    WebhookEvent.objects.filter(pk=event.pk).update(processed_at=timezone.now())


def _party_fold(*, account: Account, body: JsonDict, party: JsonDict, sequence: int) -> None:
    status = str((party.get("status") or {}).get("code") or "")
    ended = status in ENDED_STATUSES
    key = {
        "account": account,
        "telephony_session_id": str(body.get("telephonySessionId") or "")[:128],
        "rc_extension_id": str(party["extensionId"])[:64],
    }
    if not key["telephony_session_id"]:
        return
    values = {
        "session_id": str(body.get("sessionId") or "")[:128],
        "party_status": status[:32],
        "direction": str(party.get("direction") or "")[:16],
        "phone_number": _counterpart(party),
    }
    try:
        with transaction.atomic():
            row, created = CallSession.objects.select_for_update().get_or_create(
                **key, defaults={**values, "last_sequence": sequence}
            )
            if created:
                queue = ended
            else:
                queue = ended and row.state == SessionState.ACTIVE
                if row.state != SessionState.ACTIVE or (sequence <= row.last_sequence and not queue):
                    return
                for name, value in values.items():
                    if value:
                        setattr(row, name, value)
                row.last_sequence = max(sequence, row.last_sequence)
            if queue:
                row.state = SessionState.ENDED
                row.ended_at = timezone.now()
                row.next_attempt_at = row.ended_at + timedelta(seconds=conf().first_fetch_delay)
            row.save()
    except IntegrityError:  # another worker created the row meanwhile: fold again onto it
        _party_fold(account=account, body=body, party=party, sequence=sequence)
        return
    if queue:
        dispatch("sscl.log_call", row.pk, countdown=conf().first_fetch_delay)


# --- logging one ended call ----------------------------------------------------------------


def _claim(session_pk: int, token: str) -> CallSession | None:
    """Take the call for this task, if it is due and no live task holds it."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=conf().lease_seconds)
    due = Q(state=SessionState.ENDED, next_attempt_at__lte=now) | Q(
        state=SessionState.ENDED, next_attempt_at=None
    )
    lapsed = Q(state=SessionState.LOGGING, lease_until__lt=now)
    taken = CallSession.objects.filter(due | lapsed, pk=session_pk).update(
        state=SessionState.LOGGING, lease_owner=token, lease_until=lease_until, updated_at=now
    )
    if not taken:
        return None
    return CallSession.objects.select_related("account").get(pk=session_pk)


def _release(row: CallSession, token: str, **changes: Any) -> bool:
    """Record the outcome of a held call; False when the lease was lost meanwhile."""
    changes.setdefault("lease_owner", "")
    changes.setdefault("lease_until", None)
    changes["updated_at"] = timezone.now()
    return bool(CallSession.objects.filter(pk=row.pk, lease_owner=token).update(**changes))


def _backoff(attempts: int) -> float:
    c = conf()
    return min(c.first_fetch_delay * (2 ** max(attempts - 1, 0)), c.max_backoff)


def _again_or_fail(
    row: CallSession, token: str, *, reason: str, wait: float | None = None, **changes: Any
) -> None:
    """Schedule the next attempt, or record the call failed after the last one; `changes`
    are written with it (the call's log, once it has one)."""
    attempts = row.attempts + 1
    if attempts >= conf().max_attempts:
        _release(
            row,
            token,
            state=SessionState.FAILED,
            attempts=attempts,
            reason=reason,
            next_attempt_at=None,
            **changes,
        )
        logger.warning("Server-side call %s failed after %s attempts: %s", row.pk, attempts, reason)
        return
    delay = _backoff(attempts) if wait is None else wait
    next_at = timezone.now() + timedelta(seconds=delay)
    if _release(
        row,
        token,
        state=SessionState.ENDED,
        attempts=attempts,
        reason=reason,
        next_attempt_at=next_at,
        **changes,
    ):
        dispatch("sscl.log_call", row.pk, countdown=delay)


def call_session_log(*, session_pk: int) -> str:
    """Log one ended call: fetch its record, apply the account's settings and rules, and
    write it through the logging pipeline. Returns the call's new state.

    Exactly once per session and extension: the call's row is held by one task at a time,
    and the pipeline's own row is unique per session and extension identity.
    """
    token = secrets.token_hex(8)
    row = _claim(session_pk, token)
    if row is None:
        return "not-due"
    setting = selectors.server_logging_of_account(account=row.account)
    if setting is None or not setting.enabled:
        _release(row, token, state=SessionState.IGNORED, reason="Server-side logging is off for the account.")
        return SessionState.IGNORED
    connection = selectors.connection_of_account(account=row.account)
    if connection is None:
        _again_or_fail(row, token, reason="The account is not connected to RingCentral.")
        return SessionState.ENDED
    try:
        records = rc_call_records_by_session(
            connection=connection, telephony_session_id=row.telephony_session_id
        )
    except RingCentralRateLimited as exc:
        _again_or_fail(row, token, reason="RingCentral rate-limited the call-log read.", wait=exc.retry_after)
        return SessionState.ENDED
    except RingCentralError as exc:
        _again_or_fail(row, token, reason=f"RingCentral's call log could not be read: {exc}")
        return SessionState.ENDED
    record = record_of_extension(records, rc_extension_id=row.rc_extension_id)
    if record is None:
        _again_or_fail(row, token, reason="The call is not in RingCentral's call log yet.")
        return SessionState.ENDED
    blocked = _blocked(setting, record)
    if blocked:
        _release(row, token, state=SessionState.IGNORED, reason=f"{blocked} is on the blocked numbers.")
        return SessionState.IGNORED
    user_id = _log_user_id(setting, row)
    try:
        request = call_log_request(
            record, rc_extension_id=row.rc_extension_id, rc_account_id=row.account.rc_account_id
        )
    except ValueError as exc:
        _release(row, token, state=SessionState.FAILED, reason=f"The call record cannot be logged: {exc}")
        return SessionState.FAILED
    try:
        call_log_create(user_id=user_id, request=request)
    except CrmSessionRevoked:
        _release(
            row,
            token,
            state=SessionState.FAILED,
            reason="The CRM session of the logging user was revoked; connect it again, then retry.",
            call_log=selectors.call_log_of(user_id=user_id, request=request),
        )
        return SessionState.FAILED
    return _settle(row, token, user_id=user_id, request=request)


def _settle(row: CallSession, token: str, *, user_id: str, request: CallLogRequest) -> str:
    """Record the call's state from its log row, and try again when the CRM failed."""
    log = selectors.call_log_of(user_id=user_id, request=request)
    if log is None:  # the pipeline refused before claiming (the user is gone)
        _again_or_fail(row, token, reason=f"The CRM user {user_id} is not connected.")
        return SessionState.ENDED
    if log.status == LogStatus.LOGGED:
        _release(row, token, state=SessionState.LOGGED, reason="", call_log=log, next_attempt_at=None)
        return SessionState.LOGGED
    if log.status == LogStatus.SKIPPED:
        reason = (
            "The rules left it to a person."
            if log.decision.get("outcome") == DecisionOutcome.PROMPTED
            else ""
        )
        state = SessionState.LEFT_TO_USER if reason else SessionState.IGNORED
        _release(
            row, token, state=state, reason=reason or "Nothing to log.", call_log=log, next_attempt_at=None
        )
        return state
    if log.status == LogStatus.UNCONFIRMED:
        reason = "The CRM may hold the log; an admin checks it (see the call log)."
        _release(row, token, state=SessionState.FAILED, reason=reason, call_log=log, next_attempt_at=None)
        return SessionState.FAILED
    # pending (held by another attempt) or failed: try again, waiting out a CRM's 429
    failure = call_log_last_failure(log=log)
    wait = failure.get("retryAfter")
    reason = log.last_error or "The CRM did not log the call."
    wait_seconds = float(wait) if isinstance(wait, (int, float)) else None
    _again_or_fail(row, token, reason=reason, wait=wait_seconds, call_log=log)
    return SessionState.ENDED


def record_of_extension(records: list[JsonDict], *, rc_extension_id: str) -> JsonDict | None:
    """The call-log record of this extension's part in the call: the record the extension
    owns, else the one whose legs name it, else the only record."""
    for record in records:
        if str((record.get("extension") or {}).get("id") or "") == rc_extension_id:
            return record
    for record in records:
        for leg in record.get("legs") or []:
            if str((leg.get("extension") or {}).get("id") or "") == rc_extension_id:
                return record
    return records[0] if len(records) == 1 else None


_RECORD_KEYS = (
    "id",
    "sessionId",
    "telephonySessionId",
    "direction",
    "startTime",
    "duration",
    "result",
    "from",
    "to",
    "recording",
    "legs",
)


def call_log_request(record: JsonDict, *, rc_extension_id: str, rc_account_id: str) -> CallLogRequest:
    """The call record as `POST /callLog` from server-side logging would carry it,
    validated by the same serializer as the route (ValueError when it does not pass)."""
    log_info = {key: record[key] for key in _RECORD_KEYS if record.get(key) is not None}
    serializer = CallLogCreateInputSerializer(data={"logInfo": log_info, "rcExtensionId": rc_extension_id})
    if not serializer.is_valid():
        raise ValueError(str(serializer.errors))
    data = serializer.validated_data
    return CallLogRequest(
        log_info=data["logInfo"],
        phone_number=data["phone_number"],
        raw_number=data["raw_number"],
        additional_submission={},
        extension_number=str(((record.get("extension") or {}).get("extensionNumber")) or "")[:32],
        hashed_extension_id=hash_value(rc_extension_id),
        hashed_account_id=hash_value(rc_account_id),
        is_from_sscl=True,
    )


def _blocked(setting: ServerLogging, record: JsonDict) -> str:
    """The blocked number or extension number the call involves, or ""."""
    blocked = set(setting.blocked_numbers or [])
    if not blocked:
        return ""
    for side in ("from", "to"):
        party = record.get(side) or {}
        for key in ("phoneNumber", "extensionNumber"):
            value = str(party.get(key) or "")
            if not value:
                continue
            if value in blocked:
                return value
            try:
                if phone_number_normalize(value) in blocked:
                    return value
            except InvalidPhoneNumber:
                continue
    return ""


def _log_user_id(setting: ServerLogging, row: CallSession) -> str:
    """Whose CRM credentials write this call's log: the mapped agent (owner mode agent,
    the extension mapped to a connected CRM user), else the admin's user. Decided once per
    call: a mapping changed between attempts never logs it twice under two users."""
    if setting.owner_mode == OwnerMode.AGENT:
        mapped = selectors.mapped_crm_user_id(setting=setting, rc_extension_id=row.rc_extension_id)
        if mapped:
            return mapped
    return setting.crm_user_id


# --- calls left to a person --------------------------------------------------------------------


def call_session_resolve(*, row: CallSession, contact_id: str = "", create_placeholder: bool = False) -> str:
    """Log a call the rules left to a person (or that failed) from the admin: against the
    contact the admin chose, or against a placeholder the rules create. Through the same
    pipeline; the call's row then says what came of it."""
    if row.state not in (SessionState.LEFT_TO_USER, SessionState.FAILED):
        raise ServerLoggingError("Only a call left to a person, or a failed one, can be resolved.")
    if not contact_id and not create_placeholder:
        raise ServerLoggingError("Choose a contact, or create the placeholder.")
    log = row.call_log
    if log is None:
        raise ServerLoggingError("The call has no log yet; retry it instead.")
    request = CallLogRequest.from_payload(log.payload)
    request.contact_id = contact_id
    token = secrets.token_hex(8)
    taken = CallSession.objects.filter(pk=row.pk, state=row.state).update(
        state=SessionState.LOGGING, lease_owner=token, lease_until=timezone.now() + timedelta(seconds=60)
    )
    if not taken:
        raise ServerLoggingError("Another task is working on this call; try again in a minute.")
    if create_placeholder:
        try:
            request.contact_id, request.contact_type, request.contact_name = _placeholder_create(log, request)
        except ServerLoggingError:
            _release(row, token, state=row.state)
            raise
    call_log_create(user_id=log.user_id, request=request)
    return _settle(row, token, user_id=log.user_id, request=request)


def _placeholder_create(log: CallLog, request: CallLogRequest) -> tuple[str, str, str]:
    """The placeholder for the call's number, as a user's "Create new contact..." makes it
    (the same `createContact`), named as the rules name placeholders."""
    user = log.user
    client = crm_registry.get(user.platform)
    if not request.phone_number:
        raise ServerLoggingError("The caller withheld the number: no placeholder can be made for it.")
    name, contact_type = placeholder_name_for(
        user=user,
        client=client,
        phone_number=request.phone_number,
        caller_id_name=caller_id_name_of(request.log_info),
        direction=str(request.log_info.get("direction") or ""),
    )
    contact, message = placeholder_contact_create_manual(
        user=user,
        client=client,
        phone_number=request.phone_number,
        name=name,
        contact_type=contact_type,
        additional_submission={},
    )
    if contact is None:
        text = (message or {}).get("message") or "The CRM did not create the contact."
        raise ServerLoggingError(f"The placeholder could not be created: {text}")
    return str(contact["id"]), contact_type, name


def call_session_retry(*, row: CallSession) -> None:
    """Queue a failed call again, from its first step."""
    if row.state != SessionState.FAILED:
        raise ServerLoggingError("Only a failed call can be retried.")
    with transaction.atomic():
        CallSession.objects.filter(pk=row.pk, state=SessionState.FAILED).update(
            state=SessionState.ENDED, attempts=0, next_attempt_at=timezone.now(), reason=""
        )
        dispatch("sscl.log_call", row.pk)


# --- the sweep -----------------------------------------------------------------------------------


@dataclass(slots=True)
class SweepSummary:
    events: int = 0
    calls: int = 0


def sscl_sweep(*, limit: int = 500) -> SweepSummary:
    """Send again what is due and not held: deliveries not folded (their task was lost),
    ended calls whose next attempt is due, calls whose task died (lease lapsed)."""
    now = timezone.now()
    summary = SweepSummary()
    stale = now - timedelta(seconds=30)
    for event_id in WebhookEvent.objects.filter(processed_at=None, received_at__lt=stale).values_list(
        "pk", flat=True
    )[:limit]:
        dispatch("sscl.fold_event", event_id)
        summary.events += 1
    due = Q(state=SessionState.ENDED, next_attempt_at__lte=now) | Q(
        state=SessionState.LOGGING, lease_until__lt=now
    )
    for session_pk in CallSession.objects.filter(due).values_list("pk", flat=True)[:limit]:
        dispatch("sscl.log_call", session_pk)
        summary.calls += 1
    return summary


# --- replaying recorded deliveries ---------------------------------------------------------------


def replay_store(*, account: Account, deliveries: list[Any]) -> tuple[int, int, list[int]]:
    """Store and fold recorded deliveries for the account, as the webhook and its task
    would. Returns how many were stored, how many were already seen, and the calls now
    ended (their logging is `replay_drain`'s, when no worker did it already)."""
    for body in deliveries:
        if not isinstance(body, dict) or not isinstance(body.get("body"), dict) or not body.get("uuid"):
            raise WebhookInvalid("Each delivery must be a RingCentral notification with a uuid and a body.")
    stored = duplicates = 0
    sessions: set[str] = set()
    for body in deliveries:
        receipt = event_store(account=account, body=body)
        if not receipt.stored or receipt.event_id is None:
            duplicates += 1
            continue
        stored += 1
        event_fold(event_id=receipt.event_id)
        sessions.add(str(body["body"].get("telephonySessionId") or ""))
    calls = list(
        CallSession.objects.filter(account=account, telephony_session_id__in=sessions)
        .exclude(state=SessionState.ACTIVE)
        .values_list("pk", flat=True)
    )
    return stored, duplicates, calls


def replay_drain(*, calls: list[int], deadline: float, progress: Any = None) -> dict[str, int]:
    """Log the given ended calls now, trying again (with the usual backoff) until each is
    settled or the deadline (time.monotonic) passes. Returns the count of calls per state."""
    import time

    waiting = set(calls)
    while waiting and time.monotonic() < deadline:
        CallSession.objects.filter(pk__in=waiting, state=SessionState.ENDED).update(
            next_attempt_at=timezone.now()
        )
        for pk in sorted(waiting):
            call_session_log(session_pk=pk)
        states = dict(CallSession.objects.filter(pk__in=waiting).values_list("pk", "state"))
        waiting = {pk for pk, state in states.items() if state in (SessionState.ENDED, SessionState.LOGGING)}
        if waiting:
            if progress is not None:
                progress(f"{len(waiting)} call(s) not in RingCentral's call log yet; trying again")
            time.sleep(min(conf().first_fetch_delay, max(deadline - time.monotonic(), 0)))
    counts: dict[str, int] = {}
    for state in CallSession.objects.filter(pk__in=calls).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


# --- the subscription ---------------------------------------------------------------------------


def webhook_address() -> str:
    base = conf().public_base_url.rstrip("/")
    if not base:
        raise ServerLoggingError("PUBLIC_BASE_URL is not set: RingCentral needs the server's public address.")
    return f"{base}/{WEBHOOK_PATH}"


def _subscription_store(row: WebhookSubscription, info: Any, *, token: str | None = None) -> None:
    row.rc_subscription_id = info.id
    row.status = info.status
    row.expires_at = info.expires_at
    row.address = info.address
    row.checked_at = timezone.now()
    row.last_error = ""
    if token is not None:
        row.verification_token = token
    row.save()


def subscription_ensure(*, account: Account) -> WebhookSubscription:
    """The account's subscription, created when missing, re-created when RingCentral
    blacklisted or lost it, renewed when it expires soon; its health recorded."""
    connection = selectors.connection_of_account(account=account)
    row, _ = WebhookSubscription.objects.get_or_create(account=account)
    if connection is None:
        row.last_error = "The account is not connected to RingCentral."
        row.save(update_fields=["last_error"])
        raise ServerLoggingError(row.last_error)
    try:
        if row.rc_subscription_id:
            try:
                info = rc_subscription_get(connection=connection, subscription_id=row.rc_subscription_id)
            except RingCentralRefused as exc:
                if exc.status_code != 404:
                    raise
                row.status = SubscriptionStatus.MISSING
            else:
                row.status = info.status
                if info.status == SubscriptionStatus.ACTIVE:
                    if _expires_soon(info.expires_at):
                        info = rc_subscription_renew(
                            connection=connection, subscription_id=row.rc_subscription_id
                        )
                        row.renewed_at = timezone.now()
                    _subscription_store(row, info)
                    return row
                rc_subscription_delete(connection=connection, subscription_id=row.rc_subscription_id)
            row.recreated += 1
        _subscription_create(row, connection)
    except (RingCentralError, ServerLoggingError) as exc:
        row.last_error = str(exc)[:2000]
        row.checked_at = timezone.now()
        if not row.rc_subscription_id:
            row.status = SubscriptionStatus.FAILED
        row.save()
        raise ServerLoggingError(f"The webhook subscription could not be set up: {exc}") from exc
    return row


def _expires_soon(expires_at: datetime | None) -> bool:
    return expires_at is None or expires_at - timezone.now() < timedelta(seconds=conf().renew_before)


def _subscription_create(row: WebhookSubscription, connection: RingCentralConnection) -> None:
    token = secrets.token_urlsafe(24)
    # Stored first: RingCentral's first deliveries may arrive before its answer does.
    row.verification_token = token
    row.save()
    info = rc_subscription_create(
        connection=connection,
        address=webhook_address(),
        verification_token=token,
        event_filters=[TELEPHONY_EVENT_FILTER],
        expires_in=conf().subscription_expires_in,
    )
    row.created_at = timezone.now()
    _subscription_store(row, info, token=token)


def events_prune(*, now: datetime | None = None) -> int:
    """Delete stored deliveries folded more than `SSCL_EVENT_RETENTION_DAYS` ago (the calls
    they made keep what they concluded). Returns how many went."""
    before = (now or timezone.now()) - timedelta(days=conf().event_retention_days)
    deleted, _ = WebhookEvent.objects.filter(processed_at__lt=before).delete()
    return deleted


def subscriptions_maintain() -> dict[str, int]:
    """Every enabled account's subscription checked, renewed or re-created (Celery beat),
    and old deliveries pruned."""
    figures = {"checked": 0, "failed": 0, "pruned": events_prune()}
    for setting in ServerLogging.objects.filter(enabled=True).select_related("account"):
        figures["checked"] += 1
        try:
            subscription_ensure(account=setting.account)
        except ServerLoggingError:
            figures["failed"] += 1
            logger.warning("Subscription of account %s needs attention", setting.account.rc_account_id)
    return figures


def subscription_remove(*, account: Account) -> None:
    """Delete the account's subscription at RingCentral (logging turned off)."""
    row = WebhookSubscription.objects.filter(account=account).first()
    connection = selectors.connection_of_account(account=account)
    if row is None or not row.rc_subscription_id or connection is None:
        return
    try:
        rc_subscription_delete(connection=connection, subscription_id=row.rc_subscription_id)
    except RingCentralError as exc:
        row.last_error = f"Could not be deleted at RingCentral: {exc}"[:2000]
        row.save(update_fields=["last_error"])
        return
    row.rc_subscription_id = ""
    row.status = ""
    row.verification_token = ""
    row.expires_at = None
    row.save()


# --- settings -------------------------------------------------------------------------------------


def blocked_numbers_clean(values: Any) -> list[str]:
    """Blocked numbers as stored: E.164 numbers and extension numbers (digits), each once.
    Accepts a list or a comma-separated string, as App Connect's admin page sends it."""
    if isinstance(values, str):
        values = [v for v in (part.strip() for part in values.split(",")) if v]
    if not isinstance(values, list):
        raise ServerLoggingError("Blocked numbers must be a list of phone or extension numbers.")
    cleaned: list[str] = []
    for value in values:
        text = str(value).strip()
        if text.isdigit() and len(text) <= 8:
            number = text  # an extension number
        else:
            try:
                number = phone_number_normalize(text)
            except InvalidPhoneNumber as exc:
                raise ServerLoggingError(
                    f"{text!r} is neither a phone number nor an extension number."
                ) from exc
        if number not in cleaned:
            cleaned.append(number)
    return cleaned


def server_logging_check(
    *, account: Account, crm_user: CrmUser, owner_mode: str, enabled: bool = True
) -> None:
    """Raise ServerLoggingError when these settings cannot log: before anything is written."""
    if owner_mode not in OwnerMode.values:
        raise ServerLoggingError(f"Unknown owner mode {owner_mode!r}.")
    if not crm_user.is_connected:
        raise ServerLoggingError(f"The CRM user {crm_user.pk} is not connected.")
    if crm_user.rc_account_id and crm_user.rc_account_id != account.rc_account_id:
        raise ServerLoggingError(f"The CRM user {crm_user.pk} belongs to another RingCentral account.")
    if enabled and selectors.connection_of_account(account=account) is None:
        raise ServerLoggingError(
            f"Account {account.rc_account_id} is not connected to RingCentral: run ringcentral_connect first."
        )


@dataclass(frozen=True, slots=True)
class EnableResult:
    setting: ServerLogging
    subscription_error: str  # "" when the webhook subscription is in place (or logging is off)
    mapped: int  # extensions mapped to a connected CRM user


def server_logging_enable(
    *,
    account: Account,
    crm_user: CrmUser,
    owner_mode: str = OwnerMode.ADMIN,
    blocked_numbers: Any = None,
    enabled: bool = True,
) -> EnableResult:
    """Turn server-side logging on (or off) for an account, with its options. On, the
    webhook subscription is set up and the user mapping filled in; a subscription that
    cannot be made now (no PUBLIC_BASE_URL, RingCentral refusing) is reported, recorded on
    the subscription's row and tried again by the hourly upkeep. Off, it is deleted."""
    server_logging_check(account=account, crm_user=crm_user, owner_mode=owner_mode, enabled=enabled)
    cleaned = blocked_numbers_clean(blocked_numbers if blocked_numbers is not None else [])
    setting = ServerLogging.objects.filter(account=account).first() or ServerLogging(account=account)
    was_enabled = setting.enabled
    setting.crm_user = crm_user
    setting.owner_mode = owner_mode
    setting.blocked_numbers = cleaned
    setting.enabled = enabled
    if enabled and not was_enabled:
        setting.enabled_at = timezone.now()
    setting.save()
    if not enabled:
        if was_enabled:
            subscription_remove(account=account)
        return EnableResult(setting=setting, subscription_error="", mapped=0)
    error = ""
    try:
        subscription_ensure(account=account)
    except ServerLoggingError as exc:
        error = str(exc)
    return EnableResult(
        setting=setting, subscription_error=error, mapped=user_mapping_refresh(setting=setting)
    )


def server_logging_apply(
    *, rc_account_id: str, crm_user_id: str, enabled: bool, owner_mode: str, blocked_numbers: Any
) -> EnableResult:
    """`POST /admin/serverLoggingSettings` from an account admin: `server_logging_enable`
    with the calling user's CRM credentials writing the logs."""
    user = CrmUser.objects.filter(pk=crm_user_id).first()
    if user is None:
        raise ServerLoggingError(f"No CRM user {crm_user_id}.")
    account = Account.objects.filter(rc_account_id=rc_account_id).first()
    if account is None and RingCentralConnection.objects.filter(rc_account_id=rc_account_id).exists():
        account = account_ensure(rc_account_id=rc_account_id)
    if account is None:
        if enabled:
            raise ServerLoggingError(
                f"Account {rc_account_id} is not connected to RingCentral: run ringcentral_connect first."
            )
        return EnableResult(setting=ServerLogging(enabled=False), subscription_error="", mapped=0)
    return server_logging_enable(
        account=account,
        crm_user=user,
        owner_mode=owner_mode,
        blocked_numbers=blocked_numbers,
        enabled=enabled,
    )


def user_mapping_refresh(*, setting: ServerLogging) -> int:
    """Fill in the mapping of the account's extensions to connected CRM users: the user
    who connected from that extension, else the one with the same name. A mapping an
    admin set is kept. Returns how many extensions are mapped."""
    connection = selectors.connection_of_account(account=setting.account)
    if connection is None:
        return 0
    try:
        extensions = rc_extensions_list(connection=connection)
    except RingCentralError:
        logger.warning("The extensions of account %s could not be listed", setting.account.rc_account_id)
        return 0
    users = selectors.crm_users_of_account(account=setting.account, platform=setting.crm_user.platform)
    by_extension = {u.hashed_rc_extension_id: u for u in users if u.hashed_rc_extension_id}
    by_name = {u.name.strip().casefold(): u for u in users if u.name.strip()}
    mapped = 0
    for ext in extensions:
        row, _ = UserMapping.objects.get_or_create(server_logging=setting, rc_extension_id=ext.id)
        row.extension_number = ext.extension_number[:32]
        row.rc_name = ext.name[:255]
        row.rc_email = ext.email[:255]
        if row.source != MappingSource.ADMIN:
            user = by_extension.get(hash_value(ext.id))
            source = MappingSource.EXTENSION
            if user is None:
                user, source = by_name.get(ext.name.strip().casefold()), MappingSource.NAME
            row.crm_user_id = user.pk if user else ""
            row.crm_user_name = (user.name if user else "")[:255]
            row.source = source if user else ""
        row.save()
        mapped += bool(row.crm_user_id)
    return mapped
