"""App configuration for the auto-logging rules."""

from django.apps import AppConfig


class RulesConfig(AppConfig):
    name = "rules"
    verbose_name = "Auto-logging rules"
