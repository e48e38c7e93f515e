"""`manage.py tenant_create`: the happy path, and every bad input creates nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from tenants.models import Domain, Tenant


def _schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace")
        return {row[0] for row in cursor.fetchall()}


def _state():
    return Tenant.objects.count(), Domain.objects.count(), _schemas()


def _create(**overrides):
    args = {
        "slug": "initech",
        "name": "Initech",
        "domain": "initech.localhost",
        "owner_email": "boss@initech.test",
    }
    args.update(overrides)
    out = StringIO()
    call_command(
        "tenant_create",
        f"--slug={args['slug']}",
        f"--name={args['name']}",
        f"--domain={args['domain']}",
        f"--owner-email={args['owner_email']}",
        stdout=out,
    )
    return out.getvalue()


def test_it_creates_the_tenant_domain_schema_and_owner(owner_db):
    output = _create()
    tenant = Tenant.objects.get(slug="initech")
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.schema_name == "t_initech"
    assert schema_exists("t_initech")
    assert Domain.objects.get(domain="initech.localhost").tenant == tenant
    with tenant_context(tenant):
        owner = get_user_model().objects.get(email="boss@initech.test")
        assert owner.role == "owner"
        assert not owner.has_usable_password()
        assert get_user_model().objects.count() == 1  # nothing copied from other tenants
    assert "Created tenant initech" in output
    assert "http://initech.localhost:8000/accounts/activate/" in output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"slug": "acme"}, "The slug 'acme' is taken."),
        ({"slug": "Bad_Slug!"}, "Invalid slug 'Bad_Slug!'"),
        ({"slug": "a"}, "Invalid slug 'a'"),
        ({"slug": "ends-with-"}, "Invalid slug"),
        ({"slug": "public"}, "The slug 'public' is reserved."),
        ({"slug": "www"}, "The slug 'www' is reserved."),
        ({"slug": "api"}, "The slug 'api' is reserved."),
        ({"slug": "admin"}, "The slug 'admin' is reserved."),
        ({"slug": "static"}, "The slug 'static' is reserved."),
        ({"domain": "acme.localhost"}, "The domain 'acme.localhost' is taken."),
        ({"domain": "not a domain"}, "Invalid domain 'not a domain'"),
        ({"domain": "initech.localhost:8000"}, "without port"),
        ({"domain": "https://initech.localhost"}, "without port, scheme or path"),
        ({"domain": "-bad.localhost"}, "Invalid domain"),
        ({"domain": "localhost"}, "Invalid domain"),
        ({"domain": "admin.localhost"}, "The host name 'admin' is reserved."),
        ({"domain": "10.0.0.1"}, "An IP address cannot be a tenant domain."),
        ({"owner_email": "not-an-email"}, "Invalid owner e-mail 'not-an-email'."),
        ({"name": "   "}, "The name must have 1 to 120 characters."),
    ],
)
def test_it_refuses_bad_input_and_creates_nothing(owner_db, overrides, message):
    before = _state()
    with pytest.raises(CommandError) as excinfo:
        _create(**overrides)
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("Tenant not created:")
    assert _state() == before


def test_it_rolls_everything_back_when_the_clone_fails(owner_db):
    with connection.cursor() as cursor:
        cursor.execute("ALTER SCHEMA tenant_template RENAME TO tenant_template_gone")
    before = _state()
    with pytest.raises(RuntimeError, match="template schema 'tenant_template' does not exist"):
        _create()
    assert _state() == before
    assert not Tenant.objects.filter(slug="initech").exists()


def test_it_refuses_to_run_as_the_app_role(db):
    before = _state()
    with pytest.raises(CommandError, match="needs the database owner role"):
        _create()
    assert _state() == before


def test_it_lists_tenants(db):
    out = StringIO()
    call_command("tenant_list", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:3] == ["SLUG", "STATUS", "DOMAINS"]
    assert any(
        line.startswith("acme ") and "acme.localhost" in line and "active" in line for line in lines
    )
    assert not any(line.startswith(("public", "template")) for line in lines)


def test_it_suspends_and_reactivates_from_the_command_line(db):
    out = StringIO()
    call_command("tenant_suspend", "globex", "--reason", "unpaid invoice", stdout=out)
    tenant = Tenant.objects.get(slug="globex")
    assert tenant.status == Tenant.Status.SUSPENDED and tenant.status_reason == "unpaid invoice"
    with pytest.raises(CommandError, match="Only an active tenant can be suspended"):
        call_command("tenant_suspend", "globex", stdout=out)
    call_command("tenant_reactivate", "globex", stdout=out)
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.ACTIVE
    with pytest.raises(CommandError, match="No tenant with slug 'nope'"):
        call_command("tenant_suspend", "nope", stdout=out)
    with pytest.raises(CommandError, match="No tenant with slug 'public'"):
        call_command("tenant_suspend", "public", stdout=out)
