"""Django's PostgreSQL backend, with pooled connections checked without a round trip.

Under gevent workers a request takes a connection from the pool up to five times per
unknown-caller flow (it gives it back before every CRM call, `connector.db`). Django's
pool check (CONN_HEALTH_CHECKS) sends an empty query on every checkout: five more round
trips beside the flow's own statements (nine when this was measured, eight since
`POST /contact`'s two outcome UPDATEs became one). Dropping them took 8 % off our server's CPU per
flow at c=256 (bench/run.py --sweep-env CONN_HEALTH_CHECKS=true,false, CRM 100 ms).

What those checks catch is a connection the server closed while it sat in the pool
(terminated, restarted, idle timeout). The server says so before it closes, so the idle
socket has something to read. `_still_open` asks the kernel whether it has, without
blocking and without sending anything (one `poll`); only then does it send the empty
query, and a connection that fails it goes back to the pool, which drops it and opens
another. A peer that vanished without a word is not caught here, as the empty query would
not catch it either before TCP gives up: the statement then fails as it would have.
CONN_HEALTH_CHECKS=true still sends the empty query on every checkout.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg import OperationalError
from psycopg_pool import ConnectionPool

try:  # gevent's poll would wait through its hub; the kernel's answers at once
    from gevent.monkey import get_original  # type: ignore[import-untyped]

    _poll = get_original("select", "poll")
except ImportError:  # pragma: no cover - gevent is installed with the app
    _poll = select.poll


def _still_open(connection: Any) -> bool:
    """Whether an idle pooled connection is still open. An idle connection hears nothing
    unless the server speaks first (a notice, a parameter change, or its goodbye before
    closing); then the empty query tells which."""
    try:
        socket = connection.pgconn.socket
    except OperationalError:  # libpq has no socket for it any more
        return False
    poller = _poll()
    poller.register(socket, select.POLLIN)
    if not poller.poll(0):
        return True
    try:
        ConnectionPool.check_connection(connection)
    except Exception:  # whatever failed, the connection is not usable
        return False
    return True


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        connection = super().get_new_connection(conn_params)
        pool = getattr(self, "pool", None)  # Django's, created from OPTIONS["pool"]
        if pool is None:
            return connection
        # Every connection of the pool may have been closed at once (a server restart):
        # try as many as it holds, then one it opens anew.
        for _ in range(pool.max_size + 1):
            if _still_open(connection):
                break
            pool.putconn(connection)  # broken: the pool drops it and opens another
            connection = super().get_new_connection(conn_params)
        return connection
