"""Concurrency guarantees, with real concurrent requests on PostgreSQL.

Each test fires requests from many threads at once (a barrier releases them together);
each thread has its own database connection, as gunicorn workers would. The figures are
also written to test-output/concurrency.json for the record.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from connector.crm.base import CallLogInput, CrmUnavailable, FindContactResult, LogContact, LogResult
from connector.crm.builtin import BuiltinCrmClient
from connector.models import BuiltinActivity, BuiltinContact, BuiltinContactPhone, CrmUser
from logs.choices import LogStatus
from logs.models import CallLog
from rules.choices import PlaceholderLife, PlaceholderStatus
from rules.models import PlaceholderContact, RuleSetting
from rules.services import rules_cache_clear
from tests.concurrency import concurrently
from tests.conftest import ApiClient, call_body
from tests.factories import BuiltinContactFactory

pytestmark = [pytest.mark.requires_postgres, pytest.mark.django_db(transaction=True)]

THREADS = 24
UNKNOWN = "+14155550142"
FIGURES = Path(__file__).resolve().parents[2] / "test-output" / "concurrency.json"


class LaggingSearchCrm(BuiltinCrmClient):
    """The built-in CRM, but its search never sees new contacts (a lagging index)."""

    def find_contact(self, **kwargs: Any) -> FindContactResult:
        return FindContactResult(successful=True, contacts=[])


class FailFirstCallLogCrm(BuiltinCrmClient):
    """The built-in CRM, but the first call log of each process fails (CRM outage)."""

    failed = threading.Event()

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        if not self.failed.is_set():
            self.failed.set()
            raise CrmUnavailable("CRM is down")
        return super().create_call_log(user=user, contact=contact, data=data)


def record(test: str, **figures: Any) -> None:
    FIGURES.parent.mkdir(exist_ok=True)
    data = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    data[test] = figures
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True))


def mandate_placeholders() -> None:
    RuleSetting.objects.create(key="unknownContactAction", value="createPlaceholder", customizable=False)
    rules_cache_clear()


def post_call(token: str | None, body: dict[str, Any]) -> dict[str, Any]:
    return ApiClient(token).post("/callLog", body).json()


def auto_body(session_id: str, phone: str = UNKNOWN) -> dict[str, Any]:
    return call_body(session_id=session_id, phone=phone)


def test_simultaneous_calls_from_one_unknown_number_make_one_placeholder(jwt_token: str) -> None:
    mandate_placeholders()

    responses = concurrently(THREADS, lambda i: post_call(jwt_token, auto_body(f"s-{i}")))

    assert all(r["successful"] for r in responses), responses
    assert PlaceholderContact.objects.count() == 1
    assert BuiltinContact.objects.count() == 1
    contact_ids = set(CallLog.objects.values_list("contact_id", flat=True))
    assert contact_ids == {str(BuiltinContact.objects.get().pk)}
    assert CallLog.objects.filter(status=LogStatus.LOGGED).count() == THREADS
    record(
        "one_number_many_calls",
        requests=THREADS,
        placeholders=PlaceholderContact.objects.count(),
        crm_contacts=BuiltinContact.objects.count(),
        logs=CallLog.objects.filter(status=LogStatus.LOGGED).count(),
    )


def test_lagging_crm_search_still_gets_one_placeholder(login, settings) -> None:
    settings.CONNECTOR = {
        "PLATFORMS": {
            "builtin": "connector.crm.builtin.BuiltinCrmClient",
            "laggy": "tests.rules.test_concurrency.LaggingSearchCrm",
        }
    }
    mandate_placeholders()
    _, client = login("lagging", platform="laggy")

    first = client.post("/callLog", auto_body("before-0")).json()
    responses = concurrently(THREADS, lambda i: post_call(client.token, auto_body(f"s-{i}")))
    later = client.post("/callLog", auto_body("after-0")).json()

    assert first["successful"] and later["successful"] and all(r["successful"] for r in responses)
    assert PlaceholderContact.objects.count() == 1
    assert BuiltinContact.objects.count() == 1
    record(
        "lagging_search",
        requests=THREADS + 2,
        placeholders=PlaceholderContact.objects.count(),
        crm_contacts=BuiltinContact.objects.count(),
        logs=CallLog.objects.filter(status=LogStatus.LOGGED).count(),
    )


def test_superseded_then_gone_simultaneous_calls_make_one_new_placeholder(jwt_token: str) -> None:
    mandate_placeholders()
    api = ApiClient(jwt_token)
    assert api.post("/callLog", auto_body("before-0")).json()["successful"]
    first = PlaceholderContact.objects.get()
    BuiltinContactPhone.objects.filter(contact_id=first.contact_id).delete()  # merged away
    real = BuiltinContactFactory(name="Jane Real", phone_numbers=[UNKNOWN])
    assert api.post("/callLog", auto_body("before-1")).json()["successful"]  # supersedes it
    BuiltinContactPhone.objects.filter(contact_id=real.pk).delete()  # the real one is gone too

    responses = concurrently(THREADS, lambda i: post_call(jwt_token, auto_body(f"s-{i}")))

    assert all(r["successful"] for r in responses), responses
    live = PlaceholderContact.objects.exclude(life=PlaceholderLife.SUPERSEDED)
    assert live.count() == 1 and live.get().replaces_id == first.pk
    assert PlaceholderContact.objects.count() == 2
    assert BuiltinContact.objects.count() == 3  # the first placeholder, the real one, the new one
    logged_to = set(CallLog.objects.filter(session_id__startswith="s-").values_list("contact_id", flat=True))
    assert logged_to == {live.get().contact_id}
    record(
        "superseded_then_gone",
        requests=THREADS,
        live_placeholders=live.count(),
        crm_contacts_created=BuiltinContact.objects.count() - 2,
        logs=CallLog.objects.filter(status=LogStatus.LOGGED, session_id__startswith="s-").count(),
    )


def test_many_unknown_numbers_at_once_one_placeholder_each(jwt_token: str) -> None:
    mandate_placeholders()
    numbers = [f"+1415555{n:04d}" for n in range(6)]

    def call(i: int) -> dict[str, Any]:
        return ApiClient(jwt_token).post("/callLog", auto_body(f"s-{i}", numbers[i % len(numbers)])).json()

    responses = concurrently(THREADS, call)

    assert all(r["successful"] for r in responses), responses
    assert sorted(PlaceholderContact.objects.values_list("phone_number", flat=True)) == sorted(numbers)
    assert BuiltinContact.objects.count() == len(numbers)
    record(
        "six_numbers_many_calls",
        requests=THREADS,
        numbers=len(numbers),
        placeholders=PlaceholderContact.objects.count(),
        logs=CallLog.objects.filter(status=LogStatus.LOGGED).count(),
    )


def test_duplicate_requests_for_one_session_log_once(jwt_token: str) -> None:
    created = ApiClient(jwt_token).post("/contact", {"phoneNumber": UNKNOWN, "newContactName": "Jane"})
    contact_id = created.json()["contact"]["id"]
    body = call_body(session_id="same-session", phone=UNKNOWN, contact_id=contact_id)

    responses = concurrently(THREADS, lambda i: ApiClient(jwt_token).post("/callLog", body).json())

    successes = [r for r in responses if r["successful"]]
    refusal = "Existing log for session same-session"
    duplicates = [r for r in responses if r["returnMessage"]["message"] == refusal]
    assert len(successes) == 1
    assert len(duplicates) == THREADS - 1
    assert CallLog.objects.count() == 1
    assert BuiltinActivity.objects.count() == 1
    record(
        "one_session_many_requests",
        requests=THREADS,
        logs=CallLog.objects.count(),
        crm_activities=BuiltinActivity.objects.count(),
        refused=len(duplicates),
    )


def test_automatic_duplicates_create_one_placeholder_and_one_log(jwt_token: str) -> None:
    mandate_placeholders()
    body = auto_body("same-session")

    responses = concurrently(THREADS, lambda i: ApiClient(jwt_token).post("/callLog", body).json())

    assert sum(1 for r in responses if r["successful"]) == 1
    assert (PlaceholderContact.objects.count(), BuiltinContact.objects.count()) == (1, 1)
    assert (CallLog.objects.count(), BuiltinActivity.objects.count()) == (1, 1)


def test_crm_failure_after_placeholder_then_retry_uses_the_same_contact(login, settings) -> None:
    settings.CONNECTOR = {
        "PLATFORMS": {
            "builtin": "connector.crm.builtin.BuiltinCrmClient",
            "flaky": "tests.rules.test_concurrency.FailFirstCallLogCrm",
        }
    }
    FailFirstCallLogCrm.failed.clear()
    mandate_placeholders()
    _, client = login("flaky", platform="flaky")

    failed = client.post("/callLog", auto_body("s-1")).json()

    assert failed["successful"] is False
    assert failed["returnMessage"]["message"] == "Error creating call log"
    log = CallLog.objects.get()
    placeholder = PlaceholderContact.objects.get()
    assert placeholder.status == PlaceholderStatus.READY
    assert (log.status, log.contact_id, log.attempts) == (LogStatus.FAILED, placeholder.contact_id, 1)
    assert log.last_error == "CRM is down"

    retried = client.post("/callLog", auto_body("s-1")).json()

    assert retried["successful"] is True
    log.refresh_from_db()
    assert (log.status, log.contact_id, log.attempts) == (LogStatus.LOGGED, placeholder.contact_id, 2)
    assert (PlaceholderContact.objects.count(), BuiltinContact.objects.count()) == (1, 1)
