"""The users page: invitations start with the least-privileged role, pending
people can be sent the link again or withdrawn (audited), names show, and a
role change reads like a person wrote it."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


def _invite(client, email, **extra):
    return client.post("/users/invite/", {"email": email, "role": "agent", **extra})


def test_the_invitation_form_starts_with_the_least_privileged_role(acme):
    page = support.signed_in(acme, "owner@acme.test").get("/users/").content.decode()
    form = page[page.index('id="id_role"') : page.index("</select>", page.index('id="id_role"'))]
    options = re.findall(r'<option value="(\w+)"( selected)?', form)
    assert options[0][0] in ("agent", "marketer")
    assert [v for v, sel in options if sel] == ["agent"]
    assert options[-1][0] == "owner"


def test_a_pending_invitation_shows_and_can_be_sent_again(acme, django_capture_on_commit_callbacks):
    admin = support.signed_in(acme, "admin@acme.test")
    with django_capture_on_commit_callbacks(execute=True):
        assert _invite(admin, "pending@acme.test", name="Pat  Pending").status_code == 302
    with tenant_context(acme):
        user = User.objects.get(email="pending@acme.test")
        assert (user.first_name, user.last_name) == ("Pat", "Pending")
    connection.set_schema_to_public()
    page = admin.get("/users/").content.decode()
    assert "Pat Pending" in page and "invited · pending" in page
    assert f"/users/{user.pk}/resend/" in page and f"/users/{user.pk}/cancel/" in page

    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(f"/users/{user.pk}/resend/")
    assert response.status_code == 302
    assert len(mail.outbox) == sent + 1 and mail.outbox[-1].to == ["pending@acme.test"]
    with tenant_context(acme):
        event = AuditEvent.objects.filter(action="user.invite_resent").latest("id")
        assert event.target_id == str(user.pk)


def test_a_pending_invitation_can_be_withdrawn_and_it_is_audited(acme):
    admin = support.signed_in(acme, "admin@acme.test")
    _invite(admin, "withdrawn@acme.test")
    with tenant_context(acme):
        user = User.objects.get(email="withdrawn@acme.test")
    connection.set_schema_to_public()
    assert admin.post(f"/users/{user.pk}/cancel/").status_code == 302
    with tenant_context(acme):
        assert not User.objects.filter(email="withdrawn@acme.test").exists()
        event = AuditEvent.objects.filter(action="user.invite_cancelled").latest("id")
        assert event.target_id == str(user.pk)


def test_someone_who_accepted_cannot_be_withdrawn_or_re_invited(acme):
    admin = support.signed_in(acme, "admin@acme.test")
    with tenant_context(acme):
        agent = User.objects.get(email="agent2@acme.test")
    connection.set_schema_to_public()
    for action in ("cancel", "resend"):
        response = admin.post(f"/users/{agent.pk}/{action}/")
        assert response.status_code == 400
        assert "already accepted the invitation" in response.content.decode()
    with tenant_context(acme):
        assert User.objects.filter(pk=agent.pk).exists()
    connection.set_schema_to_public()
    # An agent may not touch invitations at all.
    assert (
        support.signed_in(acme, "agent@acme.test").post(f"/users/{agent.pk}/cancel/").status_code
        == 403
    )


def test_a_role_change_reads_like_a_sentence(acme):
    admin = support.signed_in(acme, "admin@acme.test")
    with tenant_context(acme):
        agent = User.objects.get(email="agent2@acme.test")
    connection.set_schema_to_public()
    changed = admin.post(f"/users/{agent.pk}/role/", {"role": "analyst"})
    assert changed.status_code == 302, changed.content.decode()[-2000:]
    page = admin.get("/users/").content.decode()
    assert "agent2@acme.test is now an Analyst / auditor (was Support agent)." in page
