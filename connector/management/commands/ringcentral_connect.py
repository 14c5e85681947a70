"""`manage.py ringcentral_connect`: connect a RingCentral account with an admin's JWT credential."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connector.ringcentral import RingCentralError
from connector.services import ringcentral_connect

JWT_ENV = "RINGCENTRAL_JWT"


class Command(BaseCommand):
    help = (
        "Connect the RingCentral account a RingCentral admin's JWT credential belongs to (or "
        "connect it again with a new JWT), for server-side call logging. The JWT comes from "
        f"--jwt, else the {JWT_ENV} environment variable, else standard input (a prompt that "
        "does not echo on a terminal), so it need not be in the shell's history. Prints what "
        "it did, and the RingCentral account id alone on its last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--jwt", default="", help=f"the JWT credential (better: {JWT_ENV}, or stdin)")

    def handle(self, *args: Any, **options: Any) -> None:
        jwt = self._jwt(options["jwt"])
        try:
            connection = ringcentral_connect(jwt=jwt)
        except RingCentralError as exc:
            raise CommandError(str(exc)) from exc
        expiry = connection.token_expiry.isoformat() if connection.token_expiry else "unknown"
        self.stdout.write(
            f"Connected RingCentral account {connection.rc_account_id} with the JWT of admin extension "
            f"{connection.rc_extension_id} ({connection.name or 'no name'}); "
            f"access token valid until {expiry}."
        )
        self.stdout.write(connection.rc_account_id)

    def _jwt(self, given: str) -> str:
        if given.strip():
            return given.strip()
        from_env = os.environ.get(JWT_ENV, "").strip()
        if from_env:
            return from_env
        if sys.stdin.isatty():
            return getpass.getpass("RingCentral JWT credential: ").strip()
        text = sys.stdin.read().strip()
        if not text:
            raise CommandError(f"No JWT: give --jwt, set {JWT_ENV}, or pipe it on standard input.")
        return text
