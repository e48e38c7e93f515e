"""Token answers are never cached: every response of the token endpoints, issued
or refused, carries ``Cache-Control: no-store`` and ``Pragma: no-cache``."""

from __future__ import annotations

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from accounts.models import SecurityPolicy
from tests import support

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_counters")]

TOKEN, REFRESH, REVOKE = (
    "/api/v1/auth/token/",
    "/api/v1/auth/token/refresh/",
    "/api/v1/auth/token/revoke/",
)


@pytest.fixture
def no_mfa(acme):
    with tenant_context(acme):
        SecurityPolicy.objects.update_or_create(pk=1, defaults={"mfa_roles": []})
    connection.set_schema_to_public()


def _post(path, body):
    return support.tenant_client("acme").post(path, body, content_type="application/json")


def _assert_not_cached(response):
    assert response["Cache-Control"] == "no-store", response.headers
    assert response["Pragma"] == "no-cache"


def test_it_marks_every_token_answer_no_store(acme, no_mfa):
    issued = _post(TOKEN, {"username": "agent@acme.test", "password": support.PASSWORD})
    assert issued.status_code == 200, issued.content
    _assert_not_cached(issued)
    refreshed = _post(REFRESH, {"refresh": issued.json()["refresh"]})
    assert refreshed.status_code == 200, refreshed.content
    _assert_not_cached(refreshed)
    revoked = _post(REVOKE, {"refresh": refreshed.json()["refresh"]})
    assert revoked.status_code == 204
    _assert_not_cached(revoked)


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        (TOKEN, {"username": "agent@acme.test", "password": "wrong-password-1"}, 401),
        (TOKEN, {"username": "agent@acme.test"}, 400),
        (REFRESH, {"refresh": "not-a-token"}, 401),
        (REVOKE, {}, 400),
    ],
)
def test_it_marks_refusals_no_store_too(acme, no_mfa, path, body, status):
    response = _post(path, body)
    assert response.status_code == status, response.content
    _assert_not_cached(response)
