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


class PlaceholderLife(models.TextChoices):
    """What became of a placeholder contact after it was created (see `rules.services`)."""

    OPEN = "open", "Open"  # still carries the name the rules gave it
    NAMED = "named", "Named"  # a user named the caller, or the CRM shows another name
    SUPERSEDED = "superseded", "Superseded"  # a real contact for the number took its place


class PlaceholderRefusal(models.TextChoices):
    """The condition that kept a rule from creating a placeholder contact, as a decision
    records it (`placeholderRefused`). Checked in this order; the first that applies wins."""

    WITHHELD = "withheld", "The caller withheld the number"
    EMERGENCY = "emergency", "An emergency number"
    EXTENSION = "extension", "An internal extension"
    SHORT_CODE = "shortCode", "A short code"
    OWN_NUMBER = "ownNumber", "One of the account's own numbers"
    BLOCK_LIST = "blockList", "On the block list"
    MESSAGE_TYPE = "messageType", "A message type the rules leave out"
    DIRECTION = "direction", "A direction the rules leave out"
    CALL_RESULT = "callResult", "A call result the rules leave out"
    MIN_DURATION = "minDuration", "Shorter than the rules' minimum duration"


class BlockedNumberKind(models.TextChoices):
    """Whether a block-list entry is one number or every number starting with it."""

    NUMBER = "number", "Number"
    PREFIX = "prefix", "Prefix"


class PreviewOutcome(models.TextChoices):
    """What a rule preview says a recorded call would have come to under other rules."""

    PLACEHOLDER = "placeholder", "Placeholder"  # created, or the number's one reused
    SKIP = "skip", "Skipped"  # no placeholder for this traffic (a PlaceholderRefusal)
    PROMPT = "prompt", "Left to the user"  # the unknown-contact rule or the policy prompts
    MATCH = "match", "Contact found"  # one real contact, or the policy chooses one
    GIVEN = "given", "Chosen by the user"  # the request named the contact: no rule decided
    UNKNOWN = "unknown", "Cannot tell"  # the CRM lookup failed, so no answer was recorded
