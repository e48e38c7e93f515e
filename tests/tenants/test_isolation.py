"""Rows of tenant A are invisible from tenant B: ORM, pages, API."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from tests import support

pytestmark = pytest.mark.django_db


def _make_marker_user(tenant, email="marker@acme.test"):
    with tenant_context(tenant):
        return get_user_model().objects.create_user(username=email, email=email, role="agent")


def _login(client, tenant, email):
    support.signed_in(tenant, email, client=client)


def test_it_keeps_rows_out_of_the_other_tenants_orm(acme, globex):
    _make_marker_user(acme)
    with tenant_context(globex):
        assert not get_user_model().objects.filter(email="marker@acme.test").exists()
        assert get_user_model().objects.filter(email__endswith="@acme.test").count() == 0
    with tenant_context(acme):
        assert get_user_model().objects.filter(email="marker@acme.test").exists()


def test_it_keeps_rows_out_of_the_other_tenants_pages(acme, globex):
    _make_marker_user(acme)
    acme_admin = support.tenant_client("acme")
    _login(acme_admin, acme, "admin@acme.test")
    assert "marker@acme.test" in acme_admin.get("/users/").content.decode()

    globex_admin = support.tenant_client("globex")
    _login(globex_admin, globex, "admin@globex.test")
    page = globex_admin.get("/users/").content.decode()
    assert "marker@acme.test" not in page
    assert "@acme.test" not in page
    assert "admin@globex.test" in page


def test_it_keeps_rows_out_of_the_other_tenants_api(acme, globex):
    _make_marker_user(acme)
    acme_admin = support.tenant_client("acme")
    _login(acme_admin, acme, "admin@acme.test")
    emails = {u["email"] for u in acme_admin.get("/api/v1/users/").json()["results"]}
    assert "marker@acme.test" in emails

    globex_admin = support.tenant_client("globex")
    _login(globex_admin, globex, "admin@globex.test")
    response = globex_admin.get("/api/v1/users/")
    assert response.status_code == 200
    emails = {u["email"] for u in response.json()["results"]}
    assert emails and all(e.endswith("@globex.test") for e in emails)


def test_it_ignores_a_session_of_tenant_a_at_tenant_b(acme):
    client = support.tenant_client("acme")
    _login(client, acme, "admin@acme.test")
    assert client.get("/api/v1/me/").status_code == 200
    # Same cookie jar, other tenant's host: that session does not exist there.
    response = client.get("/api/v1/me/", HTTP_HOST="globex.localhost")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    page = client.get("/users/", HTTP_HOST="globex.localhost")
    assert page.status_code == 302 and "/login/" in page["Location"]


def test_it_has_no_foreign_key_from_a_tenant_schema_to_another_schema(acme):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT con.conname, src.relname, dst_ns.nspname, dst.relname
            FROM pg_constraint con
            JOIN pg_class src ON src.oid = con.conrelid
            JOIN pg_class dst ON dst.oid = con.confrelid
            JOIN pg_namespace dst_ns ON dst_ns.oid = dst.relnamespace
            WHERE con.contype = 'f' AND con.connamespace = %s::regnamespace
              AND dst.relnamespace <> con.connamespace
            """,
            [acme.schema_name],
        )
        crossing = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace = %s::regnamespace",
            [acme.schema_name],
        )
        total = cursor.fetchone()[0]
    assert total > 0  # the query does see the tenant's own foreign keys
    assert crossing == []
