"""Choice sets of the connector app."""

from django.db import models


class AuthType(models.TextChoices):
    """How a CRM authenticates its users (the manifest's `auth.type`)."""

    API_KEY = "apiKey", "API key"
    OAUTH = "oauth", "OAuth"


class BuiltinContactType(models.TextChoices):
    """Contact types of the built-in CRM; its manifest offers exactly these."""

    CONTACT = "Contact", "Contact"
    LEAD = "Lead", "Lead"


class ActivityKind(models.TextChoices):
    """What a built-in CRM activity records."""

    CALL = "call", "Call"
    MESSAGE = "message", "Message conversation"
