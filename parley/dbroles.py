"""The two database roles Parley runs with.

* the **owner** owns the database, ``public`` and every tenant schema; it runs
  migrations and tenant provisioning (clone) and nothing else;
* the **app** role is what web and workers use; it owns nothing, cannot CREATE
  schemas or TEMP tables, and gets DML on tables only through the owner's
  default privileges. It therefore cannot disable a trigger or drop a table.

See ``docs/security-model.md`` and shared/NOTES-db-roles.md for the findings
this follows. Bootstrapping needs a superuser once; after that the superuser is
never used by the application.
"""

from __future__ import annotations

from dataclasses import dataclass

import dj_database_url
import psycopg
from psycopg import sql


@dataclass(frozen=True)
class RoleNames:
    owner: str = "parley_owner"
    app: str = "parley_app"


def dsn_from_url(url: str) -> str:
    """A libpq connection string from a ``postgres://`` URL (socket hosts included)."""
    parsed = dj_database_url.parse(url)
    return psycopg.conninfo.make_conninfo(
        dbname=parsed["NAME"],
        user=parsed["USER"],
        host=parsed["HOST"] or None,
        port=parsed["PORT"] or None,
        password=parsed["PASSWORD"] or None,
    )


def _role_exists(cur: psycopg.Cursor, name: str) -> bool:
    cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
    return cur.fetchone() is not None


def bootstrap_database(
    *,
    superuser_dsn: str,
    dbname: str,
    roles: RoleNames = RoleNames(),  # noqa: B008 - frozen dataclass
    owner_password: str | None = None,
    app_password: str | None = None,
    recreate: bool = False,
) -> bool:
    """Create the roles and the database with the grants described above.

    Idempotent. Returns True when the database was created by this call.
    """
    created = False
    with psycopg.connect(superuser_dsn, autocommit=True) as conn, conn.cursor() as cur:
        for name, password in ((roles.owner, owner_password), (roles.app, app_password)):
            if not _role_exists(cur, name):
                cur.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT").format(sql.Identifier(name)))
            if password:
                cur.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(name), sql.Literal(password)
                    )
                )
        # The app role must never be able to create anything, anywhere.
        cur.execute(
            sql.SQL("ALTER ROLE {} NOCREATEDB NOCREATEROLE NOSUPERUSER").format(
                sql.Identifier(roles.app)
            )
        )
        if recreate:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
            )
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname])
        if cur.fetchone() is None:
            cur.execute(
                sql.SQL("CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0").format(
                    sql.Identifier(dbname), sql.Identifier(roles.owner)
                )
            )
            created = True

    db_dsn = psycopg.conninfo.make_conninfo(superuser_dsn, dbname=dbname)
    with psycopg.connect(db_dsn, autocommit=True) as conn, conn.cursor() as cur:
        owner, app, db = (sql.Identifier(x) for x in (roles.owner, roles.app, dbname))
        cur.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(owner))
        cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
        cur.execute(sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM {}").format(db, app))
        cur.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, app))
        cur.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        # Default privileges must be set *as the owner*: they apply to objects
        # the owner creates later, by migration or by clone.
        cur.execute(sql.SQL("SET ROLE {}").format(owner))
        cur.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(app))
        cur.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT USAGE ON SCHEMAS TO {}").format(
                owner, app
            )
        )
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
            ).format(owner, app)
        )
        cur.execute(
            sql.SQL(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT USAGE, SELECT ON SEQUENCES TO {}"
            ).format(owner, app)
        )
        cur.execute(sql.SQL("RESET ROLE"))
    return created


def grant_app_access(cursor, *, schema: str, app_role: str) -> None:
    """Re-apply the app role's grants on one schema (owner connection).

    Default privileges cover everything the owner creates, but objects created
    before the default privileges existed, or by a superuser, would be missed:
    this makes the state explicit and is safe to run any number of times.
    """
    schema_id, app = sql.Identifier(schema), sql.Identifier(app_role)
    cursor.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, app))
    cursor.execute(
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(
            schema_id, app
        )
    )
    cursor.execute(
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema_id, app)
    )
    revoke_append_only(cursor, schema=schema, app_role=app_role)


# Append-only tables: the app role may read and insert, never change or remove.
# (Audit events get their seq and hashes from audit_seal(), a SECURITY DEFINER
# function owned by the owner role: the app role needs no UPDATE for that.)
APPEND_ONLY_TABLES = ("audit_auditevent", "tenants_auditanchor")


def revoke_append_only(cursor, *, schema: str, app_role: str) -> None:
    """Take UPDATE, DELETE, TRUNCATE, REFERENCES and TRIGGER on append-only tables
    from the app role. Must follow every clone and migrate: a cloned table gets
    the owner's default privileges (full DML) again."""
    app = sql.Identifier(app_role)
    for table in APPEND_ONLY_TABLES:
        cursor.execute("SELECT to_regclass(%s)", [f'"{schema}".{table}'])
        if cursor.fetchone()[0] is None:
            continue
        cursor.execute(
            sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {}.{} FROM {}").format(
                sql.Identifier(schema), sql.Identifier(table), app
            )
        )
