"""Role changes, deactivation, password changes and "sign out everywhere" end
sessions on their next request."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from accounts.revocation import bump, current
from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db


def _signed_in(tenant, email):
    client = support.signed_in(tenant, email)
    return client


def _change(tenant, email, **fields):
    with tenant_context(tenant):
        user = get_user_model().objects.get(email=email)
        for name, value in fields.items():
            setattr(user, name, value)
        user.save()
        # The test transaction never commits: run what on_commit would.

        bump(user.pk)
    connection.set_schema_to_public()


@pytest.mark.parametrize("change", [{"role": "marketer"}, {"is_active": False}])
def test_it_ends_sessions_on_the_next_request_after_a_change(acme, change):
    client = _signed_in(acme, "agent@acme.test")
    other_device = _signed_in(acme, "agent@acme.test")
    assert client.get("/").status_code == 200
    _change(acme, "agent@acme.test", **change)
    for device in (client, other_device):
        page = device.get("/")
        assert page.status_code == 302 and page["Location"].startswith("/login/")
    api = _signed_in(acme, "admin@acme.test")
    _change(acme, "admin@acme.test", role="analyst")
    response = api.get("/api/v1/me/")
    assert response.status_code == 401 and response.json()["code"] == "session_revoked"


def test_it_signs_out_everywhere(acme):
    laptop = _signed_in(acme, "analyst@acme.test")
    phone = _signed_in(acme, "analyst@acme.test")
    assert phone.get("/").status_code == 200
    laptop.post("/accounts/sign-out-everywhere/")
    assert laptop.get("/").status_code == 302
    assert phone.get("/").status_code == 302


def test_it_keeps_other_users_signed_in(acme):
    agent = _signed_in(acme, "agent@acme.test")
    admin = _signed_in(acme, "admin@acme.test")
    _change(acme, "agent@acme.test", role="marketer")
    assert admin.get("/").status_code == 200
    assert agent.get("/").status_code == 302


def test_it_moves_the_epoch_when_a_change_commits(acme, django_capture_on_commit_callbacks):
    with tenant_context(acme):
        user = get_user_model().objects.get(email="marketer@acme.test")
        before = current(user.pk)
        with django_capture_on_commit_callbacks(execute=True):
            user.role = "agent"
            user.save()
        assert current(user.pk) > before
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            user.first_name = "Mara"
            user.save()
        # A harmless change ends nothing (its audit event is sealed, that is all).
        assert [c for c in callbacks if "_end_sessions_on_change" in c.__qualname__] == []


@pytest.mark.parametrize("stale", ["parley_session_seen", "parley_session_started"])
def test_it_ends_idle_and_too_old_sessions(acme, stale):
    client = _signed_in(acme, "agent@acme.test")
    assert client.get("/").status_code == 200
    with tenant_context(acme):  # sessions live in the tenant's schema
        session = client.session
        assert session.get("parley_revocation_epoch") is not None  # the real session, not a new one
        session[stale] = int(time.time()) - 13 * 3600  # past the idle limit and the 12 h lifetime
        session.save()
    connection.set_schema_to_public()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="auth.session.expired").exists()
