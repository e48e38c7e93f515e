"""The owner's Security page: key versions, rotation, progress."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from accounts.policy import Perm, role_has
from audit.models import AuditEvent
from parley.models import RekeyJob
from tests import support

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("role", support.ROLES)
def test_it_lets_only_owners_rotate(acme, role, django_capture_on_commit_callbacks):
    client = support.signed_in(acme, f"{role}@acme.test")
    allowed = role_has(role, Perm.KEYS_ROTATE)
    assert client.get("/settings/security/").status_code == (200 if allowed else 403)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/settings/security/rotate/")
    assert response.status_code == (302 if allowed else 403)
    jobs = RekeyJob.objects.filter(schema_name=acme.schema_name)
    assert jobs.count() == (2 if allowed else 0)
    if allowed:
        page = client.get("/settings/security/", HTTP_HX_REQUEST="true").content.decode()
        assert "Key versions" in page and 'hx-trigger="every 2s"' in page
        with tenant_context(acme):
            assert AuditEvent.objects.filter(action="key.rotated").exists()
