"""Server-side call logging: per-account settings, the webhook subscription, the raw
deliveries, and each call's progress from its first event to its log.

The path of a call: RingCentral delivers telephony-session events to the webhook, which
stores each one (`WebhookEvent`, unique on RingCentral's `uuid`) and queues it. A task
folds the events into one `CallSession` per telephony session and extension; when the
extension's party is disconnected, another task fetches the call record and logs it
through the one logging pipeline (`logs.services.call_log_create`), whose call-log row is
unique per session and extension identity: however often RingCentral redelivers, or
however the events are ordered, a call is logged once.
"""

from __future__ import annotations

from django.db import models
from encrypted_fields.fields import EncryptedTextField
from simple_history.models import HistoricalRecords

from connector.models import CrmUser
from logs.models import CallLog
from rules.models import Account
from sscl.choices import MappingSource, OwnerMode, SessionState, SubscriptionStatus


class ServerLogging(models.Model):
    """Server-side call logging for one RingCentral account: on or off, whose CRM
    credentials write the logs, whose name they carry, and numbers never logged.

    The account's auto-logging rules (`rules`) decide unknown callers, as for the client.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="server_logging")
    enabled = models.BooleanField(default=False)
    crm_user = models.ForeignKey(
        CrmUser,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="CRM user",
        help_text="The connected CRM user whose credentials write the logs (usually the admin's).",
    )
    owner_mode = models.CharField(
        "activity owner", max_length=16, choices=OwnerMode.choices, default=OwnerMode.ADMIN
    )
    # E.164 numbers and extension numbers whose calls are never logged (App Connect's
    # "blocked numbers"); validated by sscl.services.blocked_numbers_clean.
    blocked_numbers = models.JSONField(default=list, blank=True)
    enabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "server-side logging setting"
        ordering = ("account__rc_account_id",)

    def __str__(self) -> str:
        return f"Server-side logging for {self.account}"


class UserMapping(models.Model):
    """Which CRM user a RingCentral extension's calls are owned by (owner mode "agent")."""

    server_logging = models.ForeignKey(ServerLogging, on_delete=models.CASCADE, related_name="mappings")
    rc_extension_id = models.CharField("RingCentral extension id", max_length=64)
    extension_number = models.CharField(max_length=32, blank=True)
    rc_name = models.CharField("RingCentral name", max_length=255, blank=True)
    rc_email = models.CharField("RingCentral email", max_length=255, blank=True)
    crm_user_id = models.CharField(
        "CRM user id",
        max_length=255,
        blank=True,
        help_text="Empty: the extension's calls are owned by the admin.",
    )
    crm_user_name = models.CharField("CRM user name", max_length=255, blank=True)
    source = models.CharField(max_length=16, choices=MappingSource.choices, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ("extension_number", "rc_extension_id")
        constraints = [
            models.UniqueConstraint(
                fields=("server_logging", "rc_extension_id"), name="sscl_usermapping_unique_extension"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rc_name or self.rc_extension_id} → {self.crm_user_name or self.crm_user_id or 'admin'}"


class WebhookSubscription(models.Model):
    """The account's RingCentral webhook subscription to its telephony sessions, and its health."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="webhook_subscription")
    rc_subscription_id = models.CharField(
        "RingCentral subscription id", max_length=64, blank=True, db_index=True
    )
    status = models.CharField(max_length=16, choices=SubscriptionStatus.choices, blank=True)
    address = models.URLField("delivery address", max_length=500, blank=True)
    # Sent by RingCentral with every delivery (header Verification-Token); never shown.
    verification_token = EncryptedTextField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    renewed_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)
    recreated = models.PositiveIntegerField(default=0, help_text="Times it was re-created after being lost.")
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "webhook subscription"

    def __str__(self) -> str:
        return f"Subscription {self.rc_subscription_id or '(none)'} of {self.account}"


class WebhookEvent(models.Model):
    """One delivery from RingCentral, stored as it came before anything else is done."""

    uuid = models.CharField(max_length=64, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    telephony_session_id = models.CharField(max_length=128, blank=True, db_index=True)
    sequence = models.BigIntegerField(null=True, blank=True)
    body = models.JSONField(default=dict)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-received_at", "-id")
        indexes = [models.Index(fields=("processed_at", "received_at"), name="sscl_event_unprocessed")]

    def __str__(self) -> str:
        return f"Event {self.uuid}"


class CallSession(models.Model):
    """One call as one extension of the account took part in it: its events folded, then
    its log. Unique per account, telephony session and extension."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    telephony_session_id = models.CharField(max_length=128)
    rc_extension_id = models.CharField("RingCentral extension id", max_length=64)
    session_id = models.CharField("RingCentral session id", max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=SessionState.choices, default=SessionState.ACTIVE)
    # The newest event folded in (RingCentral's `sequence`): older ones change nothing.
    last_sequence = models.BigIntegerField(default=-1)
    party_status = models.CharField(max_length=32, blank=True)
    direction = models.CharField(max_length=16, blank=True)
    phone_number = models.CharField("counterpart", max_length=32, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_owner = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True, help_text="Why it was not logged, or the last error.")
    call_log = models.ForeignKey(CallLog, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "server-side call"
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("account", "telephony_session_id", "rc_extension_id"), name="sscl_callsession_unique"
            )
        ]
        indexes = [models.Index(fields=("state", "next_attempt_at"), name="sscl_callsession_due")]

    def __str__(self) -> str:
        return f"Call {self.telephony_session_id} of extension {self.rc_extension_id}"
