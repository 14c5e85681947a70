"""`manage.py sscl_replay FILE --account ID`: feed recorded webhook deliveries to the server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sscl.selectors import account_get_by_rc_id
from sscl.services import WebhookInvalid, replay_drain, replay_store


class Command(BaseCommand):
    help = (
        "Feed recorded RingCentral webhook deliveries (a JSON list of notifications, or one per "
        "line) to server-side logging for an account, as if RingCentral had sent them, then log "
        "the calls they end (their records fetched from RingCentral's call log). No public URL "
        "is needed. Redeliveries (the same uuid) are dropped, as the webhook drops them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the recorded deliveries")
        parser.add_argument("--account", required=True, help="the RingCentral account id they belong to")
        parser.add_argument(
            "--wait",
            type=float,
            default=120.0,
            help="seconds to keep trying calls whose record is not there yet",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        account = account_get_by_rc_id(rc_account_id=options["account"])
        if account is None:
            raise CommandError(
                f"No account {options['account']!r}: run ringcentral_connect and sscl_enable first."
            )
        deliveries = _read(Path(options["file"]))
        try:
            stored, duplicates, calls = replay_store(account=account, deliveries=deliveries)
        except WebhookInvalid as exc:
            raise CommandError(f"{options['file']}: {exc}") from exc
        self.stdout.write(
            f"{len(deliveries)} deliveries: {stored} stored, {duplicates} already seen; "
            f"{len(calls)} call(s) ended."
        )
        deadline = time.monotonic() + options["wait"]
        states = replay_drain(calls=calls, deadline=deadline, progress=self.stdout.write)
        for state, count in sorted(states.items()):
            self.stdout.write(f"  {state}: {count}")


def _read(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise CommandError(f"{path} is neither JSON nor JSON lines: {exc}") from exc
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise CommandError(f"{path} holds no list of deliveries.")
    return data
