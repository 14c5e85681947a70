"""The embedded default (no broker): the webhook answers at once and the serving process's
own threads log the call; RingCentral is never waited for while it waits for our answer."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest

from connector.models import BuiltinActivity
from sscl.choices import SessionState
from sscl.dispatch import embedded_stop
from sscl.models import CallSession
from tests.crm_fakes.server import Reply, Seen
from tests.factories import BuiltinContactFactory
from tests.sscl.conftest import CALLER, Pbx

# Threads of the live server and of the pool write at once: an in-memory SQLite shared
# between threads locks whole tables, so this runs on PostgreSQL (the file SQLite of the
# embedded default queues writers instead: tests/test_serving.py).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.requires_postgres]


@pytest.fixture
def embedded(settings) -> Iterator[None]:
    settings.SSCL_DISPATCH = "thread"
    yield
    embedded_stop()  # no pool thread outlives the test


def test_the_webhook_answers_while_ringcentrals_call_log_is_still_being_read(
    pbx: Pbx, embedded: None
) -> None:
    BuiltinContactFactory(phone_numbers=[CALLER])
    events = pbx.events()
    pbx.record(events)
    reading, release = threading.Event(), threading.Event()
    original = next(h for m, p, h in pbx.fake.api.routes if m == "GET" and p.pattern.endswith("call-log"))

    def held_call_log(request: Seen, match: re.Match[str]) -> Reply:
        reading.set()
        release.wait(10)
        return original(request, match)

    pbx.fake.api.routes.insert(0, ("GET", re.compile(r"/restapi/v1\.0/account/~/call-log"), held_call_log))
    try:
        for event in events:
            pbx.deliver(event)  # each answered 200 (Pbx.deliver asserts it), within its timeout
        assert reading.wait(10), "the pool never read the call log"
        assert CallSession.objects.get().state == SessionState.LOGGING
    finally:
        release.set()

    deadline = time.monotonic() + 15
    while CallSession.objects.get().state != SessionState.LOGGED and time.monotonic() < deadline:
        time.sleep(0.1)
    assert CallSession.objects.get().state == SessionState.LOGGED
    assert BuiltinActivity.objects.count() == 1
