"""Connected CRM users, and the built-in CRM's own records (users, contacts, activities)."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.db import models
from encrypted_fields.fields import EncryptedTextField
from simple_history.models import HistoricalRecords

from connector.choices import ActivityKind, BuiltinContactType


class CrmUser(models.Model):
    """A CRM user connected through App Connect: the peer's `users` row.

    The primary key is what the platform's connector reports as the user's id (by
    convention `<crm user id>-<platform>`); it is also the `id` claim of the user's App
    Connect JWT. Credentials are encrypted at rest and never leave the server: no route,
    admin page, export or log line shows them.
    """

    id = models.CharField(primary_key=True, max_length=255)
    platform = models.CharField(max_length=64)
    name = models.CharField(max_length=255, blank=True)
    hostname = models.CharField(max_length=255, blank=True)
    timezone_name = models.CharField(max_length=64, blank=True)
    timezone_offset = models.CharField(max_length=16, blank=True)
    # The API key, or the OAuth access token; empty after the user logs out.
    access_token = EncryptedTextField(null=True, blank=True)
    refresh_token = EncryptedTextField(null=True, blank=True)
    token_expiry = models.DateTimeField(null=True, blank=True)
    # OAuth refresh, single-flight across threads and processes: each stored token pair
    # has a version; one refresher at a time holds a lease on the row (see
    # connector.services.crm_user_token_ensure). `auth_error` says why the last failed.
    token_version = models.PositiveIntegerField(default=0)
    refresh_lease_owner = models.CharField(max_length=32, blank=True)
    refresh_lease_until = models.DateTimeField(null=True, blank=True)
    token_refreshed_at = models.DateTimeField(null=True, blank=True)
    auth_error = models.TextField(blank=True)
    # Connector-specific extras as JSON text, encrypted because they may hold credential
    # fields from the login page. Read and write them through `platform_additional_info`.
    platform_additional_info_json = EncryptedTextField(null=True, blank=True)
    rc_account_id = models.CharField("RingCentral account id", max_length=64, blank=True, db_index=True)
    hashed_rc_extension_id = models.CharField(max_length=64, blank=True)
    # The user's own settings map ({key: {value, customizable, ...}}), as App Connect keeps it.
    user_settings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "connected CRM user"
        ordering = ("id",)
        indexes = [models.Index(fields=("platform", "id"), name="connector_crmuser_platform")]

    def __str__(self) -> str:
        return f"{self.name or self.id} ({self.platform})"

    @property
    def platform_additional_info(self) -> dict[str, Any]:
        return json.loads(self.platform_additional_info_json) if self.platform_additional_info_json else {}

    @platform_additional_info.setter
    def platform_additional_info(self, value: dict[str, Any]) -> None:
        self.platform_additional_info_json = json.dumps(value) if value else ""

    # Set by connector.selectors.crm_user_get, which reads it without decrypting anything.
    has_access_token: bool | None = None

    @property
    def is_connected(self) -> bool:
        """True while the user holds CRM credentials (the peer checks `accessToken`)."""
        if self.has_access_token is not None and "access_token" in self.get_deferred_fields():
            return self.has_access_token
        return bool(self.access_token)


class ManagedOAuthApp(models.Model):
    """A RingCentral account's own OAuth app for a CRM, set by an admin (App Connect's
    "admin-managed OAuth"): its users connect and refresh with this client instead of the
    one configured in the environment. The secret is encrypted and never shown again."""

    rc_account_id = models.CharField("RingCentral account id", max_length=64)
    platform = models.CharField(max_length=64)
    client_id = models.CharField(max_length=255)
    client_secret = EncryptedTextField()
    # Optional: the CRM's own endpoints are used when these are blank.
    token_url = models.URLField("token URL", max_length=500, blank=True)
    redirect_uri = models.URLField("redirect URI", max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "account OAuth app"
        ordering = ("rc_account_id", "platform")
        constraints = [
            models.UniqueConstraint(
                fields=("rc_account_id", "platform"), name="%(app_label)s_%(class)s_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.platform} app of account {self.rc_account_id}"


def _proxy_id() -> str:
    return secrets.token_urlsafe(12)


class ProxyConnector(models.Model):
    """A REST CRM described in JSON, in App Connect's proxy-connector format (`meta`,
    `auth`, `requestDefaults`, `operations`): a connector without code.

    Its platform name is the config's `meta.name`; App Connect's client selects it with
    `proxyId` at login, and the user keeps it. The config is validated before it is
    stored (`connector.services.proxy_connector_save`); its secret key (`{{secretKey}}`
    in templates) is encrypted and never shown again, nor kept in the history.
    `revision` grows with each save, so every process rebuilds its client.
    """

    proxy_id = models.CharField("proxy id", max_length=32, unique=True, default=_proxy_id, editable=False)
    name = models.CharField("platform name", max_length=64, unique=True, editable=False)
    display_name = models.CharField(max_length=255, blank=True, editable=False)
    config = models.JSONField()
    secret_key = EncryptedTextField(null=True, blank=True)
    revision = models.PositiveIntegerField(default=1, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords(excluded_fields=["secret_key"])

    class Meta:
        verbose_name = "proxy connector"
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.display_name or self.name} ({self.name})"


# ---------------------------------------------------------------------------
# The built-in CRM: a small CRM kept in our own database, so a fresh checkout works
# end to end with no outside system. Only connector.crm.builtin reads or writes it.
# ---------------------------------------------------------------------------


class BuiltinCrmUser(models.Model):
    """A user of the built-in CRM; logs in to App Connect with one of its API keys."""

    name = models.CharField(max_length=150, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "built-in CRM user"
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class BuiltinApiKey(models.Model):
    """An API key of a built-in CRM user. Only its SHA-256 digest is stored."""

    user = models.ForeignKey(BuiltinCrmUser, on_delete=models.CASCADE, related_name="api_keys")
    prefix = models.CharField(max_length=12, help_text="First characters, to tell keys apart.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "built-in CRM API key"
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class BuiltinContact(models.Model):
    """A contact in the built-in CRM; shared by all built-in CRM users, like one CRM org."""

    name = models.CharField(max_length=255)
    contact_type = models.CharField(
        max_length=32, choices=BuiltinContactType.choices, default=BuiltinContactType.CONTACT
    )
    created_by = models.ForeignKey(
        BuiltinCrmUser,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="contacts_created",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "built-in CRM contact"
        ordering = ("name", "id")
        indexes = [models.Index(fields=("name", "id"), name="connector_bcontact_name")]

    def __str__(self) -> str:
        return self.name


class BuiltinContactPhone(models.Model):
    """One phone number of a built-in CRM contact, stored in E.164."""

    contact = models.ForeignKey(BuiltinContact, on_delete=models.CASCADE, related_name="phone_numbers")
    phone_number = models.CharField(max_length=32, db_index=True)

    class Meta:
        verbose_name = "phone number"
        ordering = ("id",)
        constraints = [
            models.UniqueConstraint(fields=("contact", "phone_number"), name="%(app_label)s_%(class)s_unique")
        ]

    def __str__(self) -> str:
        return self.phone_number


class BuiltinActivity(models.Model):
    """A call log or message conversation logged into the built-in CRM."""

    kind = models.CharField(max_length=16, choices=ActivityKind.choices)
    contact = models.ForeignKey(BuiltinContact, on_delete=models.PROTECT, related_name="activities")
    owner = models.ForeignKey(BuiltinCrmUser, on_delete=models.PROTECT, related_name="activities")
    subject = models.CharField(max_length=500, blank=True)
    note = models.TextField(blank=True)
    body = models.TextField(blank=True)
    # The RingCentral call or message fields the CRM keeps (session id, direction, ...).
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "built-in CRM activity"
        verbose_name_plural = "built-in CRM activities"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="connector_bactivity_created"),
            models.Index(fields=("contact", "-created_at"), name="connector_bactivity_contact"),
        ]

    def __str__(self) -> str:
        return self.subject or f"{self.get_kind_display()} #{self.pk}"


class BuiltinActivityKey(models.Model):
    """A key an activity was logged under (a call's session, a message's id), so the
    built-in CRM can say whether it already holds a log: what the logging pipeline asks
    before it sends again a write that was interrupted (`find_call_log`)."""

    activity = models.ForeignKey(BuiltinActivity, on_delete=models.CASCADE, related_name="keys")
    owner = models.ForeignKey(BuiltinCrmUser, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=300)

    class Meta:
        verbose_name = "built-in CRM activity key"
        ordering = ("id",)
        indexes = [models.Index(fields=("owner", "key"), name="connector_bactivitykey_key")]

    def __str__(self) -> str:
        return self.key


class RingCentralConnection(models.Model):
    """A RingCentral account connected to the server with an admin's JWT credential, so the
    server can call RingCentral for the account on its own: subscribe to its calls, read its
    call log and its extensions (server-side call logging).

    The JWT is exchanged for an access token (the JWT bearer grant); tokens are refreshed
    single-flight across threads and processes (`connector.services.ringcentral_token_ensure`).
    The JWT and the tokens are encrypted at rest, never shown and never kept in the history.
    """

    rc_account_id = models.CharField("RingCentral account id", max_length=64, unique=True)
    # The admin extension the JWT belongs to; the server's calls act as this extension.
    rc_extension_id = models.CharField("admin extension id", max_length=64)
    name = models.CharField(max_length=255, blank=True)
    jwt = EncryptedTextField("JWT credential", null=True, blank=True)
    access_token = EncryptedTextField(null=True, blank=True)
    refresh_token = EncryptedTextField(null=True, blank=True)
    token_expiry = models.DateTimeField(null=True, blank=True)
    # Single-flight refresh, as CrmUser's: each stored token pair has a version, and one
    # refresher at a time holds a lease on the row.
    token_version = models.PositiveIntegerField(default=0)
    refresh_lease_owner = models.CharField(max_length=32, blank=True)
    refresh_lease_until = models.DateTimeField(null=True, blank=True)
    connected_at = models.DateTimeField(null=True, blank=True)
    token_refreshed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    history = HistoricalRecords(
        excluded_fields=["jwt", "access_token", "refresh_token", "refresh_lease_owner", "refresh_lease_until"]
    )

    class Meta:
        verbose_name = "RingCentral connection"
        ordering = ("rc_account_id",)

    def __str__(self) -> str:
        return f"{self.name or 'RingCentral account'} ({self.rc_account_id})"
