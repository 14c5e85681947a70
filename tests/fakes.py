"""Test-only CRM connectors."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from typing import Any, ClassVar

from connector.crm.base import HttpCrmClient
from connector.crm.builtin import BuiltinCrmClient

FAULTY_PLATFORM = "faulty"


class FaultyCrmClient(BuiltinCrmClient):
    """The built-in CRM with failures injected on demand, per operation.

    `FaultyCrmClient.plan("create_call_log", CrmRateLimited("slow down"))` makes the next
    `create_call_log` raise that error; a value that is not an exception is returned
    instead of calling the CRM (e.g. a `LogResult` without a log id). Each planned
    outcome is used once, in order; with none planned the built-in CRM answers.
    `calls` counts the calls of each operation that reached this client.
    """

    planned: ClassVar[dict[str, list[Any]]] = defaultdict(list)
    calls: ClassVar[dict[str, int]] = defaultdict(int)

    @classmethod
    def plan(cls, operation: str, *outcomes: Any) -> None:
        cls.planned[operation].extend(outcomes)

    @classmethod
    def reset(cls) -> None:
        cls.planned.clear()
        cls.calls.clear()

    def _run(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        type(self).calls[operation] += 1
        queue = type(self).planned.get(operation)
        if queue:
            outcome = queue.pop(0)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return getattr(super(), operation)(*args, **kwargs)

    def find_contact(self, **kwargs: Any) -> Any:
        return self._run("find_contact", **kwargs)

    def find_contact_with_name(self, **kwargs: Any) -> Any:
        return self._run("find_contact_with_name", **kwargs)

    def create_contact(self, **kwargs: Any) -> Any:
        return self._run("create_contact", **kwargs)

    def create_call_log(self, **kwargs: Any) -> Any:
        return self._run("create_call_log", **kwargs)

    def update_call_log(self, **kwargs: Any) -> Any:
        return self._run("update_call_log", **kwargs)

    def get_call_log(self, **kwargs: Any) -> Any:
        return self._run("get_call_log", **kwargs)

    def create_message_log(self, **kwargs: Any) -> Any:
        return self._run("create_message_log", **kwargs)

    def update_message_log(self, **kwargs: Any) -> Any:
        return self._run("update_message_log", **kwargs)

    def auth_validation(self, **kwargs: Any) -> Any:
        return self._run("auth_validation", **kwargs)


class SlowCrmClient(BuiltinCrmClient):
    """The built-in CRM answering each call after CRM_DELAY_MS (default 50) milliseconds,
    as a CRM across the internet does.

    It declares `uses_database = False`, as a remote CRM would: the contract gives a pooled
    database connection back before each call, and the built-in CRM's own statements take
    one again after the wait.
    """

    uses_database = False

    @staticmethod
    def _wait() -> None:
        time.sleep(float(os.environ.get("CRM_DELAY_MS", "50")) / 1000)

    def get_user_info(self, **kwargs: Any) -> Any:
        self._wait()
        return super().get_user_info(**kwargs)

    def find_contact(self, **kwargs: Any) -> Any:
        self._wait()
        return super().find_contact(**kwargs)

    def create_contact(self, **kwargs: Any) -> Any:
        self._wait()
        return super().create_contact(**kwargs)

    def create_call_log(self, **kwargs: Any) -> Any:
        self._wait()
        return super().create_call_log(**kwargs)


class BareHttpCrmClient(HttpCrmClient):
    """An HTTP CRM client with nothing but the shared request machinery (tests of the
    outbound layer call `request` directly; the contract's CRM calls are not used)."""

    def manifest(self) -> Any:
        return {}

    get_user_info = unauthorize = find_contact = create_contact = None  # type: ignore[assignment]
    create_call_log = update_call_log = create_message_log = None  # type: ignore[assignment]
