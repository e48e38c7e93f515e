"""Migrating the public schema, the template and every tenant, skipping no-ops.

``migrate_schemas`` runs Django's full ``migrate`` in every schema even when
nothing is pending, which costs a fraction of a second per schema: minutes
across thousands of tenants. Here each schema's ``django_migrations`` is
compared with the migration graph first, and ``migrate`` runs only in schemas
that are behind.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.clone import CloneSchema
from django_tenants.utils import schema_exists
from psycopg import sql

from tenants.models import PUBLIC_SCHEMA, Domain, Tenant


def expected_migrations() -> set[tuple[str, str]]:
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    return set(loader.graph.nodes)


def applied_migrations(schema: str) -> set[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = 'django_migrations'",
            [schema],
        )
        if cursor.fetchone() is None:
            return set()
        cursor.execute(
            sql.SQL("SELECT app, name FROM {}.django_migrations").format(sql.Identifier(schema))
        )
        return {(app, name) for app, name in cursor.fetchall()}


def schemas_behind(schemas: list[str]) -> list[str]:
    expected = expected_migrations()
    return [schema for schema in schemas if not expected <= applied_migrations(schema)]


def ensure_platform_rows() -> None:
    """The public tenant (bare domain) and the template tenant (no domain)."""
    public, _ = Tenant.objects.get_or_create(
        schema_name=PUBLIC_SCHEMA,
        defaults={"slug": "public", "name": "Parley platform", "status": Tenant.Status.ACTIVE},
    )
    Domain.objects.get_or_create(
        domain=settings.PARLEY_BASE_DOMAIN, defaults={"tenant": public, "is_primary": True}
    )
    Tenant.objects.get_or_create(
        schema_name=settings.TENANT_BASE_SCHEMA,
        defaults={
            "slug": "template",
            "name": "Tenant template",
            "is_template": True,
            "status": Tenant.Status.ACTIVE,
        },
    )


def _ensure_tenant_keys(schemas: list[str]) -> None:
    """Tenants created before the keyring (or one of its key purposes) existed get their keys."""
    from parley.keyring.keys import ensure_keys
    from parley.models import WrappedKey

    active = set(WrappedKey.objects.filter(state="active").values_list("schema_name", "purpose"))
    for schema in schemas:
        if any((schema, purpose) not in active for purpose in WrappedKey.Purpose.values):
            ensure_keys(schema)


def migrate_all(*, log: Callable[[str], None] = print, verbosity: int = 0) -> dict:
    if settings.PARLEY_DB_ROLE != "owner":
        raise RuntimeError("Migrations need the owner role: run with PARLEY_DB_ROLE=owner.")
    connection.set_schema_to_public()
    result = {"public": False, "template": False, "tenants_migrated": 0, "tenants_checked": 0}
    if schemas_behind([PUBLIC_SCHEMA]):
        log("Migrating the public schema…")
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=verbosity)
        result["public"] = True
    ensure_platform_rows()
    # (Re)install django-tenants' clone_schema() function once per deploy, so
    # provisioning only calls it (the library would re-create it on every clone).
    CloneSchema()._create_clone_schema_function()
    template = settings.TENANT_BASE_SCHEMA
    if not schema_exists(template):
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(template)))
    if schemas_behind([template]):
        log(f"Migrating the template schema {template}…")
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=template,
            interactive=False,
            verbosity=verbosity,
        )
        result["template"] = True
    schemas = list(
        Tenant.objects.businesses()
        .exclude(status=Tenant.Status.PROVISIONING)
        .values_list("schema_name", flat=True)
    )
    schemas = [s for s in schemas if schema_exists(s)]
    result["tenants_checked"] = len(schemas)
    behind = schemas_behind(schemas)
    for index, schema in enumerate(behind, 1):
        log(f"Migrating tenant schema {schema} ({index}/{len(behind)})…")
        call_command(
            "migrate_schemas",
            tenant=True,
            schema_name=schema,
            interactive=False,
            verbosity=verbosity,
        )
    result["tenants_migrated"] = len(behind)
    # public too: the operators' TOTP keys are sealed with its credential key.
    _ensure_tenant_keys([PUBLIC_SCHEMA, *schemas])
    connection.set_schema_to_public()
    return result
