"""Background work of the log history: finishing what dead requests left behind."""

from __future__ import annotations

from celery import shared_task

from logs.services import RetrySummary, logs_recover


def _figures(summary: RetrySummary) -> dict[str, object]:
    return {
        "logged": summary.logged,
        "not_logged": summary.not_logged,
        "left_alone": summary.left_alone,
        "errors": summary.errors,
    }


@shared_task(name="logs.recover", ignore_result=True)
def logs_recover_task() -> dict[str, object]:
    """Run `logs.services.logs_recover` (periodically, from Celery beat): pending logs whose
    request died, and failed ones the CRM may hold, are finished through the pipeline."""
    return _figures(logs_recover())
