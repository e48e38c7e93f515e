"""The channels page is never a dead end: with every inbox bound, an integrator
is told who creates inboxes; an admin creates the channel with a new inbox."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context

from connectors.channels import channel_create
from conversations import access
from conversations.models import Inbox
from tests import support

pytestmark = pytest.mark.django_db


@pytest.fixture
def every_inbox_bound(acme):
    with tenant_context(acme):
        admin = get_user_model().objects.get(email="admin@acme.test")
        access.inbox_create(by=admin, name="Bound box")
        for n, box in enumerate(Inbox.objects.filter(channel__isnull=True)):
            channel_create(
                by=admin, name=f"bound-{n}", outbound_url="https://x.example/", inbox_id=box.pk
            )
    connection.set_schema_to_public()


def test_an_integrator_is_told_who_creates_inboxes(acme, every_inbox_bound):
    page = support.signed_in(acme, "integrator@acme.test").get("/connectors/channels/")
    html = " ".join(page.content.decode().split())
    assert "Every inbox already has a channel" in html
    assert "Owners and admins create inboxes: ask" in html
    assert "owner@acme.test" in html and "admin@acme.test" in html


def test_an_admin_can_still_create_a_channel_with_its_own_inbox(acme, every_inbox_bound):
    html = support.signed_in(acme, "admin@acme.test").get("/connectors/channels/").content.decode()
    assert "Every inbox already has a channel" not in html
    assert "Create channel" in html
