"""Call logs, message logs and their append-only event trail."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from connector.models import CrmUser
from logs.choices import DecidedBy, Direction, EventKind, LogStatus
from rules.models import PlaceholderContact


class LogRecord(models.Model):
    """Fields every log has: who, where, against which contact, who decided, and the outcome.

    `decision` is a snapshot of what decided (the rule values, the number looked up, how
    many contacts matched), so a later rule change never rewrites history.
    """

    user = models.ForeignKey(CrmUser, on_delete=models.PROTECT, related_name="+")
    platform = models.CharField(max_length=64)
    # the counterpart's number, E.164 (or as given when it could not be read)
    phone_number = models.CharField(max_length=32, blank=True)
    contact_id = models.CharField("CRM contact id", max_length=255, blank=True)
    contact_name = models.CharField(max_length=255, blank=True)
    contact_type = models.CharField(max_length=64, blank=True)
    contact_is_placeholder = models.BooleanField(
        "placeholder contact", default=False, help_text="The contact was created for this number."
    )
    placeholder = models.ForeignKey(
        PlaceholderContact, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_by = models.CharField(max_length=16, choices=DecidedBy.choices, default=DecidedBy.USER)
    decision = models.JSONField(default=dict, blank=True)
    # The validated request, credentials removed: what a retry sends to the CRM again.
    payload = models.JSONField(default=dict, blank=True)
    crm_log_id = models.CharField("CRM log id", max_length=255, blank=True)
    status = models.CharField(max_length=16, choices=LogStatus.choices, default=LogStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # The lease: the request (or retry, or task) working on a pending row, by a random
    # token, and until when. Another one takes the row over only once the lease lapsed.
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Set when a CRM write begins, cleared when its outcome is recorded. While it is set
    # the CRM may hold the activity, so nothing is sent again before the CRM is asked.
    crm_write_started_at = models.DateTimeField("CRM write started", null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class CallLog(LogRecord):
    """One call the server was asked to log, for one user, platform and extension identity.

    At most one row exists per (user, platform, session, extension identity): the row is
    claimed before the CRM is called, which is what makes duplicate requests safe.
    """

    # No index of its own: the unique (user, platform, session, identity) leads with it.
    user = models.ForeignKey(CrmUser, on_delete=models.PROTECT, related_name="call_logs", db_index=False)
    session_id = models.CharField(max_length=128)
    # telephonySessionId, else the RingCentral call-log record id (the peer's row id)
    record_id = models.CharField(max_length=128, blank=True)
    # "h:<hashed extension id>", else "e:<extension number>", else "" (see services)
    identity_key = models.CharField(max_length=80, blank=True)
    hashed_extension_id = models.CharField(max_length=64, blank=True)
    extension_number = models.CharField(max_length=32, blank=True)
    direction = models.CharField(max_length=16, choices=Direction.choices, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    result = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("user", "platform", "session_id", "identity_key"),
                name="%(app_label)s_%(class)s_unique_session",
            )
        ]
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="logs_calllog_created"),
            # Logged rows, nearly all of them, are left out: the admin's list finds them
            # newest first on logs_calllog_created. So a row leaves this index when it is
            # logged instead of gaining a new entry, and a generic plan for "this id, still
            # pending" cannot pick it over the primary key (on a young table it did, and
            # read every pending row and dead entry).
            models.Index(
                fields=("status", "-created_at"),
                name="logs_calllog_status",
                condition=~Q(status=LogStatus.LOGGED),
            ),
            models.Index(fields=("session_id",), name="logs_calllog_session"),
            models.Index(fields=("phone_number",), name="logs_calllog_phone"),
            models.Index(fields=("crm_log_id",), name="logs_calllog_crm_log"),
        ]

    def __str__(self) -> str:
        return f"Call {self.session_id} ({self.get_status_display()})"


class MessageLog(LogRecord):
    """One message (SMS, MMS, fax, voicemail) the server was asked to log, per user and platform.

    Messages of one conversation on one day share `conversation_log_id` and one CRM
    activity (`crm_log_id`).
    """

    # No index of its own: the unique (user, platform, message id) leads with it.
    user = models.ForeignKey(CrmUser, on_delete=models.PROTECT, related_name="message_logs", db_index=False)
    # the RingCentral message id; "<id>-<contact id>" in a group conversation
    message_id = models.CharField(max_length=128)
    conversation_id = models.CharField(max_length=128, blank=True)
    conversation_log_id = models.CharField(max_length=160, blank=True)
    message_type = models.CharField(max_length=32, blank=True)
    direction = models.CharField(max_length=16, choices=Direction.choices, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("user", "platform", "message_id"),
                name="%(app_label)s_%(class)s_unique_message",
            )
        ]
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="logs_messagelog_created"),
            # Logged rows left out, as CallLog's
            models.Index(
                fields=("status", "-created_at"),
                name="logs_messagelog_status",
                condition=~Q(status=LogStatus.LOGGED),
            ),
            models.Index(
                fields=("user", "platform", "conversation_log_id"),
                name="logs_messagelog_conversation",
            ),
            models.Index(fields=("phone_number",), name="logs_messagelog_phone"),
        ]

    def __str__(self) -> str:
        return f"Message {self.message_id} ({self.get_status_display()})"


class LogEvent(models.Model):
    """One entry of a log's event trail: a decision or a CRM outcome. Never edited."""

    # No index of their own: logs_logevent_call and logs_logevent_message lead with them.
    call_log = models.ForeignKey(
        CallLog, on_delete=models.PROTECT, null=True, blank=True, related_name="events", db_index=False
    )
    message_log = models.ForeignKey(
        MessageLog, on_delete=models.PROTECT, null=True, blank=True, related_name="events", db_index=False
    )
    kind = models.CharField(max_length=32, choices=EventKind.choices)
    decided_by = models.CharField(max_length=16, choices=DecidedBy.choices, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("created_at", "id")
        constraints = [
            models.CheckConstraint(
                condition=Q(call_log__isnull=False, message_log__isnull=True)
                | Q(call_log__isnull=True, message_log__isnull=False),
                name="%(app_label)s_%(class)s_one_log",
            )
        ]
        # Partial: an event belongs to a call or to a message, never both (the check
        # above), so each index holds only its own kind's events.
        indexes = [
            models.Index(
                fields=("call_log", "created_at"),
                name="logs_logevent_call",
                condition=Q(call_log__isnull=False),
            ),
            models.Index(
                fields=("message_log", "created_at"),
                name="logs_logevent_message",
                condition=Q(message_log__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()
