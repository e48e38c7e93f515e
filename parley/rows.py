"""Rows read with hand-written SQL, turned into model instances (kernel).

The message path (webhook → worker → reply) runs a few statements per message
thousands of times a minute; there Django's query compiler costs more CPU than
PostgreSQL does. These helpers let such a statement be written out once (cached)
and still hand back ordinary model instances: each column goes through its
field's database converter (a JSON column arrives as text), and ``Model.from_db``
builds the instance, so the fields not selected stay deferred (read on access).
The busiest of them (every webhook's) run through :func:`prepared_cursor`, so
PostgreSQL parses and plans them once per connection; the webhook's two also name
their tenant's schema (:func:`tenant_table`), which spares them django-tenants'
``SET search_path``.
"""

from __future__ import annotations

import contextlib
import functools
import re

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.base import ServerBindingCursor
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


def columns(model, names) -> str:
    """``"table"."col", …`` for ``names`` (attnames) of ``model``, in that order."""
    table = connection.ops.quote_name(model._meta.db_table)
    return ", ".join(f"{table}.{connection.ops.quote_name(name)}" for name in names)


def all_fields(model) -> tuple[str, ...]:
    """Every concrete field's attname, in the model's order (what ``from_db`` expects)."""
    return tuple(f.attname for f in model._meta.concrete_fields)


@functools.cache
def _converters(model, names: tuple[str, ...]) -> tuple:
    fields = {f.attname: f for f in model._meta.concrete_fields}
    return tuple(getattr(fields[name], "from_db_value", None) for name in names)


def from_row(model, names: tuple[str, ...], values):
    """A model instance from raw column values (``names`` in the model's field order),
    through each field's database converter."""
    out = [
        convert(value, None, connection) if convert is not None and value is not None else value
        for convert, value in zip(_converters(model, names), values, strict=True)
    ]
    return model.from_db(connection.alias, names, out)


class _Preparing(ServerBindingCursor):
    """Server-side binding, and each statement with parameters prepared on its first use
    on a connection (one without, such as django-tenants' ``SET search_path``, is not)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        if prepare is None:
            # Not the SET: one text per tenant, they would crowd the connection's
            # cache of prepared statements (psycopg keeps 100, dropping the oldest).
            prepare = bool(params)
        return super().execute(query, params, prepare=prepare, binary=binary)

    def _send_query_prepared(self, name, pgq, *, binary=None):
        # psycopg keeps the statement it sent for unprepared sends only; Django's query
        # log (DEBUG, the tests' statement counts) reads it from here.
        self._query = pgq
        super()._send_query_prepared(name, pgq, binary=binary)


_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}", re.ASCII)


def tenant_table(model, schema: str) -> str:
    """``"schema"."table"`` of ``model`` in a tenant's ``schema`` (``connection.schema_name``).

    For statements run through ``prepared_cursor(own_schema=True)``: they name their
    schema, so they need no ``SET search_path``. The name is written into SQL text,
    so only the shape Parley gives schemas passes (``t_<slug>``, ``public``, the
    template's): ASCII lowercase letters, digits and underscores."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError("Not a valid schema name.")
    q = connection.ops.quote_name
    return f"{q(schema)}.{q(model._meta.db_table)}"


@contextlib.contextmanager
def prepared_cursor(*, own_schema: bool = False):
    """A cursor of the current connection whose statements PostgreSQL parses and plans once.

    For the few written-out statements every webhook runs: prepared, they cost
    PostgreSQL about half the CPU (measured in docs/scaling.md). Django's cursor
    wrapper still runs them (query logging, execute wrappers, error translation).
    A prepared statement belongs to its connection; PostgreSQL plans it again when
    ``search_path`` has changed since its last use (another tenant) or a table it
    reads has changed (a migration), so it never reads another tenant's tables.
    Behind PgBouncer, session pooling only (docs/deployment.md), as django-tenants
    already requires.

    By default django-tenants sets the tenant's ``search_path`` first, as for any
    cursor. ``own_schema=True``: every table the statements name is qualified with
    its schema (:func:`tenant_table`), so the cursor is made without that ``SET``,
    one round trip fewer (the webhook's two statements would otherwise pay it on
    every event: its tenant lookup left the connection on ``public``). The
    connection's ``search_path`` is left as it was and django-tenants still knows
    it is not the tenant's, so the next ordinary cursor sets it. Such statements
    differ per tenant, so a connection keeps one prepared copy per tenant it served
    (psycopg keeps the 100 most recent).
    """
    connection.ensure_connection()
    raw = connection.connection
    # Django opens connections with preparing off (None) for transaction poolers;
    # its own cursors bind client-side and never prepare whatever this says, so
    # turning it on affects the cursors made here only.
    if raw.prepare_threshold is None:
        raw.prepare_threshold = 5
    factory, raw.cursor_factory = raw.cursor_factory, _Preparing
    try:
        if own_schema:
            # Django's own cursor (health check, wrapping, logging), without the
            # SET search_path django-tenants' _cursor adds to it.
            cursor = super(TenantDatabaseWrapper, connections[DEFAULT_DB_ALIAS])._cursor()
        else:
            cursor = connection.cursor()
    finally:
        raw.cursor_factory = factory
    with cursor:
        yield cursor
