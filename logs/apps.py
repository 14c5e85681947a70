"""App configuration for the log history."""

from django.apps import AppConfig


class LogsConfig(AppConfig):
    name = "logs"
    verbose_name = "Log history"
