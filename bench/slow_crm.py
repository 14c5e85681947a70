"""The in-memory CRM of bench/memory_crm.py, with a CRM's round trip: every call waits first.

A real CRM answers in 100-500 ms, and that wait, not our CPU, decides how many flows a
server completes (../shared/perf.md). The peer in ../shared/peer measures it with
`PEER_CRM_DELAY_MS=N`: each CRM call awaits N ms, then does its in-memory work.
`bench/run.py --crm-delay-ms N` serves ours with this connector, registered through
CRM_PLATFORMS_EXTRA, so both servers wait the same before every CRM call.

The delay comes from BENCH_CRM_DELAY_MS (milliseconds, read when the client is created,
once per worker process; 0 waits nothing). Each CRM call is overridden here, on this
class itself, because `CrmClient.__init_subclass__` wraps only the methods a class
defines in its own body: the wrapper gives a pooled database connection back (and
refuses an open transaction) before the call, so the connection is free while we wait,
as it is while a real CRM answers.

Like the peer's `peercrm`, the wait is the same for every call; unlike it, `unauthorize`
waits too (the peer's `unAuthorize` writes its own database only). Neither is in the
unknown-caller flow.
"""

from __future__ import annotations

import os
from time import sleep

from memory_crm import MemoryCrmClient

from connector.crm.base import (
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    FindContactResult,
    JsonDict,
    LogContact,
    LogResult,
    MessageLogInput,
    UpdateLogResult,
    UserInfoResult,
)
from connector.models import CrmUser

DELAY_ENV = "BENCH_CRM_DELAY_MS"


def delay_from_env() -> float:
    """BENCH_CRM_DELAY_MS in seconds (0 when unset)."""
    raw = os.environ.get(DELAY_ENV, "").strip() or "0"
    try:
        delay_ms = float(raw)
    except ValueError:
        raise ValueError(f"{DELAY_ENV} must be a number of milliseconds, not {raw!r}") from None
    if delay_ms < 0:
        raise ValueError(f"{DELAY_ENV} must not be negative, not {raw!r}")
    return delay_ms / 1000


class SlowMemoryCrmClient(MemoryCrmClient):
    """The in-memory CRM, each call waiting BENCH_CRM_DELAY_MS first (a CRM's round trip)."""

    def __init__(self, platform: str, *, delay_s: float | None = None) -> None:
        super().__init__(platform)
        self.delay_s = delay_from_env() if delay_s is None else delay_s

    def _round_trip(self) -> None:
        """Wait as a CRM's HTTP round trip would (the GIL is free meanwhile, as during I/O)."""
        if self.delay_s > 0:
            sleep(self.delay_s)

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        self._round_trip()
        return super().get_user_info(api_key=api_key, hostname=hostname, additional_info=additional_info)

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        self._round_trip()
        return super().unauthorize(user=user)

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        self._round_trip()
        return super().find_contact(
            user=user,
            phone_number=phone_number,
            overriding_format=overriding_format,
            is_extension=is_extension,
        )

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        self._round_trip()
        return super().create_contact(
            user=user,
            phone_number=phone_number,
            name=name,
            contact_type=contact_type,
            additional_submission=additional_submission,
        )

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        self._round_trip()
        return super().create_call_log(user=user, contact=contact, data=data)

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        self._round_trip()
        return super().update_call_log(user=user, data=data)

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        self._round_trip()
        return super().create_message_log(user=user, contact=contact, data=data)
