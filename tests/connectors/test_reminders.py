"""Credentials due for rotation: a daily e-mail and a banner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_tenants.utils import tenant_context

from connectors.models import Credential
from connectors.services import credential_set
from connectors.tasks import credential_rotation_reminders
from tests import support

pytestmark = pytest.mark.django_db


def test_it_reminds_once_a_day_and_shows_a_banner(acme):
    with tenant_context(acme):
        old = credential_set(name="old-key", kind="api_key", connector="hubspot", secret="x" * 20)
        credential_set(name="fresh-key", kind="api_key", connector="hubspot", secret="y" * 20)
        Credential.objects.filter(pk=old.pk).update(
            rotation_due_at=timezone.now() - timedelta(days=1)
        )
        result = credential_rotation_reminders()
        assert result["reminded"] == 1
        assert credential_rotation_reminders()["reminded"] == 0  # not twice the same day
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert (
        "old-key" in message.body and "fresh-key" not in message.body and "overdue" in message.body
    )
    assert set(message.to) == {"owner@acme.test", "admin@acme.test", "integrator@acme.test"}
    assert "x" * 20 not in message.body

    client = support.signed_in(acme, "integrator@acme.test")
    assert "1 connector credential due for rotation" in client.get("/").content.decode()
    page = client.get("/connectors/credentials/").content.decode()
    assert "due for rotation within 14 days" in page and "overdue" in page
