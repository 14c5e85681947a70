"""`manage.py demo_setup`: the demo admin and built-in CRM user of the embedded default."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from connector.services import demo_environment_setup


class Command(BaseCommand):
    help = "Create the demo admin and a demo built-in CRM user, and print how to log in."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin", default="admin", help="demo admin username")
        parser.add_argument("--builtin-user", default="demo", help="demo built-in CRM user")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="where the app is served")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("DEMO_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        key = demo_environment_setup(
            admin_username=options["admin"], admin_password=password, builtin_user=options["builtin_user"]
        )
        url, admin = options["url"], options["admin"]
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"App Connect connector server: {url}",
                    f"  Admin (rules, log history): {url}/admin/  user {admin!r}  password {password}",
                    f"  API reference:              {url}/api/docs/",
                    f"  Point App Connect's client at {url}; log in to the built-in CRM (platform 'builtin')",
                    f"  as {options['builtin_user']!r} with this API key:",
                    key,
                    "",
                ]
            )
        )
