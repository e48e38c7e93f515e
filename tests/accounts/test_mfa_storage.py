"""Second factors at rest: TOTP keys sealed by the keyring and bound to their row,
backup codes kept as keyed digests (the migration: test_mfa_migration.py)."""

from __future__ import annotations

from base64 import b32encode
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import tenant_context
from psycopg import sql

from accounts import mfa
from accounts.models import BackupCode, BackupCodeDevice, TOTPDevice
from parley.keyring import fields, registry
from tests import support

pytestmark = pytest.mark.django_db


def _user(email):
    return get_user_model().objects.get(
        **({"email": email} if "@" in email else {"username": email})
    )


def _row(table: str, pk: int) -> tuple:
    """The row as the database holds it (every column, as text)."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT t::text FROM {} t WHERE id = %s").format(sql.Identifier(table)), [pk]
        )
        return cursor.fetchone()


def test_it_keeps_the_totp_key_sealed_and_bound_to_its_row(acme):
    with tenant_context(acme):
        device = TOTPDevice.objects.create(user=_user("analyst@acme.test"), name="phone")
        key = device.bin_key
        assert len(key) == 20
        stored = _row("accounts_totpdevice", device.pk)[0]
        for clear in (key.hex(), b32encode(key).decode().rstrip("=")):
            assert clear.lower() not in stored.lower()
        assert fields.key_version_of(bytes(device.key_ct)) >= 1
        assert TOTPDevice.objects.get(pk=device.pk).bin_key == key  # read back, same key
        assert key.hex() not in str(device.config_url)  # the QR carries base32 only
        assert b32encode(key).decode().rstrip("=") in device.config_url


def test_a_sealed_key_copied_to_another_row_or_tenant_does_not_open(acme, globex):
    with tenant_context(acme):
        mine = TOTPDevice.objects.create(user=_user("admin@acme.test"), name="mine")
        theirs = TOTPDevice.objects.create(user=_user("agent@acme.test"), name="theirs")
        TOTPDevice.objects.filter(pk=theirs.pk).update(key_ct=mine.key_ct)
        stolen = TOTPDevice.objects.get(pk=theirs.pk)
        with pytest.raises(fields.DecryptionError):
            stolen.bin_key  # noqa: B018 - the property decrypts
        ciphertext, pk = bytes(mine.key_ct), mine.pk
    # Same id in another tenant: another tenant's key and associated data.
    with tenant_context(globex), pytest.raises(fields.DecryptionError):
        fields.decrypt(
            ciphertext,
            schema=globex.schema_name,
            table="accounts_totpdevice",
            column="key",
            pk=pk,
            purpose="credential",
        )


def test_a_device_read_in_its_tenant_opens_outside_it(acme):
    """The tests and tasks compute codes after leaving tenant_context: the row knows its schema."""
    with tenant_context(acme):
        device = TOTPDevice.objects.create(user=_user("marketer@acme.test"), name="phone")
        loaded = TOTPDevice.objects.get(pk=device.pk)
        key = loaded.bin_key
    connection.set_schema_to_public()
    assert loaded.bin_key == key and device.bin_key == key


def test_the_totp_key_column_is_registered_for_rotation():
    assert registry.EncryptedColumn(
        table="accounts_totpdevice", column="key", db_column="key_ct", purpose="credential"
    ) in registry.for_purpose("credential")


def test_backup_codes_are_kept_as_digests_and_each_works_once(acme):
    with tenant_context(acme):
        user = _user("integrator@acme.test")
        codes = mfa.backup_codes_create(user)
        assert len(codes) == 10 == len(set(codes))
        assert all(len(c) == 8 and c.isalnum() for c in codes)
        device = BackupCodeDevice.objects.get(user=user, name="backup")
        stored = " ".join(
            _row("accounts_backupcode", pk)[0]
            for pk in BackupCode.objects.filter(device=device).values_list("pk", flat=True)
        )
        assert not any(code in stored for code in codes)
        assert mfa.backup_codes_left(user) == 10

        assert isinstance(mfa.verify(user, codes[3].upper()), BackupCodeDevice)  # any case
        assert mfa.verify(user, codes[3]) is None  # used up
        assert mfa.backup_codes_left(user) == 9
        assert mfa.backup_codes_unused(user, codes, name="backup") == codes[:3] + codes[4:]


def test_a_backup_code_digest_copied_to_another_users_device_opens_nothing(acme):
    with tenant_context(acme):
        victim, thief = _user("owner@acme.test"), _user("agent2@acme.test")
        code = mfa.backup_codes_create(victim)[0]
        mfa.backup_codes_create(thief)
        theirs = BackupCodeDevice.objects.get(user=thief, name="backup")
        digest = BackupCodeDevice.objects.get(user=victim).digest(code)
        BackupCode.objects.create(device=theirs, digest=digest)
        assert mfa.verify(thief, code) is None
        assert isinstance(mfa.verify(victim, code), BackupCodeDevice)


def test_a_wrong_backup_code_slows_the_device_down(acme):
    with tenant_context(acme):
        user = _user("analyst@acme.test")
        codes = mfa.backup_codes_create(user)
        assert mfa.verify(user, "zzzzzzzz") is None
        assert mfa.verify(user, codes[0]) is None  # within the delay even a good code waits
        assert mfa.backup_codes_left(user) == 10


def test_renewing_backup_codes_voids_the_old_ones(acme):
    with tenant_context(acme):
        user = _user("marketer@acme.test")
        old = mfa.backup_codes_create(user)
        new = mfa.backup_codes_create(user)
        assert not set(old) & set(new)
        assert mfa.verify(user, old[0]) is None
        BackupCodeDevice.objects.filter(user=user).update(throttling_failure_count=0)
        assert mfa.verify(user, new[0]) is not None


@pytest.mark.parametrize(
    "code",
    ["²²²²²²²²", "١٢٣٤٥٦٧٨", "abc\x00defg", "\ud800" * 8, "9" * 5000, "ａｂｃｄｅｆｇｈ", ""],
)
def test_a_hostile_code_is_refused_and_uses_nothing_up(acme, code):
    with tenant_context(acme):
        user = _user("agent@acme.test")
        mfa.backup_codes_create(user)
        assert mfa.verify(user, code) is None
        assert mfa.backup_codes_left(user) == 10
    connection.set_schema_to_public()
    client = support.signed_in(acme, "agent@acme.test", verified=False)
    # As a browser would send it: UTF-8 bytes, even for what no valid string holds.
    body = "code=" + quote(code.encode("utf-8", "surrogatepass"))
    page = client.post("/mfa/verify/", body, content_type="application/x-www-form-urlencoded")
    assert page.status_code == 400
