"""The `CONNECTOR` settings dict, read with code defaults (after DRF's APISettings)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    # platform name -> dotted path of a connector.crm.base.CrmClient subclass
    "PLATFORMS": {"builtin": "connector.crm.builtin.BuiltinCrmClient"},
    # OAuth apps by key ("pipedrive", "clio_eu", ...): {client_id, client_secret, token_url,
    # redirect_uri}; each OAuth connector knows its keys and fills in its CRM's endpoints
    "OAUTH_APPS": {},
    # the manifest served by GET /crmManifest without ?platformName
    "DEFAULT_PLATFORM": "builtin",
    "RINGCENTRAL_SERVER": "https://platform.ringcentral.com",
    # the server's own RingCentral app (JWT auth flow), for connected accounts
    "RINGCENTRAL_CLIENT_ID": "",
    "RINGCENTRAL_CLIENT_SECRET": "",
    # region used to read numbers written without a country code, e.g. (415) 555-0100
    "DEFAULT_PHONE_REGION": "US",
    # every outbound HTTP call (CRMs, RingCentral) gives up after this many seconds
    "OUTBOUND_TIMEOUT_SECONDS": 10.0,
    # connections per host in each outbound HTTP session's pool: the threads that may call
    "OUTBOUND_POOL_MAXSIZE": 40,
    # host -> base URL: outbound requests for that host go there instead (sandboxes, fakes)
    "OUTBOUND_HOST_MAP": {},
    # a CRM's 429 is waited out and sent again when its Retry-After is at most this long;
    # a longer one goes up to the caller with its retry_after
    "OUTBOUND_RETRY_AFTER_CAP_SECONDS": 2.0,
    # tries of one outbound request, the first included (retries: 429s, and reads the CRM
    # failed to serve)
    "OUTBOUND_ATTEMPTS": 3,
    # give a pooled database connection back before each CRM call (config/settings.py)
    "DB_RELEASE_FOR_CRM_CALLS": False,
    # a claimed call or message log belongs to its request this long (see logs.services)
    "LOG_LEASE_SECONDS": 25.0,
}


class ConnectorSettings:
    """Attribute access to `settings.CONNECTOR`, falling back to `DEFAULTS`.

    Values are cached on first read and dropped when a test changes the setting.
    """

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown CONNECTOR setting: {name}")
        if name not in self._cache:
            user = getattr(settings, "CONNECTOR", {})
            self._cache[name] = user.get(name, DEFAULTS[name])
        return self._cache[name]

    def reload(self) -> None:
        self._cache.clear()


connector_settings = ConnectorSettings()


def _reload(*, setting: str, **kwargs: Any) -> None:
    if setting == "CONNECTOR":
        connector_settings.reload()
        from connector.crm.registry import crm_registry

        crm_registry.reload()


setting_changed.connect(_reload)
