"""Inbox membership (django-guardian) and the access helpers that answer 404."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from conversations import access
from tests import support

pytestmark = pytest.mark.django_db
User = get_user_model()


@pytest.fixture
def boxes(acme):
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        support_box = access.inbox_create(by=admin, name="Support")
        sales = access.inbox_create(by=admin, name="Sales")
        access.inbox_member_add(
            by=admin, inbox=support_box, user=User.objects.get(email="agent@acme.test")
        )
        access.inbox_member_add(
            by=admin, inbox=sales, user=User.objects.get(email="agent2@acme.test")
        )
    return support_box, sales


def test_an_agent_sees_only_their_inboxes(acme, boxes):
    support_box, sales = boxes
    with tenant_context(acme):
        agent = User.objects.get(email="agent@acme.test")
        assert list(access.inbox_list_for_user(agent)) == [support_box]
        assert access.inbox_get_for_user(agent, support_box.pk) == support_box
        for other in (sales.pk, 999999, "x"):
            with pytest.raises(Http404):
                access.inbox_get_for_user(agent, other)
        admin = User.objects.get(email="admin@acme.test")
        assert set(access.inbox_list_for_user(admin)) == {support_box, sales}
        marketer = User.objects.get(email="marketer@acme.test")
        assert list(access.inbox_list_for_user(marketer)) == []


def test_pages_and_api_answer_404_for_an_inbox_not_mine(acme, boxes):
    support_box, sales = boxes
    agent = support.signed_in(acme, "agent@acme.test")
    page = agent.get("/inboxes/").content.decode()
    assert "Support" in page and "Sales" not in page
    assert agent.get(f"/inboxes/{support_box.pk}/").status_code == 200
    assert agent.get(f"/inboxes/{sales.pk}/").status_code == 404
    assert [b["name"] for b in agent.get("/api/v1/inboxes/").json()["results"]] == ["Support"]
    assert agent.get(f"/api/v1/inboxes/{sales.pk}/").status_code == 404
    assert support.signed_in(acme, "marketer@acme.test").get("/inboxes/").status_code == 403
    # Membership changes are for managers only.
    assert agent.post(f"/inboxes/{support_box.pk}/members/", {"user": 1}).status_code == 403


def test_membership_changes_are_audited_and_checked(acme, boxes):
    support_box, _ = boxes

    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        marketer = User.objects.get(email="marketer@acme.test")
        with pytest.raises(ValidationError):
            access.inbox_member_add(by=admin, inbox=support_box, user=marketer)
        with pytest.raises(PermissionDenied):
            access.inbox_member_add(by=agent, inbox=support_box, user=agent)
        access.inbox_member_remove(by=admin, inbox=support_box, user=agent)
        assert list(access.inbox_list_for_user(User.objects.get(pk=agent.pk))) == []
        actions = set(
            AuditEvent.objects.filter(target_type="inbox").values_list("action", flat=True)
        )
        assert actions == {"inbox.created", "inbox.member_added", "inbox.member_removed"}
        with pytest.raises(ValidationError):
            access.inbox_create(by=admin, name="support")  # names are unique, any case
