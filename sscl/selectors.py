"""Reads of server-side call logging's state."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet

from connector.models import CrmUser, RingCentralConnection
from logs.models import CallLog
from logs.services import CallLogRequest, identity_key
from rules.models import Account
from sscl.choices import SessionState
from sscl.models import CallSession, ServerLogging, UserMapping, WebhookSubscription


def account_get_by_rc_id(*, rc_account_id: str) -> Account | None:
    return Account.objects.filter(rc_account_id=rc_account_id).first()


def subscription_by_rc_id(rc_subscription_id: str) -> WebhookSubscription | None:
    if not rc_subscription_id:
        return None
    return (
        WebhookSubscription.objects.select_related("account")
        .filter(rc_subscription_id=rc_subscription_id)
        .first()
    )


def server_logging_of_account(*, account: Account) -> ServerLogging | None:
    return ServerLogging.objects.select_related("crm_user").filter(account=account).first()


def connection_of_account(*, account: Account) -> RingCentralConnection | None:
    return RingCentralConnection.objects.filter(rc_account_id=account.rc_account_id).first()


def call_log_of(*, user_id: str, request: CallLogRequest) -> CallLog | None:
    """The pipeline's row for this call: unique per user, session and extension identity."""
    key = identity_key(
        hashed_extension_id=request.hashed_extension_id, extension_number=request.extension_number
    )
    return CallLog.objects.filter(user_id=user_id, session_id=request.session_id, identity_key=key).first()


def mapped_crm_user_id(*, setting: ServerLogging, rc_extension_id: str) -> str:
    """The connected CRM user an extension's calls are logged as, or "" (the admin's)."""
    crm_user_id = (
        UserMapping.objects.filter(server_logging=setting, rc_extension_id=rc_extension_id)
        .values_list("crm_user_id", flat=True)
        .first()
    )
    if not crm_user_id:
        return ""
    user = CrmUser.objects.filter(pk=crm_user_id, platform=setting.crm_user.platform).only("pk").first()
    return user.pk if user is not None else ""


def crm_users_of_account(*, account: Account, platform: str) -> list[CrmUser]:
    return list(
        CrmUser.objects.filter(rc_account_id=account.rc_account_id, platform=platform).only(
            "pk", "name", "hashed_rc_extension_id", "platform"
        )
    )


def calls_left_to_user() -> QuerySet[CallSession]:
    return CallSession.objects.filter(state=SessionState.LEFT_TO_USER).select_related("account", "call_log")


def call_state_counts(*, account: Account | None = None) -> dict[str, int]:
    queryset = CallSession.objects.all()
    if account is not None:
        queryset = queryset.filter(account=account)
    return dict(queryset.values_list("state").annotate(n=Count("id")).values_list("state", "n"))


def server_logging_state(*, rc_account_id: str) -> dict[str, Any]:
    """What `GET /admin/serverLoggingSettings` answers for an account: App Connect's
    `additionalFields` and values (none here), and our server-side logging's settings and
    subscription health. No secret."""
    state: dict[str, Any] = {"additionalFields": [], "additionalFieldValues": {}}
    setting = (
        ServerLogging.objects.select_related("account").filter(account__rc_account_id=rc_account_id).first()
        if rc_account_id
        else None
    )
    if setting is None:
        state["serverSideLogging"] = {"enabled": False}
        return state
    subscription = WebhookSubscription.objects.filter(account=setting.account).first()
    state["serverSideLogging"] = {
        "enabled": setting.enabled,
        "ownerMode": setting.owner_mode,
        "blockedNumbers": list(setting.blocked_numbers or []),
        "crmUserId": setting.crm_user_id,
        "subscription": {
            "status": subscription.status if subscription else "",
            "expiresAt": subscription.expires_at.isoformat()
            if subscription and subscription.expires_at
            else None,
            "lastDeliveryAt": (
                subscription.last_delivery_at.isoformat()
                if subscription and subscription.last_delivery_at
                else None
            ),
            "lastError": subscription.last_error if subscription else "",
        },
        "calls": call_state_counts(account=setting.account),
    }
    return state
