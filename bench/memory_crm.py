"""An in-memory CRM connector (platform `memory`), the counterpart of the peer's `peercrm`.

The peer in ../shared/peer is measured with a stand-in CRM that keeps everything in
process memory, "so a connector call costs next to nothing and the measured time is the
framework's own". Our built-in CRM is a real one that writes its contacts and activities
to our database, which the peer's does not. `bench/run.py --crm memory` serves ours with
this connector instead, registered through CRM_PLATFORMS_EXTRA, so both servers are
measured doing the same work: their own (auth, rules, history), not the CRM's.

It is a benchmark fixture, not a product connector: its data lives in one worker process
and is lost when that process ends. Like `peercrm`, any non-empty API key logs in, and a
call log is accepted for any contact id (a contact created by another worker is unknown
to this one).
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from typing import Any

from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    CrmClient,
    FindContactResult,
    JsonDict,
    LogContact,
    LogResult,
    MessageLogInput,
    UpdateLogResult,
    UserInfoResult,
)
from connector.models import CrmUser


def _message(message: str, message_type: str = "success", ttl: int = 2000) -> JsonDict:
    return {"message": message, "messageType": message_type, "ttl": ttl}


class MemoryCrmClient(CrmClient):
    """Contacts and logs in this process's memory, like the peer's `peercrm`."""

    def __init__(self, platform: str) -> None:
        super().__init__(platform)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._contacts: dict[str, list[JsonDict]] = {}
        self._logs: dict[str, JsonDict] = {}

    def manifest(self) -> JsonDict:
        return {
            "name": self.platform,
            "displayName": "In-memory CRM (benchmark)",
            "auth": {"type": "apiKey"},
            "contactTypes": [
                {"display": "Contact", "value": "Contact"},
                {"display": "Lead", "value": "Lead"},
            ],
            "canOpenLogPage": False,
        }

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        if not api_key:
            return UserInfoResult(
                successful=False, return_message=_message("An API key is required.", "warning")
            )
        digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
        return UserInfoResult(
            successful=True,
            user_id=f"memory-{digest}",
            name="Memory User",
            timezone_name="UTC",
            timezone_offset="+00:00",
            return_message=_message("Connected to the in-memory CRM.", ttl=1000),
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        return _message("Logged out of the in-memory CRM.", ttl=1000)

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        with self._lock:
            matches = [dict(contact) for contact in self._contacts.get(phone_number, ())]
        return FindContactResult(successful=True, contacts=[*matches, dict(NEW_CONTACT_OPTION)])

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        with self._lock:
            contact = {
                "id": f"contact-{next(self._ids)}",
                "name": name,
                "type": contact_type,
                "phone": phone_number,
            }
            self._contacts.setdefault(phone_number, []).append(contact)
        return CreateContactResult(
            contact={"id": contact["id"], "name": name, "type": contact_type},
            return_message=_message("Contact created."),
        )

    def _store(self, record: dict[str, Any]) -> str:
        with self._lock:
            log_id = f"log-{next(self._ids)}"
            self._logs[log_id] = record
        return log_id

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        log_id = self._store(
            {
                "contactId": contact.id,
                "sessionId": data.call_log.get("sessionId"),
                "subject": data.call_log.get("customSubject") or "",
                "note": data.note,
                "body": data.composed_log_details,
            }
        )
        return LogResult(log_id=log_id, return_message=_message("Call logged"))

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        with self._lock:
            record = self._logs.get(data.crm_log_id)
            if record is not None and data.note is not None:
                record["note"] = data.note
        return UpdateLogResult(updated_note=data.note, return_message=_message("Call log updated."))

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        log_id = self._store({"contactId": contact.id, "message": data.message.get("id")})
        return LogResult(log_id=log_id, return_message=_message("Message logged", ttl=1000))
