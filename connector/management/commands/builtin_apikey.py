"""`manage.py builtin_apikey NAME`: create (or reuse) a built-in CRM user and issue an API key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connector.services import builtin_api_key_create


class Command(BaseCommand):
    help = (
        "Create (or reuse) the built-in CRM user NAME and print a fresh API key for it, alone "
        "on the last line. Log in to App Connect with platform 'builtin' and that key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the built-in CRM user's name")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        if not name or len(name) > 150:
            raise CommandError("NAME must be 1 to 150 characters.")
        user, key = builtin_api_key_create(name=name)
        self.stdout.write(f"Built-in CRM user {user.name!r} (id {user.pk}); new API key:")
        self.stdout.write(key)
