"""Owners and admins manage users and roles in the UI and the API: audited,
behind step-up, never above their own role, and never without an owner."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django_tenants.utils import tenant_context

from accounts import services
from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


def _user(tenant, email):
    with tenant_context(tenant):
        return User.objects.get(email=email)


def test_an_admin_changes_a_role_from_the_page_and_it_is_audited(acme):
    admin = support.signed_in(acme, "admin@acme.test")
    target = _user(acme, "agent2@acme.test")
    changed = admin.post(f"/users/{target.pk}/role/", {"role": "analyst"}, follow=True)
    assert changed.redirect_chain[0][1] == 302
    # People read the role's label, never the internal value.
    assert "agent2@acme.test is now an Analyst / auditor (was Support agent)." in (
        changed.content.decode()
    )
    with tenant_context(acme):
        assert User.objects.get(pk=target.pk).role == "analyst"
        event = AuditEvent.objects.filter(action="user.role_changed").latest("id")
        assert event.actor_name == "admin@acme.test" and event.target_id == str(target.pk)


def test_an_admin_cannot_grant_owner_or_touch_an_owner(acme):
    admin = support.signed_in(acme, "admin@acme.test")
    agent = _user(acme, "agent2@acme.test")
    owner = _user(acme, "owner@acme.test")
    assert admin.post(f"/users/{agent.pk}/role/", {"role": "owner"}).status_code == 403
    assert admin.post(f"/users/{owner.pk}/role/", {"role": "agent"}).status_code == 403
    assert admin.post(f"/users/{owner.pk}/active/", {"active": "0"}).status_code == 403
    with tenant_context(acme):
        assert User.objects.get(pk=agent.pk).role == "agent"
        assert (
            User.objects.get(pk=owner.pk).role == "owner"
            and User.objects.get(pk=owner.pk).is_active
        )
        assert AuditEvent.objects.filter(action="access.denied").exists()


def test_the_last_owner_can_be_neither_demoted_nor_deactivated(acme):
    with tenant_context(acme):
        owner = User.objects.get(email="owner@acme.test")
        with pytest.raises(PermissionDenied):  # nobody changes their own role, not even down
            services.user_set_role(by=owner, user=owner, role="admin")
        second = User.objects.get(email="admin@acme.test")
        services.user_set_role(by=owner, user=second, role="owner")
        # Now there are two: the other one may let the first step down.
        services.user_set_role(by=User.objects.get(pk=second.pk), user=owner, role="admin")
        assert User.objects.filter(role="owner", is_active=True).count() == 1
        with pytest.raises(PermissionDenied):  # an admin now: the owner is above them
            services.user_set_active(
                by=User.objects.get(pk=owner.pk), user=User.objects.get(pk=second.pk), active=False
            )
        with pytest.raises(ValidationError, match="yourself"):
            last = User.objects.get(pk=second.pk)
            services.user_set_active(by=last, user=last, active=False)


def test_nobody_without_users_manage_changes_anyone(acme):
    with tenant_context(acme):
        analyst = User.objects.get(email="analyst@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        with pytest.raises(PermissionDenied):
            services.user_set_role(by=analyst, user=agent, role="analyst")
    page = support.signed_in(acme, "analyst@acme.test").post(
        f"/users/{agent.pk}/role/", {"role": "analyst"}
    )
    assert page.status_code == 403


def test_role_changes_need_step_up(acme):
    stale = support.signed_in(acme, "admin@acme.test", step_up=False)
    agent = _user(acme, "agent2@acme.test")
    response = stale.post(
        f"/users/{agent.pk}/role/", {"role": "analyst"}, HTTP_REFERER="http://acme.localhost/users/"
    )
    assert response.status_code == 302
    assert response["Location"].startswith("/mfa/step-up/?next=/users/&resume=")
    assert _user(acme, "agent2@acme.test").role == "agent"


def test_inviting_sends_a_one_time_link(acme, django_capture_on_commit_callbacks):
    admin = support.signed_in(acme, "admin@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post("/users/invite/", {"email": "New.Hire@acme.test", "role": "agent"})
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["new.hire@acme.test"]
    assert "/accounts/activate/" in mail.outbox[-1].body
    with tenant_context(acme):
        user = User.objects.get(email="new.hire@acme.test")
        assert user.role == "agent" and not user.has_usable_password()
    dup = admin.post("/users/invite/", {"email": "new.hire@acme.test", "role": "agent"})
    assert dup.status_code == 400 and "already exists" in dup.content.decode()
    bad = admin.post("/users/invite/", {"email": "not-an-email", "role": "agent"})
    assert bad.status_code == 400


def test_deactivation_ends_sessions_at_once(acme):
    victim = support.signed_in(acme, "agent2@acme.test")
    assert victim.get("/").status_code == 200
    admin = support.signed_in(acme, "admin@acme.test")
    target = _user(acme, "agent2@acme.test")
    assert admin.post(f"/users/{target.pk}/active/", {"active": "0"}).status_code == 302
    assert victim.get("/")["Location"].startswith("/login/")
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="user.deactivated").exists()


def test_an_admin_resets_someones_mfa(acme):
    victim = support.signed_in(acme, "marketer@acme.test")
    admin = support.signed_in(acme, "admin@acme.test")
    target = _user(acme, "marketer@acme.test")
    assert admin.post(f"/users/{target.pk}/mfa-reset/").status_code == 302
    assert victim.get("/")["Location"].startswith("/login/")
    with tenant_context(acme):
        from accounts.models import TOTPDevice

        assert not TOTPDevice.objects.filter(user=target).exists()


def test_the_api_changes_roles_behind_step_up(acme):
    agent = _user(acme, "agent2@acme.test")
    stale = support.signed_in(acme, "admin@acme.test", step_up=False)
    refused = stale.patch(
        f"/api/v1/users/{agent.pk}/", {"role": "analyst"}, content_type="application/json"
    )
    assert refused.status_code == 403 and refused.json()["code"] == "step_up_required"
    admin = support.signed_in(acme, "admin@acme.test")
    ok = admin.patch(
        f"/api/v1/users/{agent.pk}/", {"role": "analyst"}, content_type="application/json"
    )
    assert ok.status_code == 200 and ok.json()["role"] == "analyst"
    above = admin.patch(
        f"/api/v1/users/{agent.pk}/", {"role": "owner"}, content_type="application/json"
    )
    assert above.status_code == 403
    bad = admin.patch(
        f"/api/v1/users/{agent.pk}/", {"role": "god"}, content_type="application/json"
    )
    assert bad.status_code == 400
    assert admin.get("/api/v1/users/999999/").status_code == 404
    created = admin.post(
        "/api/v1/users/",
        {"email": "api.hire@acme.test", "role": "marketer"},
        content_type="application/json",
    )
    assert created.status_code == 201 and created.json()["role"] == "marketer"
    viewer = support.signed_in(acme, "agent@acme.test")
    assert viewer.get(f"/api/v1/users/{agent.pk}/").status_code == 403
    connection.set_schema_to_public()


def test_an_admin_lifts_a_sign_in_lock(acme, settings):
    settings.PARLEY_LOGIN_MAX_FAILURES = 2
    for _ in range(2):
        support.tenant_client("acme").post(
            "/login/", {"username": "analyst@acme.test", "password": "wrong-password-x"}
        )
    locked = support.tenant_client("acme").post(
        "/login/", {"username": "analyst@acme.test", "password": support.PASSWORD}
    )
    assert "Too many failed sign-ins" in locked.content.decode()
    admin = support.signed_in(acme, "admin@acme.test")
    target = _user(acme, "analyst@acme.test")
    assert "sign-in locked" in admin.get("/users/").content.decode()
    assert admin.post(f"/users/{target.pk}/unlock/").status_code == 302
    after = support.tenant_client("acme").post(
        "/login/", {"username": "analyst@acme.test", "password": support.PASSWORD}
    )
    assert after.status_code == 302
    with tenant_context(acme):
        assert AuditEvent.objects.filter(action="auth.lock_lifted").exists()
    assert (
        support.signed_in(acme, "agent@acme.test").post(f"/users/{target.pk}/unlock/").status_code
        == 403
    )
