"""Shared set-up for benchmarks: a database of their own, recreated each run."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))


def _with_db(url: str, db: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def prepare(dbname: str, *, role: str = "owner") -> None:
    """Point settings at a fresh ``dbname`` (embedded services or the given URLs)."""
    from parley import devstack

    services = devstack.read_services_env()
    for key in (
        "DATABASE_URL",
        "DATABASE_OWNER_URL",
        "DATABASE_SUPERUSER_URL",
        "REDIS_URL",
        "PARLEY_AUDIT_SIGNING_KEY_FILE",
    ):
        if not os.environ.get(key) and services.get(key):
            os.environ[key] = services[key]
    superuser = os.environ.get("DATABASE_SUPERUSER_URL")
    if not superuser:
        sys.exit(
            "DATABASE_SUPERUSER_URL is needed to create the benchmark database (embedded mode provides it)."
        )
    from parley.dbroles import bootstrap_database, dsn_from_url

    dsn = dsn_from_url(superuser)
    bootstrap_database(superuser_dsn=dsn, dbname=dbname, recreate=True)
    os.environ["DATABASE_URL"] = _with_db(os.environ["DATABASE_URL"], dbname)
    os.environ["DATABASE_OWNER_URL"] = _with_db(os.environ["DATABASE_OWNER_URL"], dbname)
    os.environ["PARLEY_DB_ROLE"] = role
    os.environ.setdefault("PARLEY_ENV", "test")
    os.environ["DJANGO_SETTINGS_MODULE"] = "parley.settings"
    os.environ.setdefault("PARLEY_LOG_LEVEL", "WARNING")


def migrate_and_create(*slugs: str) -> None:
    """Migrate the benchmark database and provision tenants (owner role)."""
    from django.db import connection

    from tenants.migrating import migrate_all
    from tenants.services import tenant_create

    migrate_all(log=lambda _m: None)
    for slug in slugs:
        tenant_create(
            slug=slug, name=slug.title(), domain=f"{slug}.localhost", owner_email=f"o@{slug}.test"
        )
    connection.close()


def use_role(role: str) -> None:
    """Reconnect the default alias as ``role`` (owner or app)."""
    import dj_database_url
    from django.db import connections
    from django.test import override_settings

    url = os.environ["DATABASE_OWNER_URL" if role == "owner" else "DATABASE_URL"]
    parsed = dj_database_url.parse(url)
    conn = connections["default"]
    conn.close()
    for key in ("USER", "PASSWORD", "HOST", "PORT"):
        conn.settings_dict[key] = parsed.get(key) or ""
    override_settings(PARLEY_DB_ROLE=role).enable()
