"""Server-side call logging against a fake RingCentral on loopback and the built-in CRM.

`pbx` connects the fake account (JWT grant), connects the built-in CRM user `alice` from
the admin extension, turns server-side logging on (which subscribes the webhook served by
`live_server`; the fake performs RingCentral's Validation-Token handshake), and offers
`call(...)` to play a call: the telephony-session events delivered to our webhook over
HTTP, and its record in RingCentral's call log.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from connector.models import CrmUser
from connector.services import ringcentral_connect
from connector.utils import hash_value
from rules.services import account_ensure
from sscl.models import ServerLogging, WebhookSubscription
from sscl.services import server_logging_enable
from tests.crm_fakes.ringcentral import (
    ACCOUNT_ID,
    ADMIN_EXTENSION_ID,
    ADMIN_JWT,
    USER_EXTENSION_ID,
    RingCentralFake,
    call_record,
    party,
    telephony_session_event,
)

OUR_NUMBER = "+16505550100"
CALLER = "+14155550123"

_ids = itertools.count(1)


@dataclass
class Pbx:
    """The fake account's phone system: plays calls to our webhook."""

    fake: RingCentralFake
    subscription_id: str
    responses: list[Any] = field(default_factory=list)

    def deliver(self, event: dict[str, Any]) -> Any:
        response = self.fake.deliver(self.subscription_id, event)
        self.responses.append(response)
        assert response.status_code == 200, response.content
        return response

    def events(
        self,
        *,
        statuses: tuple[str, ...] = ("Setup", "Proceeding", "Answered", "Disconnected"),
        direction: str = "Inbound",
        number: str = CALLER,
        extension_id: str = ADMIN_EXTENSION_ID,
        caller_name: str = "",
        tsid: str | None = None,
        first_sequence: int = 1,
    ) -> list[dict[str, Any]]:
        """The notifications of one call of `extension_id` with `number`, one per status."""
        tsid = tsid or f"s-{next(_ids)}"
        inbound = direction == "Inbound"
        return [
            telephony_session_event(
                subscription_id=self.subscription_id,
                telephony_session_id=tsid,
                session_id=f"{tsid}-rc",
                sequence=first_sequence + n,
                parties=[
                    party(
                        extension_id=extension_id,
                        direction=direction,
                        status=status,
                        from_number=number if inbound else OUR_NUMBER,
                        to_number=OUR_NUMBER if inbound else number,
                        from_name=caller_name if inbound else "",
                        missed_call=status == "Disconnected" and "Answered" not in statuses,
                    )
                ],
            )
            for n, status in enumerate(statuses)
        ]

    def record(
        self,
        events: list[dict[str, Any]],
        *,
        result: str = "Accepted",
        duration: int = 42,
        appear_after_reads: int = 0,
        caller_name: str = "",
        extension_id: str | None = None,
    ) -> dict[str, Any]:
        """Put the call of `events` in RingCentral's call log."""
        body = events[-1]["body"]
        ours = body["parties"][0]
        record = call_record(
            record_id=f"r-{next(_ids)}",
            telephony_session_id=body["telephonySessionId"],
            session_id=body["sessionId"],
            direction=ours["direction"],
            from_number=ours["from"]["phoneNumber"],
            to_number=ours["to"]["phoneNumber"],
            extension_id=extension_id or ours["extensionId"],
            start_time=datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
            duration=duration,
            result=result,
        )
        if caller_name:
            record["from"]["name"] = caller_name
        self.fake.add_call_record(record, appear_after_reads=appear_after_reads)
        return record

    def call(self, **kwargs: Any) -> list[dict[str, Any]]:
        """A whole call: its record in the call log, then its events delivered in order."""
        record_kwargs = {
            k: kwargs.pop(k) for k in ("result", "duration", "appear_after_reads") if k in kwargs
        }
        events = self.events(**kwargs)
        self.record(events, caller_name=kwargs.get("caller_name", ""), **record_kwargs)
        for event in events:
            self.deliver(event)
        return events


@pytest.fixture
def logging_user(crm_user: CrmUser) -> CrmUser:
    """`alice`, connected from the account's admin extension."""
    crm_user.rc_account_id = ACCOUNT_ID
    crm_user.hashed_rc_extension_id = hash_value(ADMIN_EXTENSION_ID)
    crm_user.save()
    return crm_user


@pytest.fixture
def pbx(rc: RingCentralFake, logging_user: CrmUser, live_server, settings) -> Pbx:
    settings.PUBLIC_BASE_URL = live_server.url
    settings.SSCL_DISPATCH = "inline"
    settings.SSCL_FIRST_FETCH_DELAY_SECONDS = 0
    ringcentral_connect(jwt=ADMIN_JWT)
    result = server_logging_enable(account=account_ensure(rc_account_id=ACCOUNT_ID), crm_user=logging_user)
    assert result.subscription_error == ""
    subscription = WebhookSubscription.objects.get()
    return Pbx(fake=rc, subscription_id=subscription.rc_subscription_id)


def logging_settings() -> ServerLogging:
    return ServerLogging.objects.get(account__rc_account_id=ACCOUNT_ID)


__all__ = ["ACCOUNT_ID", "ADMIN_EXTENSION_ID", "CALLER", "USER_EXTENSION_ID", "Pbx", "logging_settings"]
