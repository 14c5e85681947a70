"""Choice sets of server-side call logging."""

from django.db import models


class OwnerMode(models.TextChoices):
    """Whose CRM identity a server-side log is written as."""

    ADMIN = "admin", "The admin (the connected CRM user)"
    AGENT = "agent", "The agent, where the user mapping names a CRM user"


class MappingSource(models.TextChoices):
    """How an extension came to be mapped to a CRM user."""

    EXTENSION = "extension", "Connected from this extension"
    NAME = "name", "Same name"
    ADMIN = "admin", "Set by an admin"


class SessionState(models.TextChoices):
    """Where one call (a telephony session, seen from one extension) stands."""

    ACTIVE = "active", "In progress"  # events seen, the extension's party not yet disconnected
    ENDED = "ended", "Ended, waiting to be logged"  # queued for the logging task
    LOGGING = "logging", "Being logged"  # a task holds it (lease)
    LOGGED = "logged", "Logged"
    LEFT_TO_USER = "left_to_user", "Left to a person"  # the rules prompted; see the admin
    IGNORED = "ignored", "Not logged on purpose"  # blocked number, logging off, ...
    FAILED = "failed", "Failed"  # after the last attempt; retryable from the admin


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "Active", "Active"
    BLACKLISTED = "Blacklisted", "Blacklisted by RingCentral"
    MISSING = "missing", "Not found at RingCentral"
    FAILED = "failed", "Could not be created"
