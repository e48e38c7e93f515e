"""Session set-up: a fresh test database with both roles, migrated as the owner,
with two tenants (acme, globex) that each have one user per role (acme has a
second agent), and a platform operator. Tests run as the app role inside a
transaction that is rolled back; what the session created stays committed so
that real worker and server processes can see it.
"""

from __future__ import annotations

import contextlib
import functools

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from parley.dbroles import RoleNames, bootstrap_database, dsn_from_url
from tenants.migrating import migrate_all
from tenants.models import Tenant
from tenants.services import tenant_create
from tests import support


def _seed() -> None:
    migrate_all(log=lambda _msg: None)
    User = get_user_model()
    with schema_context("public"):
        operator = User(username="operator", email="operator@parley.test", is_staff=True)
        operator.set_password(support.PASSWORD)
        operator.save()
    for slug, domain in support.TENANTS.items():
        tenant_create(slug=slug, name=slug.title(), domain=domain, owner_email=f"owner@{slug}.test")
        with tenant_context(Tenant.objects.get(slug=slug)):
            emails = [f"{role}@{slug}.test" for role in support.ROLES]
            if slug == "acme":
                emails.append("agent2@acme.test")
            for email in emails:
                role = email.split("@")[0].rstrip("0123456789")
                user = User.objects.filter(email=email).first() or User(username=email, email=email)
                user.role = role
                user.set_password(support.PASSWORD)
                user.save()


def _no_durable_commits(dbname: str) -> None:
    """The test database (only it: django_db_setup refuses a name without ``test_``) does
    not wait for the WAL to reach the disk on commit. A commit is still atomic and
    visible to every other connection at once; what it gives up is surviving a crash of
    the PostgreSQL server, which a database recreated on each run does not need. The
    development and production databases keep PostgreSQL's default (``on``)."""
    with connection.cursor() as cursor:
        quoted = connection.ops.quote_name(dbname)
        cursor.execute(f"ALTER DATABASE {quoted} SET synchronous_commit = off")
    connection.close()  # the next connection (and every process's) starts with it


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    superuser = support._env("DATABASE_SUPERUSER_URL")
    dbname = settings.DATABASES["default"]["NAME"]
    if not dbname.startswith("test_"):
        # Fail closed: this fixture drops and recreates the database.
        pytest.exit(
            f"refusing to recreate database {dbname!r}: run the suite with parley.settings_test "
            "(make test does)",
            returncode=3,
        )
    # The test Redis database (never the development one): no stale queues,
    # heartbeats or sign-in counters from an earlier run.

    assert settings.REDIS_URL.rstrip("/").rsplit("/", 1)[-1] != "0", (
        "tests must not use Redis database 0"
    )
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    with django_db_blocker.unblock():
        if superuser:
            dsn = dsn_from_url(superuser)
            bootstrap_database(
                superuser_dsn=dsn,
                dbname=dbname,
                roles=RoleNames(
                    owner=settings.PARLEY_DB_OWNER_ROLE, app=settings.PARLEY_DB_APP_ROLE
                ),
                recreate=True,
            )
        with support.owner_role():
            _no_durable_commits(dbname)
            _seed()
        connection.close()
    yield


@pytest.fixture(autouse=True)
def _public_schema_first(request):
    """Each test starts in the public schema, whatever the last request left."""
    if "django_db_setup" in request.fixturenames or request.node.get_closest_marker("django_db"):
        connection.set_schema_to_public()
    yield


@functools.cache
def _outbound_state_client(url: str) -> redis.Redis:
    # One client (and its pooled connection) for the session: a new one per test
    # cost a connection set-up each time, ~1.5 ms × every test.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5)


@pytest.fixture(autouse=True)
def _fresh_outbound_state():
    """No circuit left open and no rate bucket left spent by an earlier test whose
    local server had the same port (parley.outbound keeps both in Redis)."""
    with contextlib.suppress(redis.exceptions.RedisError):  # tests that stop Redis
        client = _outbound_state_client(settings.REDIS_URL)
        keys = list(client.scan_iter("parley:outbound:*", count=1000))
        if keys:
            client.delete(*keys)
    yield


@pytest.fixture
def as_owner(django_db_setup):
    with support.owner_role():
        yield


@pytest.fixture
def owner_db(as_owner, db):
    """A rolled-back test transaction on an owner-role connection (for DDL)."""
    yield


@pytest.fixture
def acme(db):
    return Tenant.objects.get(slug="acme")


@pytest.fixture
def globex(db):
    return Tenant.objects.get(slug="globex")


@pytest.fixture(scope="session")
def default_worker(django_db_setup):
    worker = support.Worker("default").start()
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def provisioning_worker(django_db_setup):
    worker = support.Worker("provisioning", role="owner").start()
    yield worker
    worker.stop()
