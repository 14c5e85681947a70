"""Server-side call logging's tasks: thin wrappers over `sscl.services`."""

from __future__ import annotations

from celery import shared_task

from sscl import services


@shared_task(name="sscl.fold_event", ignore_result=True)
def fold_event(event_id: int) -> None:
    """Fold one stored webhook delivery into the calls it concerns."""
    services.event_fold(event_id=event_id)


@shared_task(name="sscl.log_call", ignore_result=True)
def log_call(session_pk: int) -> str:
    """Log one ended call (its record fetched from RingCentral) through the pipeline."""
    return services.call_session_log(session_pk=session_pk)


@shared_task(name="sscl.sweep", ignore_result=True)
def sweep() -> dict[str, int]:
    """Send again what is due: unfolded deliveries, calls whose next attempt is due."""
    summary = services.sscl_sweep()
    return {"events": summary.events, "calls": summary.calls}


@shared_task(name="sscl.maintain_subscriptions", ignore_result=True)
def maintain_subscriptions() -> dict[str, int]:
    """Renew, or re-create, every enabled account's webhook subscription."""
    return services.subscriptions_maintain()
