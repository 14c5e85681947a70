"""A test-only CRM connector that kills its own server worker at the worst moments.

Served by a real gunicorn in the fault suite (registered through CRM_PLATFORMS_EXTRA as
`crashy=tests.faults.crm.KillingCrm`). It is the built-in CRM, except that, with the
probabilities set in the environment, it:

- FAULT_KILL_IN_LOOKUP: SIGKILLs its worker in `find_contact` (a call log's lookup: the
  log was claimed, nothing written yet);
- FAULT_KILL_BEFORE_WRITE: SIGKILLs it as `create_call_log` starts (the write is marked
  on our row, the CRM holds nothing);
- FAULT_KILL_AFTER_WRITE: SIGKILLs it right after the CRM wrote the activity (our row
  does not know yet);
- FAULT_DROP_DB_AFTER_WRITE: terminates its own PostgreSQL connection right after the
  CRM wrote the activity (recording the outcome then fails);
- FAULT_KILL_AFTER_CONTACT: SIGKILLs it right after the CRM created a contact;
- FAULT_KILL_AFTER_MESSAGE: SIGKILLs it right after the CRM wrote a message (a new
  conversation activity, or one more message in it).

A SIGKILL takes the whole worker: every request its threads were serving dies with it.
Faults happen only while the file FAULT_SWITCH exists, and each one is first appended to
the file FAULT_LOG (one line naming it), so the suite knows what it injected.
"""

from __future__ import annotations

import os
import random
import signal
from typing import Any

from django.db import DatabaseError, connection

from connector.crm.base import (
    CallLogInput,
    CreateContactResult,
    FindContactResult,
    LogContact,
    LogResult,
    MessageLogInput,
    UpdateLogResult,
)
from connector.crm.builtin import BuiltinCrmClient
from connector.models import CrmUser

_random = random.Random()


def _chance(name: str) -> bool:
    """Whether the fault `name` happens now (and if so, it is logged first)."""
    switch = os.environ.get("FAULT_SWITCH", "")
    if not switch or not os.path.exists(switch):
        return False
    if _random.random() >= float(os.environ.get(name, "0") or 0):
        return False
    log = os.open(os.environ["FAULT_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(log, f"{name}\n".encode())
    finally:
        os.close(log)
    return True


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingCrm(BuiltinCrmClient):
    """The built-in CRM, killing its worker or dropping its connection on demand."""

    def find_contact(self, **kwargs: Any) -> FindContactResult:
        if _chance("FAULT_KILL_IN_LOOKUP"):
            _die()
        return super().find_contact(**kwargs)

    def create_contact(self, **kwargs: Any) -> CreateContactResult:
        result = super().create_contact(**kwargs)
        if _chance("FAULT_KILL_AFTER_CONTACT"):
            _die()
        return result

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        if _chance("FAULT_KILL_BEFORE_WRITE"):
            _die()
        result = super().create_call_log(user=user, contact=contact, data=data)
        if _chance("FAULT_KILL_AFTER_WRITE"):
            _die()
        if _chance("FAULT_DROP_DB_AFTER_WRITE"):
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except DatabaseError:
                pass  # the connection is gone, as intended
        return result

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        result = super().create_message_log(user=user, contact=contact, data=data)
        if _chance("FAULT_KILL_AFTER_MESSAGE"):
            _die()
        return result

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        result = super().update_message_log(user=user, contact=contact, crm_log_id=crm_log_id, data=data)
        if _chance("FAULT_KILL_AFTER_MESSAGE"):
            _die()
        return result
