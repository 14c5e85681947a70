"""The database around CRM calls, and the one hand-written INSERT the log claims need.

`connection_release_before_crm_call` keeps CRM round trips out of transactions and gives
pooled connections back while a CRM answers. `insert_returning_pk` builds the conditional
`INSERT ... SELECT ... WHERE ... ON CONFLICT DO NOTHING RETURNING` that claims a log row
in one statement on PostgreSQL and SQLite (the ORM cannot express it): the claim that
concurrency depends on. Each value is prepared by its model field (`get_db_prep_save`),
so encodings, JSON and time zones are exactly as the ORM writes them. Everything else
writes through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
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
