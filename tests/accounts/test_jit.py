"""Just-in-time grants: asked with a reason, approved by someone else who could
grant it, checked at each use, ended by time, and all of it audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts import services
from accounts.models import AccessGrant
from accounts.policy import Perm, user_has
from audit.models import AuditEvent
from conversations import access
from conversations.models import Inbox
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


def _fresh(user):
    return User.objects.get(pk=user.pk)  # a new request sees a new user object


def test_a_role_grant_elevates_until_it_expires(acme):
    with tenant_context(acme):
        agent = User.objects.get(email="agent@acme.test")
        admin = User.objects.get(email="admin@acme.test")
        grant = services.grant_request(
            by=agent,
            kind="role",
            role="analyst",
            hours=2,
            reason="Incident 42 needs the audit trail",
        )
        assert not user_has(_fresh(agent), Perm.AUDIT_VIEW)
        services.grant_decide(by=admin, grant=grant, approve=True)
        assert user_has(_fresh(agent), Perm.AUDIT_VIEW)
        assert user_has(_fresh(agent), Perm.INBOX_USE)  # the own role still counts

        # Time passes: the check at the next use refuses, without beat.
        AccessGrant.objects.filter(pk=grant.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
        assert not user_has(_fresh(agent), Perm.AUDIT_VIEW)
        # Beat marks it expired, audited.
        assert services.grants_expire() == 1
        assert AccessGrant.objects.get(pk=grant.pk).status == AccessGrant.Status.EXPIRED
        actions = list(
            AuditEvent.objects.filter(target_type="access_grant", target_id=str(grant.pk))
            .order_by("seq")
            .values_list("action", flat=True)
        )
        assert actions == ["grant.requested", "grant.approved", "grant.expired"]


def test_a_grant_works_through_the_pages_and_ends_at_its_deadline(acme):
    agent = support.signed_in(acme, "agent@acme.test")
    assert agent.get("/audit/").status_code == 403
    with tenant_context(acme):
        user = User.objects.get(email="agent@acme.test")
        grant = services.grant_request(
            by=user, kind="role", role="analyst", hours=1, reason="Checking last night's sign-ins"
        )
        services.grant_decide(
            by=User.objects.get(email="owner@acme.test"), grant=grant, approve=True
        )
    assert agent.get("/audit/").status_code == 200
    with tenant_context(acme):
        AccessGrant.objects.filter(pk=grant.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    assert agent.get("/audit/").status_code == 403


def test_an_inbox_grant_opens_one_inbox_for_its_time(acme):
    with tenant_context(acme):
        sales = Inbox.objects.create(name="Sales JIT")
        agent = User.objects.get(email="agent@acme.test")
        assert not access.inbox_list_for_user(agent).filter(pk=sales.pk).exists()
        grant = services.grant_request(
            by=agent, kind="inbox", inbox_id=sales.pk, hours=1, reason="Covering for a colleague"
        )
        services.grant_decide(
            by=User.objects.get(email="admin@acme.test"), grant=grant, approve=True
        )
        assert access.inbox_get_for_user(_fresh(agent), sales.pk) == sales
        AccessGrant.objects.filter(pk=grant.pk).update(expires_at=timezone.now())
        with pytest.raises(Exception) as exc:
            access.inbox_get_for_user(_fresh(agent), sales.pk)
        assert exc.type.__name__ == "Http404"


def test_the_rules_of_asking_and_approving(acme):
    with tenant_context(acme):
        agent = User.objects.get(email="agent@acme.test")
        admin = User.objects.get(email="admin@acme.test")
        analyst = User.objects.get(email="analyst@acme.test")
        with pytest.raises(ValidationError):
            services.grant_request(by=agent, kind="role", role="analyst", hours=2, reason="short")
        with pytest.raises(ValidationError):
            services.grant_request(
                by=agent, kind="role", role="analyst", hours=99, reason="a long enough reason"
            )
        with pytest.raises(ValidationError):
            services.grant_request(
                by=agent, kind="inbox", inbox_id=999999, hours=1, reason="a long enough reason"
            )
        owner_ask = services.grant_request(
            by=agent, kind="role", role="owner", hours=1, reason="I would like to be the owner"
        )
        with pytest.raises(PermissionDenied):  # an admin cannot grant above their own role
            services.grant_decide(by=admin, grant=owner_ask, approve=True)
        with pytest.raises(PermissionDenied):  # an analyst approves nothing
            services.grant_decide(by=analyst, grant=owner_ask, approve=False)
        mine = services.grant_request(
            by=admin, kind="role", role="owner", hours=1, reason="Rotating the keys tonight"
        )
        with pytest.raises(PermissionDenied):  # never one's own request
            services.grant_decide(by=admin, grant=mine, approve=True)
        services.grant_decide(
            by=User.objects.get(email="owner@acme.test"), grant=mine, approve=False
        )
        with pytest.raises(ValidationError):  # answered once
            services.grant_decide(
                by=User.objects.get(email="owner@acme.test"), grant=mine, approve=True
            )


def test_the_access_page_asks_and_approves_behind_step_up(acme):
    agent = support.signed_in(acme, "agent@acme.test")
    bad = agent.post("/access/", {"kind": "role", "role": "analyst", "hours": 2, "reason": "x"})
    assert bad.status_code == 400
    sent = agent.post(
        "/access/",
        {"kind": "role", "role": "analyst", "hours": 2, "reason": "Need the audit trail today"},
    )
    assert sent.status_code == 302
    with tenant_context(acme):
        grant = AccessGrant.objects.get(user__email="agent@acme.test", status="pending")
    stale = support.signed_in(acme, "admin@acme.test", step_up=False)
    assert stale.post(f"/access/{grant.pk}/decide/", {"decision": "approve"})[
        "Location"
    ].startswith("/mfa/step-up/")
    admin = support.signed_in(acme, "admin@acme.test")
    assert "Need the audit trail today" in admin.get("/access/").content.decode()
    assert admin.post(f"/access/{grant.pk}/decide/", {"decision": "approve"}).status_code == 302
    assert agent.get("/audit/").status_code == 200
    assert (
        support.signed_in(acme, "marketer@acme.test")
        .post(f"/access/{grant.pk}/decide/", {"decision": "deny"})
        .status_code
        == 403
    )
    # Giving it back ends it at once, and keeps the session at the standing role.
    given = agent.post(f"/access/{grant.pk}/revoke/", follow=True)
    assert given.redirect_chain[-1][0] == "/access/"
    page = given.content.decode()
    assert "You gave the Analyst / auditor role back; you work as Support agent again." in page
    assert agent.get("/audit/").status_code == 403
    assert agent.get("/").status_code == 200
    with tenant_context(acme):
        assert AccessGrant.objects.get(pk=grant.pk).status == AccessGrant.Status.REVOKED


def test_an_inbox_grant_is_refused_to_a_role_that_works_no_conversations(acme):
    """Least privilege: a marketer's inbox grant would open nothing (no ``inbox.use``), so
    it cannot be asked for; the form offers no inbox and the service says why."""
    with tenant_context(acme):
        box = Inbox.objects.create(name="Returns JIT")
        marketer = User.objects.get(email="marketer@acme.test")
        with pytest.raises(ValidationError) as exc:
            services.grant_request(
                by=marketer, kind="inbox", inbox_id=box.pk, hours=1, reason="Campaign replies"
            )
        assert "Your role (Marketer) does not work conversations" in str(exc.value)
        assert not AccessGrant.objects.filter(user=marketer).exists()
    client = support.signed_in(acme, "marketer@acme.test")
    form = client.get("/access/").content.decode()
    assert "Returns JIT" not in form and 'value="inbox"' not in form
    # ... and says why, on the form.
    assert "Your role (Marketer) does not work conversations" in form
    refused = client.post(
        "/access/",
        {"kind": "inbox", "inbox": box.pk, "hours": 1, "reason": "Campaign replies today"},
    )
    assert refused.status_code == 400
    with tenant_context(acme):
        assert not AccessGrant.objects.filter(user__email="marketer@acme.test").exists()


def test_the_access_form_lists_only_inboxes_one_could_be_granted(acme):
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        mine = access.inbox_create(by=admin, name="Mine already")
        access.inbox_member_add(by=admin, inbox=mine, user=agent)
        other = access.inbox_create(by=admin, name="Could be granted")
        with pytest.raises(ValidationError) as exc:
            services.grant_request(
                by=agent, kind="inbox", inbox_id=mine.pk, hours=1, reason="Covering the queue"
            )
        assert "already work in this inbox" in str(exc.value)
        for junk in (0, -1, 2**70, True, "1"):
            with pytest.raises(ValidationError):
                services.grant_request(
                    by=agent, kind="inbox", inbox_id=junk, hours=1, reason="Covering the queue"
                )
    form = support.signed_in(acme, "agent@acme.test").get("/access/").content.decode()
    assert f'<option value="{other.pk}">Could be granted</option>' in form
    assert "Mine already" not in form


def test_approvers_and_holders_see_inbox_names(acme):
    with tenant_context(acme):
        box = Inbox.objects.create(name="Wholesale JIT")
        agent = User.objects.get(email="agent@acme.test")
        services.grant_request(
            by=agent, kind="inbox", inbox_id=box.pk, hours=1, reason="Covering for a colleague"
        )
    approver = support.signed_in(acme, "admin@acme.test").get("/access/").content.decode()
    holder = support.signed_in(acme, "agent@acme.test").get("/access/").content.decode()
    for page in (approver, holder):
        assert "inbox Wholesale JIT" in page and f"#{box.pk}" not in page


def _elevate(acme, email: str, role: str):
    """``email`` holds an approved just-in-time grant of ``role`` (its standing role unchanged)."""
    with tenant_context(acme):
        user = User.objects.get(email=email)
        grant = services.grant_request(
            by=user, kind="role", role=role, hours=1, reason="Covering for the admin this hour"
        )
        services.grant_decide(
            by=User.objects.get(email="owner@acme.test"), grant=grant, approve=True
        )
    return user, grant


def _denials(acme, **details) -> list[AuditEvent]:
    with tenant_context(acme):
        return list(
            AuditEvent.objects.filter(
                action="access.denied", **{f"details__{k}": v for k, v in details.items()}
            )
        )


def test_a_jit_admin_cannot_make_the_grant_standing_through_the_api(acme):
    agent, grant = _elevate(acme, "agent@acme.test", "admin")
    client = support.signed_in(acme, agent)
    assert client.get("/api/v1/users/").status_code == 200  # the grant itself works
    own = client.patch(
        f"/api/v1/users/{agent.pk}/", {"role": "admin"}, content_type="application/json"
    )
    assert own.status_code == 403 and own.json()["code"] == "permission_denied"
    (denied,) = _denials(acme, path=f"/api/v1/users/{agent.pk}/")  # one event, the precise one
    assert denied.outcome == "denied" and denied.actor_name == "agent@acme.test"
    assert denied.target_type == "user" and denied.target_id == str(agent.pk)
    assert denied.details["rule"] == "own_role" and denied.details["role"] == "admin"
    assert denied.details["standing_role"] == "agent"
    assert denied.details["elevated_roles"] == ["admin"]

    # Nor through someone else (an accomplice, or a fresh invitation): rank is the standing role's.
    with tenant_context(acme):
        agent2 = User.objects.get(email="agent2@acme.test")
    assert (
        client.patch(
            f"/api/v1/users/{agent2.pk}/", {"role": "admin"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert _denials(acme, rule="role_above_own", user="agent2@acme.test")
    invite = client.post(
        "/api/v1/users/",
        {"email": "accomplice@acme.test", "role": "admin"},
        content_type="application/json",
    )
    assert invite.status_code == 403

    # When the grant ends, nothing of it stays.
    with tenant_context(acme):
        services.grant_revoke(by=User.objects.get(email="owner@acme.test"), grant=grant)
        assert User.objects.get(pk=agent.pk).role == "agent"
        assert User.objects.get(pk=agent2.pk).role == "agent"
        assert not User.objects.filter(email="accomplice@acme.test").exists()
        assert not user_has(_fresh(agent), Perm.USERS_MANAGE)


def test_a_jit_admin_cannot_make_the_grant_standing_through_the_users_page(acme):
    agent, _ = _elevate(acme, "agent@acme.test", "admin")
    client = support.signed_in(acme, agent)
    assert client.get("/users/").status_code == 200
    assert client.post(f"/users/{agent.pk}/role/", {"role": "admin"}).status_code == 403
    (denied,) = _denials(acme, path=f"/users/{agent.pk}/role/")
    assert denied.details["rule"] == "own_role" and denied.details["elevated_roles"] == ["admin"]
    with tenant_context(acme):
        assert User.objects.get(pk=agent.pk).role == "agent"


def test_a_jit_admin_cannot_pass_the_grant_on(acme):
    agent, _ = _elevate(acme, "agent@acme.test", "admin")
    with tenant_context(acme):
        agent = _fresh(agent)
        marketer = User.objects.get(email="marketer@acme.test")
        ask = services.grant_request(
            by=marketer, kind="role", role="admin", hours=1, reason="Let me in too, please"
        )
        with pytest.raises(PermissionDenied):  # approving needs the rank standing
            services.grant_decide(by=agent, grant=ask, approve=True)
        with pytest.raises(PermissionDenied):  # nor the integrator, ranked above the standing agent
            services.user_set_active(
                by=agent, user=User.objects.get(email="integrator@acme.test"), active=False
            )
        assert AccessGrant.objects.get(pk=ask.pk).status == AccessGrant.Status.PENDING
        rules = set(
            AuditEvent.objects.filter(action="access.denied").values_list(
                "details__rule", flat=True
            )
        )
        assert {"role_above_own", "user_above_own"} <= rules


def test_nobody_changes_their_own_role_not_even_an_owner(acme):
    with tenant_context(acme):
        owner = User.objects.get(email="owner@acme.test")
        with pytest.raises(PermissionDenied):
            services.user_set_role(by=owner, user=owner, role="admin")
        assert User.objects.get(pk=owner.pk).role == "owner"
        assert _denials(acme, rule="own_role", user="owner@acme.test")
