"""Maps platform names to CRM clients, from `CONNECTOR["PLATFORMS"]`."""

from __future__ import annotations

from django.utils.module_loading import import_string

from connector.conf import connector_settings
from connector.crm.base import CrmClient
from connector.exceptions import ConnectorNotFound


class CrmRegistry:
    """Builds one client per configured platform on first use and hands it out."""

    def __init__(self) -> None:
        self._clients: dict[str, CrmClient] | None = None

    def _load(self) -> dict[str, CrmClient]:
        clients: dict[str, CrmClient] = {}
        for platform, path in connector_settings.PLATFORMS.items():
            client_class = import_string(path)
            if not issubclass(client_class, CrmClient):
                raise TypeError(f"{path} is not a CrmClient")
            clients[platform] = client_class(platform)
        return clients

    def get(self, platform: str) -> CrmClient:
        """The client for `platform`; raises `ConnectorNotFound` for an unknown name."""
        if self._clients is None:
            self._clients = self._load()
        try:
            return self._clients[platform]
        except KeyError:
            raise ConnectorNotFound(platform) from None

    def platforms(self) -> list[str]:
        if self._clients is None:
            self._clients = self._load()
        return list(self._clients)

    def reload(self) -> None:
        self._clients = None


crm_registry = CrmRegistry()
