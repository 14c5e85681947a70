"""Choice sets of the auto-logging rules."""

from django.db import models


class DecidedBy(models.TextChoices):
    """Who chose the contact a log hangs on."""

    USER = "user", "User"  # the request named the contact (manual flow)
    RULE = "rule", "Auto-logging rule"  # the server's rules chose or created it


class DecisionOutcome(models.TextChoices):
    """What the contact decision for a log came to."""

    GIVEN = "given", "Contact given by the user"
    MATCHED = "matched", "One contact matched"
    MULTIPLE_RESOLVED = "multiple_resolved", "Several matched; the policy chose one"
    PROMPTED = "prompted", "Left to the user"
    PLACEHOLDER_CREATED = "placeholder_created", "Placeholder created"
    PLACEHOLDER_REUSED = "placeholder_reused", "Placeholder reused"
    FAILED = "failed", "The CRM failed"


class PlaceholderStatus(models.TextChoices):
    """Where the creation of a placeholder contact stands."""

    CREATING = "creating", "Being created"  # one request holds it and is calling the CRM
    READY = "ready", "Created"  # the CRM holds the contact (contact_id)
    FAILED = "failed", "Creation failed"  # see last_error; the next call tries again
