"""Step-up guards the sensitive actions: with a code older than 5 minutes each
one detours to the step-up page (pages) or answers 403 step_up_required (API),
and nothing happens."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db

TENANT_ACTIONS = [
    ("owner", "/audit/export/", {"format": "jsonl"}, "audit.exported"),
    ("owner", "/settings/security/rotate/", {}, "key.rotated"),
    ("owner", "/settings/security/rotate-token-key/", {}, "key.token_signing_rotated"),
    (
        "integrator",
        "/connectors/credentials/",
        {"name": "x", "kind": "api_key", "connector": "hubspot", "secret": "s3cret-value-123"},
        "credential.set",
    ),
    ("owner", "/users/invite/", {"email": "stale@acme.test", "role": "agent"}, "user.created"),
    ("owner", "/settings/mfa/", {"mfa_roles": ["agent"]}, "security.policy_changed"),
    ("admin", "/bots/hosts/", {"host": "api.example.com"}, "bot_host.added"),
]


@pytest.mark.parametrize(("role", "path", "data", "action"), TENANT_ACTIONS)
def test_a_stale_session_takes_the_detour(acme, role, path, data, action):
    with tenant_context(acme):
        before = AuditEvent.objects.filter(action=action).count()
    client = support.signed_in(acme, f"{role}@acme.test", step_up=False)
    response = client.post(path, data)
    assert response.status_code == 302 and response["Location"].startswith("/mfa/step-up/")
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action=action).count() == before


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/api/v1/audit/exports/", {"format": "jsonl"}),
        (
            "/api/v1/credentials/",
            {"name": "x", "kind": "api_key", "connector": "hubspot", "secret": "s3cret-value-123"},
        ),
        ("/api/v1/users/", {"email": "stale@acme.test", "role": "agent"}),
        ("/api/v1/bot-hosts/", {"host": "api.example.com"}),
    ],
)
def test_the_api_answers_step_up_required(acme, path, data):
    client = support.signed_in(acme, "owner@acme.test", step_up=False)
    response = client.post(path, data, content_type="application/json")
    assert response.status_code == 403 and response.json()["code"] == "step_up_required"


@pytest.mark.parametrize("path", ["/tenants/globex/suspend/", "/tenants/globex/offboard/"])
def test_suspension_and_offboarding_need_step_up(globex, path):
    client = support.signed_in(None, "operator", step_up=False)
    response = client.post(path, {"reason": "x", "confirm": "globex"})
    assert response.status_code == 302 and response["Location"].startswith("/mfa/step-up/")
    globex.refresh_from_db()
    assert globex.status == "active"
