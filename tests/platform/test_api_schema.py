"""The OpenAPI schema and its docs page work offline and under the CSP."""

from __future__ import annotations

import pytest

from tests import support

pytestmark = pytest.mark.django_db


def test_it_serves_the_schema_with_every_endpoint():
    response = support.tenant_client("acme").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/v1/me/",
        "/api/v1/users/",
        "/api/v1/audit/events/",
        "/api/v1/audit/exports/",
    } <= set(paths)


def test_it_serves_the_docs_page_without_any_cdn():
    page = support.tenant_client("acme").get("/api/docs/")
    body = page.content.decode()
    assert page.status_code == 200
    assert "cdn." not in body and "/static/drf_spectacular_sidecar/" in body
    assert "script-src 'self';" in page["Content-Security-Policy"]
