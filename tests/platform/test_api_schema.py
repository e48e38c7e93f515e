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


def test_it_documents_the_json_errors_every_operation_can_answer():
    schema = support.tenant_client("acme").get("/api/schema/", HTTP_ACCEPT="application/json")
    public = {"/api/v1/auth/token/", "/api/v1/auth/token/refresh/", "/api/v1/auth/token/revoke/"}
    for path, item in schema.json()["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "429" in responses, (method, path)
            if path not in public:
                assert {"401", "403"} <= set(responses), (method, path)
            if "{" in path:
                assert "404" in responses, (method, path)
                ids = [p for p in operation["parameters"] if p["in"] == "path"]
                assert all(p["schema"].get("minimum") == 0 for p in ids), (method, path)
            if "requestBody" in operation:
                assert {"400", "415"} <= set(responses), (method, path)
            error = responses["429"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}
