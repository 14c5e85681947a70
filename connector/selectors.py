"""Read-only queries of the connector app."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.core.cache import cache as django_cache
from django.db import DEFAULT_DB_ALIAS, connection
from django.utils.dateparse import parse_datetime

from connector.crm.base import CrmClient, OAuthCrmClient, OAuthInfo
from connector.models import CrmUser, ManagedOAuthApp, ProxyConnector

# Every column but the encrypted credentials, which stay deferred until a connector reads
# them (the built-in CRM never does).
_USER_FIELDS = (
    "id",
    "platform",
    "name",
    "hostname",
    "timezone_name",
    "timezone_offset",
    "token_expiry",
    "rc_account_id",
    "hashed_rc_extension_id",
    "user_settings",
    "created_at",
    "updated_at",
)
_USER_DATETIMES = frozenset({"token_expiry", "created_at", "updated_at"})


def db_datetime(value: Any) -> datetime | None:
    """A timestamp read through a raw cursor, made aware: PostgreSQL gives aware datetimes,
    SQLite naive ones (in UTC) or, for computed columns, text."""
    parsed = value if value is None or isinstance(value, datetime) else parse_datetime(str(value))
    if parsed is not None and parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def db_json(value: Any) -> Any:
    """A JSON column read through a raw cursor (text on both databases)."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _same(value: Any) -> Any:
    return value


_USER_CONVERTERS = tuple(
    db_datetime if name in _USER_DATETIMES else db_json if name == "user_settings" else _same
    for name in _USER_FIELDS
)


@cache
def _user_select_sql(vendor: str) -> str:
    """crm_user_get's statement, built once per database vendor."""
    table = connection.ops.quote_name(CrmUser._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in _USER_FIELDS)
    token = connection.ops.quote_name("access_token")
    return f"SELECT {columns}, ({token} IS NOT NULL AND {token} <> '') FROM {table} WHERE id = %s"  # noqa: S608


def crm_user_get(*, user_id: str, platform: str | None = None) -> CrmUser | None:
    """The connected user with this id (and platform, when given), or None.

    Every API request loads its user, so this is one hand-written statement: through the
    ORM, building the query and decrypting the credentials took about 1 ms of a 3.4 ms
    GET /contact (bench/profile.py). The credentials stay deferred; whether the user holds
    one (`is_connected`) is read in the same statement.
    """
    sql = _user_select_sql(connection.vendor)
    params: list[Any] = [user_id]
    if platform is not None:
        sql += " AND platform = %s"
        params.append(platform)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    values = [convert(value) for convert, value in zip(_USER_CONVERTERS, row, strict=False)]
    user = CrmUser.from_db(DEFAULT_DB_ALIAS, list(_USER_FIELDS), values)
    user.has_access_token = bool(row[-1])
    return user


def oauth_info_for(*, client: OAuthCrmClient, hostname: str, rc_account_id: str) -> OAuthInfo:
    """The OAuth app a user of `client` on `hostname` connects and refreshes with: the
    RingCentral account's own app when an admin set one (`ManagedOAuthApp`), else the
    connector's app from the environment. One query when an account is given."""
    info = client.oauth_info(hostname=hostname)
    if not rc_account_id:
        return info
    app = ManagedOAuthApp.objects.filter(rc_account_id=rc_account_id, platform=client.platform).first()
    if app is None:
        return info
    return dataclasses.replace(
        info,
        client_id=app.client_id,
        client_secret=app.client_secret,
        token_url=app.token_url or info.token_url,
        redirect_uri=app.redirect_uri or info.redirect_uri,
    )


# --- proxy connectors ------------------------------------------------------------------------

# A process checks a proxy config's revision this often at most (with the default
# per-process cache; a shared CACHE_URL sees a change at once).
PROXY_CACHE_SECONDS = 10
_proxy_clients: dict[str, tuple[str, CrmClient]] = {}
_proxy_clients_lock = threading.Lock()


def proxy_revision_key(name: str) -> str:
    return f"proxy:revision:{name}"


def proxy_clients_forget() -> None:
    """Drop this process's proxy clients (the settings they were built with changed)."""
    with _proxy_clients_lock:
        _proxy_clients.clear()


def proxy_client_get(*, name: str) -> CrmClient | None:
    """The client of the proxy connector whose platform name is `name`, or None.

    Built once per process and saved revision: a request costs one cache read, and a query
    only when the cached revision expired or was dropped by a save. Only the connector's
    proxy id and revision are cached, never its config's secret key.
    """
    from connector.crm.proxy import ProxyCrmClient

    key = proxy_revision_key(name)
    marker = django_cache.get(key)
    if marker is None:
        found = ProxyConnector.objects.filter(name=name).values_list("proxy_id", "revision").first()
        marker = f"{found[0]}:{found[1]}" if found else ""
        django_cache.set(key, marker, PROXY_CACHE_SECONDS)
    if not marker:
        return None
    known = _proxy_clients.get(name)
    if known is not None and known[0] == marker:
        return known[1]
    row = ProxyConnector.objects.filter(name=name).first()
    if row is None:
        return None
    client = ProxyCrmClient(
        row.name, config=row.config, secret_key=row.secret_key or "", proxy_id=row.proxy_id
    )
    with _proxy_clients_lock:
        _proxy_clients[name] = (f"{row.proxy_id}:{row.revision}", client)
    return client


def proxy_connector_get(*, proxy_id: str) -> ProxyConnector | None:
    return ProxyConnector.objects.filter(proxy_id=proxy_id).first() if proxy_id else None


def proxy_connector_get_by_name(*, name: Any) -> ProxyConnector | None:
    return ProxyConnector.objects.filter(name=name).first() if isinstance(name, str) and name else None


def proxy_connector_names() -> list[str]:
    """The platform names of the proxy connectors (one query)."""
    return list(ProxyConnector.objects.order_by("name").values_list("name", flat=True))
