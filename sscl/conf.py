"""Server-side call logging's settings, read from Django settings with code defaults."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

# RingCentral's account-wide telephony-session events (app permission CallControl):
# developers.ringcentral.com "Account Telephony Sessions" event filter.
TELEPHONY_EVENT_FILTER = "/restapi/v1.0/account/~/telephony/sessions"
WEBHOOK_PATH = "ringcentral/webhook"


@dataclass(frozen=True, slots=True)
class ServerLoggingConf:
    # How queued work runs: "celery" (a broker is set), "thread" (the embedded default:
    # a small pool in the serving process, plus a sweep every few seconds), or "inline"
    # (the tests: right after the transaction commits, in the calling thread).
    dispatch: str
    # The public https base the webhook address is built from (RingCentral must reach it).
    public_base_url: str
    # RingCentral writes a call's record to the call log some seconds after it ends:
    # the first fetch waits this long, later ones back off (doubling, capped).
    first_fetch_delay: float
    max_backoff: float
    # tries of one call's logging (record fetch and CRM write together), the first included
    max_attempts: int
    # a subscription is renewed when it expires within this many seconds
    renew_before: int
    # the lifetime asked for a new or renewed subscription (RingCentral's default is 7 days)
    subscription_expires_in: int
    # a claimed call belongs to its task this long
    lease_seconds: float


def conf() -> ServerLoggingConf:
    default_dispatch = "celery" if getattr(settings, "CELERY_BROKER_URL", "") else "thread"
    return ServerLoggingConf(
        dispatch=getattr(settings, "SSCL_DISPATCH", "") or default_dispatch,
        public_base_url=getattr(settings, "PUBLIC_BASE_URL", ""),
        first_fetch_delay=float(getattr(settings, "SSCL_FIRST_FETCH_DELAY_SECONDS", 5.0)),
        max_backoff=float(getattr(settings, "SSCL_MAX_BACKOFF_SECONDS", 300.0)),
        max_attempts=int(getattr(settings, "SSCL_MAX_ATTEMPTS", 8)),
        renew_before=int(getattr(settings, "SSCL_RENEW_BEFORE_SECONDS", 24 * 3600)),
        subscription_expires_in=int(getattr(settings, "SSCL_SUBSCRIPTION_EXPIRES_IN", 7 * 24 * 3600)),
        lease_seconds=float(getattr(settings, "SSCL_LEASE_SECONDS", 60.0)),
    )
