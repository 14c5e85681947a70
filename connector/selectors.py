"""Read-only queries of the connector app."""

from __future__ import annotations

from connector.models import CrmUser


def crm_user_get(*, user_id: str, platform: str | None = None) -> CrmUser | None:
    """The connected user with this id (and platform, when given), or None."""
    queryset = CrmUser.objects.filter(pk=user_id)
    if platform is not None:
        queryset = queryset.filter(platform=platform)
    return queryset.first()
