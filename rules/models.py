"""RingCentral accounts, admin-set settings, placeholder names and block list, placeholder registry."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from connector.models import CrmUser
from rules.choices import BlockedNumberKind, DecidedBy, PlaceholderLife, PlaceholderStatus


class Account(models.Model):
    """A RingCentral account whose users connect through this server.

    Its admins (RingCentral account admins) set the account's rules; its users are linked
    to it when they log in with a RingCentral token.
    """

    rc_account_id = models.CharField("RingCentral account id", max_length=64, unique=True)
    account_key = models.CharField(
        max_length=64,
        unique=True,
        help_text="App Connect's hashed account id: sha256 of '<account id>:<HASH_KEY>'.",
    )
    name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "RingCentral account"
        ordering = ("rc_account_id",)

    def __str__(self) -> str:
        return self.name or f"Account {self.rc_account_id}"


class RuleSetting(models.Model):
    """An admin-set value of one setting, for the whole site (no account) or one account.

    The account's row wins over the site-wide row, which wins over the default declared
    in code (`rules.parameters`). Users' own values count only while `customizable` is on.
    """

    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="settings",
        help_text="Leave empty for the site-wide default.",
    )
    # One of rules.parameters.PARAMETERS (or plugin_<id>); the admin form offers the list.
    key = models.CharField("setting", max_length=64)
    value = models.JSONField(
        null=True, blank=True, help_text='The setting\'s value, as JSON (e.g. "createPlaceholder", true).'
    )
    # Other keys of App Connect's entry, kept as sent (defaultValue, options, or the fields
    # of an entry without a value, such as serverSideLogging's enable and loggingLevel).
    extra = models.JSONField(default=dict, blank=True)
    customizable = models.BooleanField(
        "users may change it",
        default=False,
        help_text="Off: every user gets this value and cannot change it.",
    )
    is_removed = models.BooleanField(
        "hidden", default=False, help_text="Hide this setting from users' settings."
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "rule setting"
        ordering = ("account_id", "key")
        constraints = [
            models.UniqueConstraint(
                fields=("account", "key"),
                condition=Q(account__isnull=False),
                name="%(app_label)s_%(class)s_unique_account_key",
            ),
            models.UniqueConstraint(
                fields=("key",),
                condition=Q(account__isnull=True),
                name="%(app_label)s_%(class)s_unique_site_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.account or 'site-wide'})"


class PlaceholderNameTemplate(models.Model):
    """The default name of placeholder contacts of one contact type, site-wide or per account.

    Wins over the generic `defaultPlaceholderName` setting of the same scope.
    """

    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="placeholder_names",
        help_text="Leave empty for the site-wide default.",
    )
    contact_type = models.CharField(max_length=64, help_text="One of the CRM's contact types.")
    template = models.CharField(
        max_length=120,
        help_text="May use {callerId}, {phoneNumber} (E.164), {nationalNumber}, {last4}, {date} and "
        "{direction}, e.g. 'New lead {last4}'.",
    )
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "default placeholder name"
        ordering = ("account_id", "contact_type")
        constraints = [
            models.UniqueConstraint(
                fields=("account", "contact_type"),
                condition=Q(account__isnull=False),
                name="%(app_label)s_%(class)s_unique_account_type",
            ),
            models.UniqueConstraint(
                fields=("contact_type",),
                condition=Q(account__isnull=True),
                name="%(app_label)s_%(class)s_unique_site_type",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.contact_type}: {self.template}"


class BlockedNumber(models.Model):
    """A number, or a prefix of numbers, that never becomes a placeholder contact, for the
    whole site (no account) or one account.

    Calls and messages with it are still logged against a contact the CRM has; the
    decision of those it kept from a placeholder names the entry. Stored in E.164
    (`+14155550199`, or a prefix such as `+1900`), checked by `rules.services`.
    """

    account = models.ForeignKey(
        Account,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="blocked_numbers",
        help_text="Leave empty for the whole site.",
    )
    kind = models.CharField(max_length=8, choices=BlockedNumberKind.choices, default=BlockedNumberKind.NUMBER)
    number = models.CharField(
        "number or prefix",
        max_length=16,
        help_text="A number (any format, stored in E.164) or an E.164 prefix such as +1900.",
    )
    note = models.CharField(max_length=255, blank=True, help_text="Why it is blocked.")
    updated_at = models.DateTimeField(auto_now=True)
    history = HistoricalRecords()

    class Meta:
        verbose_name = "blocked number"
        ordering = ("account_id", "number")
        constraints = [
            models.UniqueConstraint(
                fields=("account", "number"),
                condition=Q(account__isnull=False),
                name="%(app_label)s_%(class)s_unique_account_number",
            ),
            models.UniqueConstraint(
                fields=("number",),
                condition=Q(account__isnull=True),
                name="%(app_label)s_%(class)s_unique_site_number",
            ),
        ]

    def __str__(self) -> str:
        shown = f"{self.number}…" if self.kind == BlockedNumberKind.PREFIX else self.number
        return f"{shown} ({self.account or 'site-wide'})"


class PlaceholderContact(models.Model):
    """A contact created for a number no CRM contact had, by a rule or by a user.

    Rule-created ones are unique per scope (RingCentral account, or the user when not
    linked to one), platform and number, superseded ones aside: the row is claimed before
    the CRM is asked, so simultaneous calls from one number create one contact, and it is
    reused while the CRM's search has not caught up. Its `life` follows it afterwards:
    open, named, or superseded by a real contact for the number. A superseded row stays
    as history; should the real contact be gone when the number calls again, a new
    placeholder takes over from it (`replaces`), still one live one per number.
    """

    scope_key = models.CharField(max_length=80, help_text="acct:<account key> or user:<user id>")
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="placeholders"
    )
    platform = models.CharField(max_length=64)
    phone_number = models.CharField(max_length=32)
    created_by = models.ForeignKey(CrmUser, on_delete=models.PROTECT, related_name="placeholders_created")
    decided_by = models.CharField(max_length=16, choices=DecidedBy.choices)
    # The rule values that decided (for rule-created ones).
    rule_snapshot = models.JSONField(default=dict, blank=True)
    contact_id = models.CharField("CRM contact id", max_length=255, blank=True)
    contact_name = models.CharField(max_length=255, blank=True)
    contact_type = models.CharField(max_length=64, blank=True)
    status = models.CharField(
        max_length=16, choices=PlaceholderStatus.choices, default=PlaceholderStatus.CREATING
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Its life after creation: open, named (by a user or in the CRM), or superseded by a
    # real contact, which new logs go to (superseded_by). Written by `rules.services`.
    life = models.CharField(max_length=16, choices=PlaceholderLife.choices, default=PlaceholderLife.OPEN)
    named_as = models.CharField(max_length=255, blank=True, help_text="The name a user or the CRM gave it.")
    named_at = models.DateTimeField(null=True, blank=True)
    superseded_by = models.CharField(
        "superseded by CRM contact id",
        max_length=255,
        blank=True,
        help_text="The real contact new logs go to.",
    )
    superseded_at = models.DateTimeField(null=True, blank=True)
    life_reason = models.CharField(max_length=255, blank=True, help_text="Why its life last changed.")
    # The superseded placeholder of the number this one took over from: the real contact
    # that superseded it was gone when the number called again (see `rules.services`).
    replaces = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replaced_by",
        help_text="The number's earlier placeholder, superseded by a contact the CRM no longer returns.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=("scope_key", "platform", "phone_number"),
                condition=Q(decided_by=DecidedBy.RULE) & ~Q(life=PlaceholderLife.SUPERSEDED),
                name="%(app_label)s_%(class)s_one_live_per_number",
            )
        ]
        indexes = [
            models.Index(fields=("-created_at", "-id"), name="rules_placeholder_created"),
            models.Index(fields=("scope_key", "platform", "phone_number"), name="rules_placeholder_lookup"),
            # Led by the contact id, not the platform: a prepared statement's generic plan on a
            # young table (estimates all alike) took an index led by the platform for queries
            # that do not ask by contact, and read every row of the platform.
            models.Index(fields=("contact_id", "platform"), name="rules_placeholder_contact"),
        ]

    def __str__(self) -> str:
        return f"{self.contact_name or self.phone_number} ({self.get_status_display()})"
