"""The owner's Security page: key versions, rotation, progress."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from django_tenants.utils import tenant_context

from accounts.policy import Perm, role_has
from audit.hashing import REDACTED, clean_details
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


def test_the_rotation_event_names_the_key_versions_it_made(acme, django_capture_on_commit_callbacks):
    """``key.rotated`` once read ``credential: "[redacted]"`` where the version belongs, in the
    viewer and in exports; real secrets stay redacted."""
    owner = support.signed_in(acme, "owner@acme.test")
    with django_capture_on_commit_callbacks(execute=False):
        assert owner.post("/settings/security/rotate/").status_code == 302
    with tenant_context(acme):
        jobs = {j.purpose: j.target_version for j in RekeyJob.objects.all()}
        event = AuditEvent.objects.filter(action="key.rotated").latest("id")
    assert event.details == {
        "data_key_version": jobs["data"],
        "connector_key_version": jobs["credential"],
    }
    assert REDACTED not in json.dumps(event.details)
    page = owner.get("/audit/?action=key.rotated").content.decode()
    assert f"connector_key_version={jobs['credential']}" in page and REDACTED not in page
    export = owner.post("/audit/export/", {"format": "jsonl"})
    with zipfile.ZipFile(io.BytesIO(export.content)) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".jsonl"))
        rows = [json.loads(line) for line in zf.read(name).decode().splitlines()]
    rotated = [r for r in rows if r["action"] == "key.rotated"]
    assert rotated and rotated[-1]["details"]["connector_key_version"] == jobs["credential"]
    # The redaction itself is unchanged.
    assert clean_details({"credential": "s3cret", "api_key": "k"}) == {
        "credential": REDACTED,
        "api_key": REDACTED,
    }
