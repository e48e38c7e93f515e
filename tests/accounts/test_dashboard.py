"""The home page is a dashboard for the role, not a list of permission codes."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context

from accounts.models import AccessGrant
from conversations import access as inbox_access
from conversations import services as conversation_services
from tests import support

pytestmark = pytest.mark.django_db


def _home(acme, who) -> str:
    response = support.signed_in(acme, who).get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_an_agent_their_open_and_unassigned_conversations(acme):
    from connectors import services as connector_services
    from connectors.models import Channel

    User = get_user_model()
    with tenant_context(acme):
        admin = User.objects.get(email="admin@acme.test")
        agent = User.objects.get(email="agent@acme.test")
        box = inbox_access.inbox_create(by=admin, name="Dashboard box")
        inbox_access.inbox_member_add(by=admin, inbox=box, user=agent)
        box.channel = Channel.objects.create(
            name="dash",
            public_id="dash-channel-1",
            outbound_url="http://127.0.0.1:9/",
            signing_credential=connector_services.credential_set(
                name="dash-secret", kind="webhook_secret", connector="api-channel", secret="x" * 40
            ),
        )
        box.save()
        conversation_services.message_receive(
            inbox=box, contact_external_id="d-1", contact_name="Dora Waiting", body="hello"
        )
        mine, _ = conversation_services.message_receive(
            inbox=box, contact_external_id="d-2", contact_name="Max Mine", body="hi"
        )
        conversation_services.assign(by=admin, conversation_id=mine.conversation_id, assignee=agent)
    page = _home(acme, "agent@acme.test")
    assert "Dora Waiting" in page and "Max Mine" in page
    assert "1</span> open conversation assigned to you" in page
    assert "1</span> unassigned in your inboxes" in page
    assert "inbox.use" not in page  # no permission codes
    assert "Security posture" not in page and "Recent audit activity" not in page


def test_it_shows_owners_pending_requests_and_the_security_posture(acme):
    User = get_user_model()
    with tenant_context(acme):
        analyst = User.objects.get(email="analyst@acme.test")
        AccessGrant.objects.create(
            user=analyst, kind="role", role="admin", reason="quarter close", hours=2
        )
    page = _home(acme, "owner@acme.test")
    assert "Security posture" in page
    assert "have two-factor authentication set up" in page and "age of the data key" in page
    assert "due for rotation" in page
    assert "Waiting for your decision" in page and "quarter close" not in page
    assert "analyst@acme.test asks for the Admin role" in page
    assert "Recent audit activity" in page


def test_it_shows_an_analyst_recent_audit_activity_only(acme):
    page = _home(acme, "analyst@acme.test")
    assert "Recent audit activity" in page
    assert "Security posture" not in page and "Your open conversations" not in page
    assert "audit.view" not in page


def test_a_marketer_gets_a_start_page_without_permission_codes(acme):
    page = _home(acme, "marketer@acme.test")
    assert "Getting started" in page and "flows.edit" not in page
