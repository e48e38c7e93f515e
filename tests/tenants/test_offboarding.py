"""Offboarding: close, then drop the schema and destroy the keys (crypto-shredding)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from audit.models import AuditEvent
from connectors.services import credential_set
from parley.keyring import fields, keys
from parley.models import WrappedKey
from tenants.models import Domain, Tenant
from tenants.services import tenant_create
from tests import support


def test_it_closes_then_shreds_a_tenant(owner_db):
    tenant = tenant_create(
        slug="initech", name="Initech", domain="initech.localhost", owner_email="b@initech.test"
    ).tenant
    with tenant_context(tenant):
        credential = credential_set(
            name="crm", kind="api_key", connector="hubspot", secret="marker-offboard-1234"
        )
        backup = (bytes(credential.secret_ct), credential.pk)  # what a backup would hold
    connection.set_schema_to_public()

    out = StringIO()
    call_command(
        "tenant_offboard", "initech", "--confirm", "initech", "--retention-days", "30", stdout=out
    )
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.OFFBOARDING and "30" in tenant.status_reason
    assert schema_exists("t_initech")  # kept during the retention window
    assert (
        support.tenant_client("acme").get("/login/", HTTP_HOST="initech.localhost").status_code
        == 403
    )

    call_command("tenant_offboard", "initech", "--confirm", "initech", "--now", stdout=out)
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.OFFBOARDED
    assert not schema_exists("t_initech")
    assert not Domain.objects.filter(domain="initech.localhost").exists()
    assert set(
        WrappedKey.objects.filter(schema_name="t_initech").values_list("state", flat=True)
    ) == {"destroyed"}
    keys.forget_cached()
    with pytest.raises(keys.KeyNotFound):
        fields.decrypt(
            backup[0],
            schema="t_initech",
            table="connectors_credential",
            column="secret",
            pk=backup[1],
            purpose="credential",
        )
    assert (
        support.tenant_client("acme").get("/login/", HTTP_HOST="initech.localhost").status_code
        == 404
    )
    actions = list(AuditEvent.objects.filter(target_id="initech").values_list("action", flat=True))
    assert {"tenant.offboarding_scheduled", "tenant.offboarded"} <= set(actions)
    assert "offboarded" in out.getvalue()


@pytest.mark.django_db
def test_it_refuses_without_confirmation_or_the_owner_role():
    with pytest.raises(CommandError, match="--confirm must repeat the slug"):
        call_command("tenant_offboard", "globex", "--confirm", "acme")
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.ACTIVE
    with pytest.raises(CommandError, match="owner role"):
        call_command("tenant_offboard", "globex", "--confirm", "globex", "--now")
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.ACTIVE
    with pytest.raises(CommandError, match="No tenant"):
        call_command("tenant_offboard", "nope", "--confirm", "nope")


@pytest.mark.django_db
def test_it_offboards_from_the_console_only_with_the_slug_typed():
    client = support.console_client()
    support.signed_in(None, "operator", client=client)
    # The page asks for the slug in a box named for the form's field.
    page = client.get("/tenants/globex/").content.decode()
    box = re.search(r'<input type="text" name="confirm"[^>]*id="([^"]+)"', page)
    assert box, "the tenant page has no box to type the slug in"
    assert f'<label for="{box.group(1)}">' in page
    client.post("/tenants/globex/offboard/", {"confirm": "acme"})
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.ACTIVE
    page = client.post(
        "/tenants/globex/offboard/", {"confirm": "globex"}, follow=True
    ).content.decode()
    assert Tenant.objects.get(slug="globex").status == Tenant.Status.OFFBOARDING
    assert "nothing was exported" in page and "Schema and keys are destroyed on" in page
    assert support.tenant_client("globex").get("/login/").status_code == 403
