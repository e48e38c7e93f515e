"""Copy each chain head into the public schema (beat, every few minutes)."""

from __future__ import annotations

from django.db import connection
from psycopg import sql

from tenants.models import PUBLIC_SCHEMA, AuditAnchor, Tenant


def chain_head(schema: str) -> tuple[int, str] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL(
                "SELECT seq, hash FROM {}.audit_auditevent WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1"
            ).format(sql.Identifier(schema))
        )
        return cursor.fetchone()


def anchor_all() -> int:
    """Anchor the head of public and of every active tenant; returns how many were new."""
    connection.set_schema_to_public()
    schemas = [
        PUBLIC_SCHEMA,
        *Tenant.objects.businesses()
        .filter(status__in=[Tenant.Status.ACTIVE, Tenant.Status.SUSPENDED])
        .values_list("schema_name", flat=True),
    ]
    created = 0
    for schema in schemas:
        head = chain_head(schema)
        if head is None:
            continue
        _, was_created = AuditAnchor.objects.get_or_create(
            schema_name=schema, seq=head[0], defaults={"hash": head[1]}
        )
        created += int(was_created)
    return created
