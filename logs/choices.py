"""Choice sets of the log history."""

from django.db import models

from rules.choices import DecidedBy

__all__ = ("DecidedBy", "Direction", "EventKind", "LogStatus")


class LogStatus(models.TextChoices):
    """Where a call or message log stands."""

    PENDING = "pending", "Pending"  # claimed; the CRM call is under way or was interrupted
    LOGGED = "logged", "Logged"  # the CRM holds the activity (crm_log_id)
    SKIPPED = "skipped", "Skipped"  # nothing logged on purpose (the rule left it to the user)
    FAILED = "failed", "Failed"  # the CRM refused or failed; see last_error
    # A CRM write may have gone through, and this CRM cannot be asked whether it holds the
    # activity: never resent blind; an admin checks the CRM and resends or leaves it.
    UNCONFIRMED = "unconfirmed", "Unconfirmed"


class Direction(models.TextChoices):
    INBOUND = "Inbound", "Inbound"
    OUTBOUND = "Outbound", "Outbound"


class EventKind(models.TextChoices):
    """The kinds of entries in a log's append-only event trail."""

    REQUESTED = "requested", "Log requested"
    DUPLICATE = "duplicate", "Duplicate refused"
    LOOKED_UP = "looked_up", "Contact looked up"
    MATCHED = "matched", "Contact matched"
    PROMPTED = "prompted", "Left to the user"
    PLACEHOLDER_CREATED = "placeholder_created", "Placeholder created"
    PLACEHOLDER_REUSED = "placeholder_reused", "Placeholder reused"
    CRM_LOGGED = "crm_logged", "Logged in the CRM"
    CRM_UPDATED = "crm_updated", "Updated in the CRM"
    CRM_FAILED = "crm_failed", "CRM failed"
    RETRIED = "retried", "Retry requested"
    # Whether the CRM holds a write that an interrupted attempt began (`found`).
    CRM_CHECKED = "crm_checked", "Checked the CRM"
    UNCONFIRMED = "unconfirmed", "Left for an admin"
    # An admin moved the log's CRM activity from a superseded placeholder to the real contact.
    RELINKED = "relinked", "Moved to another contact"
