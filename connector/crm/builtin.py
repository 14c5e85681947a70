"""The built-in CRM (platform `builtin`): contacts and activities kept in our own database.

It behaves like any other CRM behind the `CrmClient` contract, so the whole App Connect
flow works on a fresh checkout with no outside system. Its users log in with API keys
created by `manage.py builtin_apikey`; only the keys' SHA-256 digests are stored.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connection, transaction
from django.db.models import Max

from connector.choices import ActivityKind, BuiltinContactType
from connector.crm.base import (
    NEW_CONTACT_OPTION,
    CallLogDetails,
    CallLogInput,
    CallLogUpdate,
    CreateContactResult,
    CrmClient,
    CrmRejected,
    FindContactResult,
    JsonDict,
    LogContact,
    LogResult,
    MessageLogInput,
    RelinkResult,
    UpdateLogResult,
    UserInfoResult,
)
from connector.models import (
    BuiltinActivity,
    BuiltinActivityKey,
    BuiltinApiKey,
    BuiltinContact,
    BuiltinContactPhone,
    CrmUser,
)
from connector.selectors import db_datetime

# A lookup returns at most this many contacts, like a CRM's first page of results.
MAX_MATCHES = 50


def api_key_digest(api_key: str) -> str:
    """The stored form of a built-in CRM API key (keys are random, so a plain digest)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def _success(message: str, ttl: int = 2000) -> JsonDict:
    return {"message": message, "messageType": "success", "ttl": ttl}


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


class BuiltinCrmClient(CrmClient):
    """The built-in CRM. Contacts are shared by all its users, like one CRM organisation."""

    uses_database = True

    def manifest(self) -> JsonDict:
        return {
            "name": self.platform,
            "displayName": "Built-in CRM",
            "auth": {
                "type": "apiKey",
                "apiKey": {
                    "page": {
                        "title": "Built-in CRM",
                        "content": [
                            {
                                "const": "apiKey",
                                "title": "API key",
                                "type": "string",
                                "required": True,
                            }
                        ],
                    }
                },
            },
            "contactTypes": [
                {"display": label, "value": value} for value, label in BuiltinContactType.choices
            ],
            "canOpenLogPage": False,
            "page": {"useContactSearch": True},
        }

    def _owner_id(self, user: CrmUser) -> int:
        # Our own user ids are "<built-in user pk>-<platform>" (see get_user_info).
        return int(user.id.rsplit("-", 1)[0])

    # auth

    def get_user_info(self, *, api_key: str, hostname: str, additional_info: JsonDict) -> UserInfoResult:
        key = (
            BuiltinApiKey.objects.select_related("user")
            .filter(digest=api_key_digest(api_key), revoked_at__isnull=True)
            .first()
            if api_key
            else None
        )
        if key is None:
            return UserInfoResult(
                successful=False,
                return_message={
                    "message": "Invalid API key for the built-in CRM.",
                    "messageType": "warning",
                    "ttl": 3000,
                },
            )
        return UserInfoResult(
            successful=True,
            user_id=f"{key.user_id}-{self.platform}",
            name=key.user.name,
            timezone_name="UTC",
            timezone_offset="+00:00",
            return_message=_success("Connected to the built-in CRM.", 1000),
        )

    def unauthorize(self, *, user: CrmUser) -> JsonDict | None:
        return _success("Logged out of the built-in CRM.", 1000)

    def auth_validation(self, *, user: CrmUser) -> tuple[bool, JsonDict | None]:
        valid = (
            bool(user.access_token)
            and BuiltinApiKey.objects.filter(
                digest=api_key_digest(user.access_token), revoked_at__isnull=True
            ).exists()
        )
        if valid:
            return True, _success("Authentication is valid.", 1000)
        return False, {
            "message": "The built-in CRM API key is no longer valid. Please connect again.",
            "messageType": "warning",
            "ttl": 5000,
        }

    # contacts

    def _contact_rows(self, **filters: Any) -> list[JsonDict]:
        rows = (
            BuiltinContact.objects.filter(**filters)
            .annotate(last_activity=Max("activities__created_at"))
            .order_by("id")
            .values("id", "name", "contact_type", "created_at", "last_activity")[:MAX_MATCHES]
        )
        return [
            {
                "id": str(row["id"]),
                "name": row["name"],
                "type": row["contact_type"],
                "createdDate": _iso(row["created_at"]),
                "mostRecentActivityDate": _iso(row["last_activity"]),
                "additionalInfo": None,
            }
            for row in rows
        ]

    def find_contact(
        self, *, user: CrmUser, phone_number: str, overriding_format: str, is_extension: bool
    ) -> FindContactResult:
        contacts = [{**contact, "phone": phone_number} for contact in self._contacts_by_phone(phone_number)]
        contacts.append(dict(NEW_CONTACT_OPTION))
        return FindContactResult(successful=True, contacts=contacts)

    @staticmethod
    def _contacts_by_phone(phone_number: str) -> list[JsonDict]:
        # One hand-written statement: this lookup runs for every call and message, and the
        # ORM's query building cost more than the query (bench/profile.py).
        contact = connection.ops.quote_name(BuiltinContact._meta.db_table)
        phone = connection.ops.quote_name(BuiltinContactPhone._meta.db_table)
        activity = connection.ops.quote_name(BuiltinActivity._meta.db_table)
        sql = (
            f"SELECT c.id, c.name, c.contact_type, c.created_at,"  # noqa: S608
            f" (SELECT MAX(a.created_at) FROM {activity} a WHERE a.contact_id = c.id)"
            f" FROM {contact} c JOIN {phone} p ON p.contact_id = c.id"
            f" WHERE p.phone_number = %s ORDER BY c.id LIMIT {MAX_MATCHES}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [phone_number])
            rows = cursor.fetchall()
        return [
            {
                "id": str(pk),
                "name": name,
                "type": contact_type,
                "createdDate": _iso(db_datetime(created)),
                "mostRecentActivityDate": _iso(db_datetime(last_activity)),
                "additionalInfo": None,
            }
            for pk, name, contact_type, created, last_activity in rows
        ]

    def find_contact_with_name(self, *, user: CrmUser, name: str) -> FindContactResult:
        contacts = self._contact_rows(name__icontains=name) if name.strip() else []
        return FindContactResult(successful=True, contacts=contacts)

    def create_contact(
        self,
        *,
        user: CrmUser,
        phone_number: str,
        name: str,
        contact_type: str,
        additional_submission: JsonDict,
    ) -> CreateContactResult:
        if contact_type not in BuiltinContactType.values:
            raise CrmRejected(f"Unknown contact type {contact_type!r}")
        with transaction.atomic():
            contact = BuiltinContact.objects.create(
                name=name[:255], contact_type=contact_type, created_by_id=self._owner_id(user)
            )
            BuiltinContactPhone.objects.create(contact=contact, phone_number=phone_number)
        return CreateContactResult(
            contact={"id": str(contact.pk), "name": contact.name, "type": contact_type},
            return_message=_success("Contact created."),
        )

    # call logs

    def create_call_log(self, *, user: CrmUser, contact: LogContact, data: CallLogInput) -> LogResult:
        call = data.call_log
        direction = call.get("direction") or ""
        subject = call.get("customSubject") or f"{direction} call {contact.name}".strip()
        activity = self._activity_create(
            kind=ActivityKind.CALL,
            user=user,
            contact_id=contact.id,
            subject=subject,
            note=data.note,
            body=data.composed_log_details,
            details={
                "sessionId": call.get("sessionId"),
                "direction": direction,
                "startTime": call.get("startTime"),
                "duration": call.get("duration"),
                "result": call.get("result"),
                "from": call.get("from"),
                "to": call.get("to"),
                "recordingLink": (call.get("recording") or {}).get("link"),
                "additionalSubmission": data.additional_submission,
            },
            log_key=data.log_key,
        )
        return LogResult(log_id=str(activity.pk), return_message=_success("Call logged"))

    def find_call_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        return self._activity_by_key(user=user, kind=ActivityKind.CALL, log_key=log_key)

    def _activity_by_key(self, *, user: CrmUser, kind: str, log_key: str) -> str | None:
        pk = (
            BuiltinActivityKey.objects.filter(owner_id=self._owner_id(user), key=log_key, activity__kind=kind)
            .order_by("id")
            .values_list("activity_id", flat=True)
            .first()
        )
        return str(pk) if pk is not None else None

    def _activity(self, crm_log_id: str, kind: str) -> BuiltinActivity:
        activity = (
            BuiltinActivity.objects.filter(pk=crm_log_id, kind=kind).first()
            if str(crm_log_id).isdigit()
            else None
        )
        if activity is None:
            raise CrmRejected(f"No {kind} activity {crm_log_id} in the built-in CRM")
        return activity

    def _activity_create(
        self,
        *,
        kind: str,
        user: CrmUser,
        contact_id: str,
        subject: str,
        note: str,
        body: str,
        details: JsonDict,
        log_key: str,
    ) -> BuiltinActivity:
        """Create an activity for an existing contact, with the key it was logged under;
        CrmRejected when there is no such contact."""
        if not str(contact_id).isdigit() or not BuiltinContact.objects.filter(pk=contact_id).exists():
            raise CrmRejected(f"No contact {contact_id} in the built-in CRM")
        with transaction.atomic():
            activity = BuiltinActivity.objects.create(
                kind=kind,
                contact_id=int(contact_id),
                owner_id=self._owner_id(user),
                subject=subject[:500],
                note=note,
                body=body,
                details=details,
            )
            self._key_add(activity, log_key)
        return activity

    @staticmethod
    def _key_add(activity: BuiltinActivity, log_key: str) -> None:
        if log_key:
            BuiltinActivityKey.objects.create(
                activity=activity, owner_id=activity.owner_id, key=log_key[:300]
            )

    def update_call_log(self, *, user: CrmUser, data: CallLogUpdate) -> UpdateLogResult:
        activity = self._activity(data.crm_log_id, ActivityKind.CALL)
        if data.subject:
            activity.subject = data.subject[:500]
        if data.note is not None:
            activity.note = data.note
        if data.composed_log_details:
            activity.body = data.composed_log_details
        details = dict(activity.details)
        for key, value in (
            ("startTime", data.start_time),
            ("duration", data.duration),
            ("result", data.result),
            ("recordingLink", data.recording_link),
        ):
            if value is not None:
                details[key] = value
        activity.details = details
        activity.save(update_fields=("subject", "note", "body", "details", "updated_at"))
        return UpdateLogResult(updated_note=activity.note, return_message=_success("Call log updated."))

    def get_call_log(self, *, user: CrmUser, crm_log_id: str, contact_id: str) -> CallLogDetails:
        activity = self._activity(crm_log_id, ActivityKind.CALL)
        return CallLogDetails(
            info={
                "subject": activity.subject,
                "note": activity.note,
                "fullBody": activity.body,
                "fullLogResponse": {
                    "id": str(activity.pk),
                    "subject": activity.subject,
                    "note": activity.note,
                    "body": activity.body,
                    **activity.details,
                },
                "contactName": activity.contact.name,
            }
        )

    # message logs

    @staticmethod
    def _message_line(message: JsonDict, links: JsonDict) -> str:
        sender = message.get("from") or {}
        who = sender.get("name") or sender.get("phoneNumber") or ""
        text = message.get("subject") or ""
        line = f"- {message.get('creationTime', '')} {message.get('direction', '')} {who}: {text}"
        extra = [f"{name}: {link}" for name, link in sorted(links.items()) if link]
        return " ".join([line.rstrip(), *extra])

    def create_message_log(self, *, user: CrmUser, contact: LogContact, data: MessageLogInput) -> LogResult:
        if data.shared_content is not None:
            subject = data.shared_content.get("subject", "")
            body = data.shared_content.get("body", "")
        else:
            kind = data.message.get("type") or "SMS"
            subject = f"{kind} conversation with {contact.name or contact.phone_number}"
            body = self._message_line(data.message, data.links)
        activity = self._activity_create(
            kind=ActivityKind.MESSAGE,
            user=user,
            contact_id=contact.id,
            subject=subject,
            note="",
            body=body,
            details={
                "conversationId": data.message.get("conversationId"),
                "correspondents": data.correspondents,
                "additionalSubmission": data.additional_submission,
            },
            log_key=data.log_key,
        )
        return LogResult(log_id=str(activity.pk), return_message=_success("Message logged", 1000))

    def update_message_log(
        self, *, user: CrmUser, contact: LogContact, crm_log_id: str, data: MessageLogInput
    ) -> UpdateLogResult:
        with transaction.atomic():
            activity = self._activity(crm_log_id, ActivityKind.MESSAGE)
            if data.shared_content is not None:
                activity.body = data.shared_content.get("body", "")
            else:
                activity.body = "\n".join(
                    filter(None, [activity.body, self._message_line(data.message, data.links)])
                )
            activity.save(update_fields=("body", "updated_at"))
            if not activity.keys.filter(key=data.log_key[:300]).exists():
                self._key_add(activity, data.log_key)
        return UpdateLogResult(return_message=_success("Message log updated", 1000))

    def find_message_log(self, *, user: CrmUser, log_key: str, contact_id: str) -> str | None:
        return self._activity_by_key(user=user, kind=ActivityKind.MESSAGE, log_key=log_key)

    # moving activities

    def relink_activity(
        self, *, user: CrmUser, crm_log_id: str, kind: str, contact: LogContact
    ) -> RelinkResult:
        """Hang the activity on another existing contact; the old contact keeps everything
        else (nothing is deleted)."""
        activity = self._activity(crm_log_id, kind)
        target = BuiltinContact.objects.filter(pk=contact.id).first() if str(contact.id).isdigit() else None
        if target is None:
            raise CrmRejected(f"No contact {contact.id} in the built-in CRM")
        if activity.contact_id != target.pk:
            activity.contact = target
            activity.save(update_fields=("contact", "updated_at"))
        return RelinkResult(
            crm_log_id=str(activity.pk),
            contact_id=str(target.pk),
            contact_name=target.name,
            return_message=_success("Activity moved."),
        )
