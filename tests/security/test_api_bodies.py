"""Every API operation that takes a JSON body refuses one carrying text the database
cannot hold (a NUL, a lone surrogate) with 400 ``invalid``: the checks sit in the
API's default parser, so an endpoint added later gets them without doing anything.
Generated from the OpenAPI schema, like the role matrix."""

from __future__ import annotations

import json
import re

import pytest

from tests import support

pytestmark = pytest.mark.django_db

HOSTILE = {"\x00": "NUL", "\ud800": "lone surrogate"}


def _operations():
    response = support.tenant_client("acme").get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    out = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            content = (operation.get("requestBody") or {}).get("content", {})
            if method in ("post", "put", "patch") and "application/json" in content:
                out.append((method, path, operation.get("operationId", "")))
    return out


def test_the_schema_has_operations_with_json_bodies():
    ops = _operations()
    assert len(ops) >= 5, ops
    assert ("post", "/api/v1/conversations/{conversation_id}/messages/", "") in {
        (m, p, "") for m, p, _ in ops
    }


@pytest.mark.parametrize("char", list(HOSTILE), ids=list(HOSTILE.values()))
def test_every_json_body_with_unstorable_text_is_refused(acme, char):
    owner = support.signed_in(acme, "owner@acme.test")
    checked = []
    for method, path, op in _operations():
        # Ids that exist or not: the parser refuses the body before the view looks.
        url = re.sub(r"\{[^}]+\}", "1", path)
        body = json.dumps({"name": f"x{char}", "body": char, f"k{char}": 1}).encode(
            "utf-8", "surrogatepass"
        )
        response = getattr(owner, method)(url, data=body, content_type="application/json")
        assert response.status_code < 500, (method, path, response.content[:200])
        # 404 (no such object, checked before the body), 403/401 (the token endpoints
        # and step-up), 429 (rate limits) stop earlier; anything that read the body says 400.
        if response.status_code not in (401, 403, 404, 405, 429):
            assert response.status_code == 400, (method, path, response.status_code)
            assert response.json()["code"] in ("invalid", "parse_error"), (op, response.json())
            checked.append(op or path)
    assert len(checked) >= 5, checked
