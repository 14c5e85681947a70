"""Maps platform names to CRM clients, from `CONNECTOR["PLATFORMS"]`."""

from __future__ import annotations

import threading

from django.utils.module_loading import import_string

from connector.conf import connector_settings
from connector.crm.base import PLATFORM_NAME, CrmClient
from connector.exceptions import ConnectorNotFound


class CrmRegistry:
    """Builds one client per configured platform on first use and hands it out.

    Safe to share between threads: the clients are built once, under a lock, so every
    thread of a process gets the same client of a platform (a client may keep a pooled
    HTTP session, or, in the benchmark's in-memory CRM, its data).
    """

    def __init__(self) -> None:
        self._clients: dict[str, CrmClient] | None = None
        self._lock = threading.Lock()

    def _loaded(self) -> dict[str, CrmClient]:
        clients = self._clients
        if clients is None:
            with self._lock:
                if self._clients is None:
                    self._clients = self._load()
                clients = self._clients
        return clients

    def _load(self) -> dict[str, CrmClient]:
        clients: dict[str, CrmClient] = {}
        for platform, path in connector_settings.PLATFORMS.items():
            client_class = import_string(path)
            if not issubclass(client_class, CrmClient):
                raise TypeError(f"{path} is not a CrmClient")
            clients[platform] = client_class(platform)
        return clients

    def get(self, platform: str) -> CrmClient:
        """The client for `platform`: a configured connector, else a proxy connector of
        that name (a REST CRM described in JSON, `ProxyConnector`); raises
        `ConnectorNotFound` for an unknown name."""
        client = self._loaded().get(platform)
        if client is None and PLATFORM_NAME.fullmatch(platform):
            from connector.selectors import proxy_client_get

            client = proxy_client_get(name=platform)
        if client is None:
            raise ConnectorNotFound(platform)
        return client

    def platforms(self) -> list[str]:
        """The configured connectors' platform names (proxy connectors not included)."""
        return list(self._loaded())

    def reload(self) -> None:
        from connector.selectors import proxy_clients_forget

        self._clients = None
        proxy_clients_forget()


crm_registry = CrmRegistry()
