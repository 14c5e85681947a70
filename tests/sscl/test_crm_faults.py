"""Server-side logging into a real-HTTP CRM (the Pipedrive fake on loopback) that throttles:
its Retry-After is waited out by the task, never inside the webhook, and the call is
written once; after the last attempt the call is failed, visible and retryable."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

from connector.models import CrmUser
from connector.services import ringcentral_connect
from logs.choices import LogStatus
from logs.models import CallLog
from rules.services import account_ensure
from sscl.choices import SessionState
from sscl.models import CallSession, WebhookSubscription
from sscl.services import call_session_retry, server_logging_enable, sscl_sweep
from tests.conftest import ApiClient
from tests.crm_fakes.pipedrive import PipedriveFake
from tests.crm_fakes.ringcentral import ACCOUNT_ID, ADMIN_JWT, RingCentralFake
from tests.crm_fakes.ringcentral import served as rc_served
from tests.crm_fakes.server import Reply, served
from tests.sscl.conftest import CALLER, Pbx

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pipedrive(settings) -> Iterator[PipedriveFake]:
    fake = PipedriveFake()
    with served(fake, settings, OUTBOUND_TIMEOUT_SECONDS=3.0):
        yield fake


@pytest.fixture
def pbx_pipedrive(pipedrive: PipedriveFake, settings, live_server) -> Iterator[Pbx]:
    response = ApiClient().get("/oauth-callback", pipedrive.callback_query())
    assert response.status_code == 200, response.content
    user = CrmUser.objects.get(platform="pipedrive")
    user.rc_account_id = ACCOUNT_ID
    user.save()
    settings.PUBLIC_BASE_URL = live_server.url
    settings.SSCL_DISPATCH = "inline"
    settings.SSCL_FIRST_FETCH_DELAY_SECONDS = 0
    rc = RingCentralFake()
    with rc_served(rc, settings):
        ringcentral_connect(jwt=ADMIN_JWT)
        server_logging_enable(account=account_ensure(rc_account_id=ACCOUNT_ID), crm_user=user)
        yield Pbx(fake=rc, subscription_id=WebhookSubscription.objects.get().rc_subscription_id)


def throttle(pipedrive: PipedriveFake, *, retry_after: int, times: int = 1) -> None:
    method, pattern = pipedrive.routes["create_call_log"]
    reply = Reply(429, {"success": False, "error": "Too Many Requests"}, {"Retry-After": str(retry_after)})
    pipedrive.api.fail(method, pattern, reply, times=times)


def test_a_crm_429_is_waited_out_by_the_task_and_the_call_written_once(
    pbx_pipedrive: Pbx, pipedrive: PipedriveFake
) -> None:
    pipedrive.add_contact(name="Jane Roe", phone=CALLER)
    throttle(pipedrive, retry_after=30)

    pbx_pipedrive.call()

    session = CallSession.objects.get()
    assert session.state == SessionState.ENDED
    assert session.next_attempt_at >= timezone.now() + timedelta(seconds=25)
    assert CallLog.objects.get().status == LogStatus.FAILED
    assert pipedrive.call_logs() == []

    CallSession.objects.update(next_attempt_at=timezone.now())  # 30 s later
    sscl_sweep()

    assert CallSession.objects.get().state == SessionState.LOGGED
    assert CallLog.objects.get().status == LogStatus.LOGGED
    assert len(pipedrive.call_logs()) == 1


def test_after_the_last_attempt_the_call_is_failed_and_a_retry_writes_it_once(
    pbx_pipedrive: Pbx, pipedrive: PipedriveFake, settings
) -> None:
    settings.SSCL_MAX_ATTEMPTS = 2
    pipedrive.add_contact(name="Jane Roe", phone=CALLER)
    throttle(pipedrive, retry_after=30, times=2)

    pbx_pipedrive.call()
    CallSession.objects.update(next_attempt_at=timezone.now())
    sscl_sweep()

    session = CallSession.objects.get()
    assert session.state == SessionState.FAILED
    assert session.reason == "pipedrive rate limit"  # the CRM error, as the log records it
    assert CallLog.objects.get().status == LogStatus.FAILED

    call_session_retry(row=session)

    assert CallSession.objects.get().state == SessionState.LOGGED
    assert len(pipedrive.call_logs()) == 1
