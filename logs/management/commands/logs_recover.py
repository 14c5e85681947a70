"""`manage.py logs_recover`: finish the call and message logs that dead requests left behind."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from logs.services import RETRY_BATCH_LIMIT, logs_recover


class Command(BaseCommand):
    help = (
        "Finish what dead requests left: pending logs whose lease lapsed, and failed logs the "
        "CRM may hold (asked first, never sent twice). What Celery beat runs every minute in "
        "production; run it from cron where there is no broker."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--limit", type=int, default=RETRY_BATCH_LIMIT, help="at most this many logs of each kind"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        summary = logs_recover(limit=max(1, options["limit"]))
        self.stdout.write(
            f"{summary.logged} logged, {summary.not_logged} not logged, {summary.left_alone} left alone"
        )
        for reason, count in sorted(summary.errors.items()):
            self.stdout.write(f"  not logged: {reason} ({count})")
