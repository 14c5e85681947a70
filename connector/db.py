"""Hand-written SQL for the hot path of the unknown-caller flow, in one place.

Through the ORM, building an INSERT or UPDATE cost more CPU than the database spent running
it (about 0.5 ms each; bench/profile.py, ../shared/perf.md), and the flow writes several
rows per request. These helpers build the same statements directly, with each value
prepared by its model field (`get_db_prep_save`), so encodings, JSON and time zones stay
exactly as the ORM writes them, on PostgreSQL and SQLite alike. Everything else uses the
ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, Model
from django.utils import timezone


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
    """Before a CRM call: refuse to run inside a transaction, and give a pooled connection
    back to its pool unless `keep` (the CRM itself uses our database).

    The next statement takes a connection from the pool again (checked first, so one the
    server dropped meanwhile is replaced). Without a pool the connection stays: a
    persistent one costs nothing to keep, and a new one costs a connect.
    """
    if in_transaction():
        raise CrmCallInTransaction(f"CRM call {operation} inside a database transaction")
    if not keep and connection.connection is not None and getattr(connection, "pool", None) is not None:
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
        params.append(field.get_db_prep_save(value, conn))
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


def insert_parent_and_child(
    parent: type[Model],
    values: dict[str, Any],
    child: type[Model],
    child_values: dict[str, Any],
    *,
    link: str,
) -> int:
    """Insert a row and one child row pointing at it (`link` is the child's foreign key);
    return the parent's primary key. All or nothing.

    On PostgreSQL this is one statement (a data-modifying CTE: one round trip, one commit);
    elsewhere two inserts in a transaction.
    """
    if connection.vendor != "postgresql":
        with transaction.atomic():
            pk = insert_returning_pk(parent, values)
            insert_many(child, [{**child_values, link: pk}])
        return pk  # type: ignore[return-value]
    columns, params = _columns(parent, values)
    child_columns, child_params = _columns(child, child_values)
    parent_pk = connection.ops.quote_name(parent._meta.pk.column)
    link_column = _fields(child, connection.vendor)[link][1]
    sql = (
        f"WITH parent AS (INSERT INTO {_table(parent)} ({', '.join(columns)})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(params))}) RETURNING {parent_pk})"
        f" INSERT INTO {_table(child)} ({link_column}, {', '.join(child_columns)})"
        f" SELECT {parent_pk}, {', '.join(['%s'] * len(child_params))} FROM parent RETURNING {link_column}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *child_params])
        return cursor.fetchone()[0]


def _insert_many_sql(model: type[Model], rows: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
    conn = connections[DEFAULT_DB_ALIAS]
    all_fields = _fields(model, conn.vendor)
    names = list(rows[0])
    columns = ", ".join(all_fields[name][1] for name in names)
    fields = [(name, all_fields[name][0]) for name in names]
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    params = [field.get_db_prep_save(row[name], conn) for row in rows for name, field in fields]
    return f"INSERT INTO {_table(model)} ({columns}) VALUES {', '.join([row_sql] * len(rows))}", params  # noqa: S608


def _update_sql(model: type[Model], pk: Any, values: dict[str, Any], increment: str) -> tuple[str, list[Any]]:
    conn = connections[DEFAULT_DB_ALIAS]
    fields = _fields(model, conn.vendor)
    assignments, params = [], []
    for name, value in values.items():
        field, column = fields[name]
        assignments.append(f"{column} = %s")
        params.append(field.get_db_prep_save(value, conn) if value is not None else None)
    if increment:
        column = fields[increment][1]
        assignments.append(f"{column} = {column} + 1")
    params.append(pk)
    pk_column = fields[model._meta.pk.name][1]
    return f"UPDATE {_table(model)} SET {', '.join(assignments)} WHERE {pk_column} = %s", params  # noqa: S608


def insert_many(model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all set the same fields, in one statement."""
    if not rows:
        return
    sql, params = _insert_many_sql(model, rows)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def update_by_pk(model: type[Model], pk: Any, values: dict[str, Any], *, increment: str = "") -> int:
    """Update one row by primary key (None values are written as NULL); `increment` names
    an integer field to add one to. Returns the number of rows updated."""
    sql, params = _update_sql(model, pk, values, increment)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def update_and_insert(
    model: type[Model],
    pk: Any,
    values: dict[str, Any],
    *,
    increment: str = "",
    rows_model: type[Model],
    rows: Sequence[dict[str, Any]],
) -> None:
    """Update one row and insert rows of another table, all or nothing.

    On PostgreSQL one statement (the UPDATE in a CTE: one round trip, one commit, no BEGIN
    and COMMIT of their own); elsewhere both in a transaction.
    """
    update_sql, update_params = _update_sql(model, pk, values, increment)
    if not rows:
        with connection.cursor() as cursor:
            cursor.execute(update_sql, update_params)
        return
    insert_sql, insert_params = _insert_many_sql(rows_model, rows)
    if connection.vendor != "postgresql":
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(update_sql, update_params)
            cursor.execute(insert_sql, insert_params)
        return
    with connection.cursor() as cursor:
        cursor.execute(f"WITH updated AS ({update_sql}) {insert_sql}", [*update_params, *insert_params])
