"""The events the foundation records: sign-in/out, tenants, users and roles, refusals."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from django_tenants.utils import schema_context, tenant_context

from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db


def _last(schema_or_tenant, **filters) -> AuditEvent:
    context = (
        tenant_context(schema_or_tenant)
        if not isinstance(schema_or_tenant, str)
        else schema_context(schema_or_tenant)
    )
    with context:
        return AuditEvent.objects.filter(**filters).order_by("-id").first()


def test_it_records_sign_in_failures_successes_and_sign_out(acme):
    client = support.tenant_client("acme")
    client.post(
        "/login/",
        {"username": "agent@acme.test", "password": "wrong"},
        HTTP_USER_AGENT="pytest-agent",
    )
    failed = _last(acme, action="auth.login.failed")
    assert failed.outcome == "failed" and failed.details == {"username": "agent@acme.test"}
    assert (
        failed.ip == "127.0.0.1"
        and failed.user_agent == "pytest-agent"
        and len(failed.request_id) >= 8
    )

    client.post("/login/", {"username": "agent@acme.test", "password": support.PASSWORD})
    ok = _last(acme, action="auth.login.succeeded")
    assert (
        ok.actor_kind == "user" and ok.actor_name == "agent@acme.test" and ok.outcome == "allowed"
    )

    client.post("/logout/")
    assert _last(acme, action="auth.logout").actor_name == "agent@acme.test"
    connection.set_schema_to_public()
    assert _last("public", action="auth.login.succeeded", actor_name="agent@acme.test") is None


def test_it_records_operator_sign_in_on_the_platform_chain():
    support.console_client().post("/login/", {"username": "operator", "password": support.PASSWORD})
    event = _last("public", action="auth.login.succeeded")
    assert event.actor_kind == "operator" and event.actor_name == "operator"


def test_it_records_tenant_lifecycle_on_the_platform_chain():
    call_command("tenant_suspend", "globex", "--reason", "unpaid")
    suspended = _last("public", action="tenant.suspended")
    assert suspended.target_id == "globex" and suspended.details == {"reason": "unpaid"}
    assert suspended.actor_kind == "system" and suspended.actor_name.startswith("cli:")
    client = support.console_client()
    support.signed_in(None, "operator", client=client)
    client.post("/tenants/globex/reactivate/")
    reactivated = _last("public", action="tenant.reactivated")
    assert reactivated.actor_kind == "operator" and reactivated.actor_name == "operator"
    assert _last("public", action="tenant.created", target_id="acme") is not None


def test_it_records_user_creation_and_role_changes(acme):
    with tenant_context(acme):
        user = get_user_model().objects.create_user(
            username="new@acme.test", email="new@acme.test", role="agent"
        )
        user.role = "analyst"
        user.save()
        user.is_active = False
        user.save()
    created = _last(acme, action="user.created", target_id=str(user.pk))
    assert created.details["role"] == "agent"
    assert _last(acme, action="user.role_changed").details == {"from": "agent", "to": "analyst"}
    assert _last(acme, action="user.deactivated").target_id == str(user.pk)


def test_it_records_every_refused_request(acme):
    client = support.signed_in(acme, "marketer@acme.test")
    assert client.get("/users/").status_code == 403
    page = _last(acme, action="access.denied")
    assert page.outcome == "denied" and page.details == {"method": "GET", "path": "/users/"}
    assert page.actor_name == "marketer@acme.test"
    assert client.get("/api/v1/users/").status_code == 403
    assert _last(acme, action="access.denied").details["path"] == "/api/v1/users/"
