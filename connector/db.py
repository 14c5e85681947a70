"""The database around CRM calls, and the few hand-written statements of the hot routes.

`connection_release_before_crm_call` keeps CRM round trips out of transactions and gives
pooled connections back while a CRM answers. `insert_returning_pk` builds the conditional
`INSERT ... SELECT ... WHERE ... ON CONFLICT DO NOTHING RETURNING` that claims a log row
in one statement on PostgreSQL and SQLite (the ORM cannot express it): the claim that
concurrency depends on. `update_where` and its two combined forms record an outcome in as
few round trips as the database allows (`update_where_each`, `update_where_and_insert`:
one statement on PostgreSQL). Each value is prepared by its model field
(`get_db_prep_save`), so encodings, JSON and time zones are exactly as the ORM writes
them. Everything else writes through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections, models, transaction
from django.db.models import Field, Model
from django.utils import timezone

from connector.conf import connector_settings


class CrmCallInTransaction(RuntimeError):
    """A CRM call was made inside a database transaction: a programming error.

    A transaction (and, on SQLite, the database-wide write lock) would stay open for the
    CRM's whole round trip, stalling every other request that writes.
    """


def in_transaction() -> bool:
    """Whether the current thread has a database transaction open (test cases' own
    wrapping transactions excepted: they stand for autocommit)."""
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def connection_release_before_crm_call(*, keep: bool, operation: str) -> None:
    """Before a CRM call: refuse to run inside a transaction, and, when
    CONNECTOR["DB_RELEASE_FOR_CRM_CALLS"] (a pool under gevent workers, or smaller than the threads), give the
    pooled connection back to its pool unless `keep` (the CRM itself uses our database).

    The next statement takes a connection from the pool again (checked first, so one the
    server dropped meanwhile is replaced). Otherwise the connection stays for the whole
    request: a persistent or pooled one costs nothing to keep, and a checkout costs CPU.
    """
    if in_transaction():
        raise CrmCallInTransaction(f"CRM call {operation} inside a database transaction")
    if not keep:
        _pooled_connection_release()


def connection_release_while_waiting() -> None:
    """Before sleeping while another request finishes a log or a placeholder: give the
    pooled connection back, as before a CRM call (unless a transaction is open).

    The request waited for needs a connection to record its outcome: waiters holding
    theirs through their sleeps could take the whole pool and leave it none."""
    if not in_transaction():
        _pooled_connection_release()


def _pooled_connection_release() -> None:
    if connection.connection is None or not connector_settings.DB_RELEASE_FOR_CRM_CALLS:
        return
    if getattr(connection, "pool", None) is not None:
        connection.close()


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@cache
def _fields(model: type[Model], vendor: str) -> dict[str, tuple[Field, str]]:
    """Field name -> (field, quoted column) of `model`, built once per model and database
    vendor (the cache key; quoting differs by vendor): looking fields up and quoting names
    on every statement showed in the profile."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    by_attname = {f.attname: (f, quote(f.column)) for f in model._meta.concrete_fields}
    by_name = {f.name: (f, quote(f.column)) for f in model._meta.concrete_fields}
    return {**by_attname, **by_name}  # as Options.get_field: `user` and `user_id` alike


# Exactly these classes (not subclasses such as an encrypted field) store a str as it is.
_PLAIN_TEXT = (models.CharField, models.TextField)


def _prepared(field: Field, value: Any, conn: Any) -> Any:
    """`value` as the database takes it, as the ORM prepares it (`get_db_prep_save`); a str
    for a plain text column is already that (preparing each took a tenth of the statement
    building, bench/profile.py)."""
    if type(value) is str and type(field) in _PLAIN_TEXT:
        return value
    return field.get_db_prep_save(value, conn)


def _columns(model: type[Model], values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Quoted columns and prepared parameters for `values` (field name -> Python value).

    None values are left out, so the column takes NULL without a typed parameter (in an
    INSERT ... SELECT PostgreSQL would read an untyped NULL as text).
    """
    conn = connections[DEFAULT_DB_ALIAS]  # one lookup, not one per value
    fields = _fields(model, conn.vendor)
    columns, params = [], []
    for name, value in values.items():
        if value is None:
            continue
        field, column = fields[name]
        columns.append(column)
        params.append(_prepared(field, value, conn))
    return columns, params


def with_defaults(model: type[Model], values: dict[str, Any]) -> dict[str, Any]:
    """`values` completed with each other field's default, as `Model.objects.create` would
    (`auto_now`/`auto_now_add` timestamps set to now)."""
    now = timezone.now()
    row = dict(values)
    for field in model._meta.concrete_fields:
        if field.primary_key or field.name in row:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            row[field.name] = now
        else:
            row[field.name] = field.get_default()
    return row


def insert_returning_pk(
    model: type[Model],
    values: dict[str, Any],
    *,
    condition: str = "",
    condition_params: Sequence[Any] = (),
    ignore_conflicts: bool = False,
) -> int | None:
    """Insert one row and return its primary key, in one statement.

    `condition` (SQL after WHERE) makes the insert conditional; `ignore_conflicts` makes a
    unique-constraint conflict insert nothing. Either way, None means no row was inserted.
    """
    columns, params = _columns(model, values)
    placeholders = ", ".join(["%s"] * len(params))
    sql = f"INSERT INTO {_table(model)} ({', '.join(columns)}) SELECT {placeholders}"
    if condition:
        sql += f" WHERE {condition}"
        params.extend(condition_params)
    elif ignore_conflicts:
        sql += " WHERE 1 = 1"  # SQLite needs a WHERE before ON CONFLICT in INSERT ... SELECT
    if ignore_conflicts:
        sql += " ON CONFLICT DO NOTHING"
    sql += f" RETURNING {connection.ops.quote_name(model._meta.pk.column)}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _update_sql(
    model: type[Model], values: dict[str, Any], where: dict[str, Any], increment: str
) -> tuple[str, list[Any]]:
    conn = connections[DEFAULT_DB_ALIAS]
    fields = _fields(model, conn.vendor)
    assignments, params = [], []
    for name, value in values.items():
        field, column = fields[name]
        assignments.append(f"{column} = %s")
        params.append(_prepared(field, value, conn) if value is not None else None)
    if increment:
        column = fields[increment][1]
        assignments.append(f"{column} = {column} + 1")
    conditions = []
    for name, value in where.items():
        field, column = fields[name]
        conditions.append(f"{column} = %s")
        params.append(_prepared(field, value, conn))
    sql = f"UPDATE {_table(model)} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}"  # noqa: S608
    return sql, params


def update_where(
    model: type[Model], values: dict[str, Any], *, where: dict[str, Any], increment: str = ""
) -> int:
    """`UPDATE` the rows matching `where` (field = value, all of them) to `values` (None
    writes NULL); `increment` names an integer field to add one to. Returns the number of
    rows updated: with a compare-and-set in `where`, whether this caller still held it."""
    sql, params = _update_sql(model, values, where, increment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class RowUpdate(NamedTuple):
    """One `update_where` of `update_where_each`: set `values` on the rows matching `where`,
    adding one to the integer field `increment` when named."""

    values: dict[str, Any]
    where: dict[str, Any]
    increment: str = ""


def update_where_each(model: type[Model], updates: Sequence[RowUpdate]) -> list[int]:
    """Several `update_where`s of one table, all or nothing. Returns the number of rows
    each updated, in order.

    On PostgreSQL this is one statement (each UPDATE in a CTE, their counts selected: one
    round trip, one commit); elsewhere the UPDATEs in one transaction. All of them see
    the table as it was before any: they must not match the same rows (PostgreSQL would
    apply only one change to such a row).
    """
    if len(updates) == 1:
        only = updates[0]
        return [update_where(model, only.values, where=only.where, increment=only.increment)]
    built = [_update_sql(model, update.values, update.where, update.increment) for update in updates]
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        ctes = ", ".join(f"u{i} AS ({sql} RETURNING 1)" for i, (sql, _) in enumerate(built))
        counts = ", ".join(f"(SELECT count(*) FROM u{i})" for i in range(len(built)))  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(f"WITH {ctes} SELECT {counts}", [p for _, params in built for p in params])
            return list(cursor.fetchone())
    with transaction.atomic(), connection.cursor() as cursor:
        rowcounts = []
        for sql, params in built:
            cursor.execute(sql, params)
            rowcounts.append(cursor.rowcount)
        return rowcounts


def update_where_and_insert(
    model: type[Model],
    values: dict[str, Any],
    *,
    where: dict[str, Any],
    increment: str = "",
    rows_model: type[Model],
    rows: Sequence[dict[str, Any]],
) -> bool:
    """`update_where`, and insert `rows` (of `rows_model`, all with the same non-None
    fields) only if a row was updated: all or nothing. Returns whether a row was updated.

    On PostgreSQL this is one statement (the UPDATE in a CTE that the INSERT reads: one
    round trip, one commit); elsewhere an UPDATE then an INSERT in a transaction.
    """
    update_sql, update_params = _update_sql(model, values, where, increment)
    if not rows:
        with connection.cursor() as cursor:
            cursor.execute(update_sql, update_params)
            return cursor.rowcount > 0
    conn = connections[DEFAULT_DB_ALIAS]
    fields = _fields(rows_model, conn.vendor)
    names = list(rows[0])
    columns = ", ".join(fields[name][1] for name in names)
    params = [_prepared(fields[name][0], row[name], conn) for row in rows for name in names]
    if conn.vendor == "postgresql":
        # Each row is a SELECT over the CTE: it yields a row only if the UPDATE matched.
        select = "SELECT " + ", ".join(["%s"] * len(names)) + " FROM updated"  # noqa: S608
        sql = (
            f"WITH updated AS ({update_sql} RETURNING 1) "
            f"INSERT INTO {_table(rows_model)} ({columns}) {' UNION ALL '.join([select] * len(rows))}"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [*update_params, *params])
            return cursor.rowcount > 0
    values_sql = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(rows))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(update_sql, update_params)
        if cursor.rowcount == 0:
            return False
        cursor.execute(f"INSERT INTO {_table(rows_model)} ({columns}) VALUES {values_sql}", params)  # noqa: S608
        return True
