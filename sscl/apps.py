from django.apps import AppConfig


class ServerSideLoggingConfig(AppConfig):
    name = "sscl"
    verbose_name = "Server-side call logging"
    default_auto_field = "django.db.models.BigAutoField"
