"""App configuration for the connector app."""

from django.apps import AppConfig


class ConnectorConfig(AppConfig):
    name = "connector"
    verbose_name = "Connector"
