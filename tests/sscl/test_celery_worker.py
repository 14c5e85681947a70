"""The production path with real components: the webhook queues on the machine's Redis
and a real Celery worker (in a thread of this process) logs the calls."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from config.celery import app
from connector.models import BuiltinActivity
from sscl.choices import SessionState
from sscl.models import CallSession, WebhookEvent
from tests.factories import BuiltinContactFactory
from tests.sscl.conftest import CALLER, Pbx

# Production's components: PostgreSQL (an in-memory SQLite shared between the live server's
# thread and the worker's locks whole tables), Redis, a Celery worker.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]

# A database of the machine's Redis of its own, emptied before and after.
BROKER_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def celery_worker(settings) -> Iterator[None]:
    from celery.contrib.testing.worker import start_worker

    redis.Redis.from_url(BROKER_URL).flushdb()
    saved = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.update(broker_url=BROKER_URL, task_always_eager=False)
    _forget_connections()  # an earlier test's producer pool would still point at the default broker
    settings.SSCL_DISPATCH = "celery"
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.update(saved)
        _forget_connections()
        redis.Redis.from_url(BROKER_URL).flushdb()


def _forget_connections() -> None:
    """Drop the app's cached connection and producer pools, as Celery does after a fork
    (`Celery._after_fork`, without its signal), so the next message goes to the broker
    configured now. Without it, the pool an earlier test made (an eager `.delay()` acquires
    a producer even though it runs the task in place; with broker_url empty, Celery's
    default amqp://localhost) took the webhook's messages to the machine's RabbitMQ, and
    the worker on Redis never saw them (tests/logs/test_pipeline.py's recovery test, then
    this one, showed it)."""
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


def wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_real_worker_logs_what_the_webhook_queued_once(pbx: Pbx, celery_worker: None) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    events = pbx.events()
    pbx.record(events)

    for event in events + events[-1:]:  # with one redelivery
        pbx.deliver(event)

    logged = wait_for(lambda: CallSession.objects.filter(state=SessionState.LOGGED).exists())
    assert logged, (  # what the worker got done, to tell a lost message from a failed task
        f"events folded: {WebhookEvent.objects.exclude(processed_at=None).count()}"
        f"/{WebhookEvent.objects.count()}, "
        f"calls: {list(CallSession.objects.values_list('state', 'attempts', 'reason'))}, "
        f"queued in Redis: {redis.Redis.from_url(BROKER_URL).llen('celery')}"
    )
    time.sleep(0.5)  # anything queued twice would have run by now
    assert BuiltinActivity.objects.count() == 1
