"""Host resolution fails closed; suspended tenants are refused everywhere."""

from __future__ import annotations

import pytest

from tenants.services import tenant_reactivate, tenant_suspend
from tests import support

pytestmark = pytest.mark.django_db


def test_it_answers_404_for_an_unknown_host():
    client = support.tenant_client("acme")
    for host in ("nope.localhost", "acme.localhost.evil.localhost", "tenant-template.localhost"):
        response = client.get("/login/", HTTP_HOST=host)
        assert response.status_code == 404, host
    assert client.get("/api/v1/me/", HTTP_HOST="nope.localhost").status_code == 404


def test_it_answers_404_for_a_host_outside_the_platform_domain():
    response = support.tenant_client("acme").get("/login/", HTTP_HOST="acme.example.org")
    assert response.status_code == 404


def test_it_serves_the_tenant_login_and_console_login():
    page = support.tenant_client("acme").get("/login/")
    assert page.status_code == 200 and "Sign in to Acme" in page.content.decode()
    console = support.console_client().get("/login/")
    assert console.status_code == 200 and "Platform console" in console.content.decode()


def test_it_refuses_a_suspended_tenant_with_403_and_410(acme):
    tenant_suspend(tenant=acme, reason="test")
    client = support.tenant_client("acme")
    page = client.get("/login/")
    assert page.status_code == 403
    assert "This workspace is suspended" in page.content.decode()
    api = client.get("/api/v1/me/")
    assert api.status_code == 403 and api.json() == {
        "code": "tenant_suspended",
        "detail": "This workspace is suspended.",
    }
    assert client.post("/webhooks/whatsapp/", data={}).status_code == 410
    # The other tenant is untouched.
    assert support.tenant_client("globex").get("/login/").status_code == 200

    tenant_reactivate(tenant=acme)
    assert client.get("/login/").status_code == 200


def test_it_sets_security_headers():
    response = support.tenant_client("acme").get("/login/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert len(response["X-Request-ID"]) >= 8
