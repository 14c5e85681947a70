"""`manage.py sscl_enable --account ID --crm-user ID`: turn server-side call logging on."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connector.selectors import crm_user_get
from rules.services import account_ensure
from sscl.choices import OwnerMode
from sscl.services import ServerLoggingError, server_logging_enable


class Command(BaseCommand):
    help = (
        "Turn server-side call logging on (or off, with --disable) for a RingCentral account "
        "connected with ringcentral_connect. --crm-user names the connected CRM user whose "
        "credentials write the logs. The webhook subscription is created at PUBLIC_BASE_URL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="the RingCentral account id")
        parser.add_argument("--crm-user", required=True, help="the connected CRM user's id (see the admin)")
        parser.add_argument(
            "--owner",
            choices=OwnerMode.values,
            default=OwnerMode.ADMIN,
            help="log as the admin (the CRM user above), or as the agent where the user mapping names one",
        )
        parser.add_argument(
            "--blocked", default="", help="comma-separated E.164 and extension numbers never logged"
        )
        parser.add_argument(
            "--disable", action="store_true", help="turn it off (the subscription is deleted)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = crm_user_get(user_id=options["crm_user"])
        if user is None:
            raise CommandError(f"No connected CRM user {options['crm_user']!r}.")
        account = account_ensure(rc_account_id=options["account"])
        try:
            result = server_logging_enable(
                account=account,
                crm_user=user,
                owner_mode=options["owner"],
                blocked_numbers=options["blocked"],
                enabled=not options["disable"],
            )
        except ServerLoggingError as exc:
            raise CommandError(str(exc)) from exc
        setting = result.setting
        if not setting.enabled:
            self.stdout.write(f"Server-side logging is off for account {account.rc_account_id}.")
            return
        self.stdout.write(
            f"Server-side logging is on for account {account.rc_account_id}: logs written by "
            f"{user.pk}, owner mode {setting.owner_mode}, {len(setting.blocked_numbers)} blocked number(s), "
            f"{result.mapped} extension(s) mapped to CRM users."
        )
        if result.subscription_error:
            self.stderr.write(
                f"Warning: {result.subscription_error}\nThe hourly upkeep (celery beat) tries again; "
                "meanwhile `manage.py sscl_replay FILE` feeds recorded deliveries."
            )
