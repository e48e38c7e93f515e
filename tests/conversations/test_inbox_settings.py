"""The inbox settings page edits what docs/conversations.md describes: channel,
assignment mode, business hours and time zone, auto-reply (audited)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from conversations import access
from conversations.models import Inbox
from tests import support

pytestmark = pytest.mark.django_db


@pytest.fixture
def box(acme):
    with tenant_context(acme):
        admin = get_user_model().objects.get(email="admin@acme.test")
        inbox = access.inbox_create(by=admin, name="Settings box")
    connection.set_schema_to_public()
    return inbox


def _post(client, box, **values):
    data = {
        "channel": "",
        "assignment": "round_robin",
        "timezone": "Europe/Berlin",
        "auto_reply": "We are closed; we answer from 9 tomorrow.",
        "hours_mon": "09:00-12:00, 13:00-17:00",
        "hours_tue": "09:00-17:00",
        **values,
    }
    return client.post(f"/inboxes/{box.pk}/settings/", data)


def test_an_admin_sets_hours_time_zone_auto_reply_and_assignment(acme, box):
    admin = support.signed_in(acme, "admin@acme.test")
    page = admin.get(f"/inboxes/{box.pk}/").content.decode()
    assert "How this inbox works" in page and 'name="hours_mon"' in page
    assert _post(admin, box).status_code == 302
    with tenant_context(acme):
        saved = Inbox.objects.get(pk=box.pk)
        assert saved.assignment == "round_robin" and saved.timezone == "Europe/Berlin"
        assert saved.business_hours == {
            "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
            "tue": [["09:00", "17:00"]],
        }
        assert saved.auto_reply.startswith("We are closed")
        event = AuditEvent.objects.filter(action="inbox.updated").latest("id")
        assert "business_hours" in event.details["changed"]
        assert "We are closed" not in str(event.details)
    connection.set_schema_to_public()
    page = admin.get(f"/inboxes/{box.pk}/").content.decode()
    assert "Mon 09:00–12:00, 13:00–17:00" in page and "Europe/Berlin" in page


@pytest.mark.parametrize(
    "field, value",
    [
        ("hours_wed", "9-5"),
        ("hours_wed", "17:00-09:00"),
        ("hours_wed", "²9:00-10:00"),
        ("hours_wed", "0\u0663:00-10:00"),
        ("timezone", "Mars/Olympus"),
        ("assignment", "random"),
        ("channel", "999999"),
        ("auto_reply", "x" * 1001),
    ],
)
def test_bad_values_are_refused_and_nothing_changes(acme, box, field, value):
    admin = support.signed_in(acme, "admin@acme.test")
    response = _post(admin, box, **{field: value})
    assert response.status_code == 400
    with tenant_context(acme):
        saved = Inbox.objects.get(pk=box.pk)
        assert saved.assignment == "manual" and saved.business_hours == {}


def test_only_inbox_managers_change_settings(acme, box):
    agent = support.signed_in(acme, "agent@acme.test")
    assert _post(agent, box).status_code in (403, 404)
    assert (
        "How this inbox works"
        not in support.signed_in(acme, "owner@acme.test").get("/inboxes/").content.decode()
    )
