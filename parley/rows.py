"""Rows read with hand-written SQL, turned into model instances (kernel).

The message path (webhook → worker → reply) runs a few statements per message
thousands of times a minute; there Django's query compiler costs more CPU than
PostgreSQL does. These helpers let such a statement be written out once (cached)
and still hand back ordinary model instances: each column goes through its
field's database converter (a JSON column arrives as text), and ``Model.from_db``
builds the instance, so the fields not selected stay deferred (read on access).
"""

from __future__ import annotations

import functools

from django.db import connection


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
