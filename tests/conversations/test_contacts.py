"""Contacts: PII encrypted per field; found by phone or e-mail through blind indexes."""

from __future__ import annotations

import importlib
import io

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from conversations.models import Contact
from conversations.selectors import contact_find_by_email, contact_find_by_phone
from conversations.services import contact_create, contact_phones_reindex, contact_pii
from parley.keyring import fields
from tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_it_finds_a_contact_by_phone_without_decrypting_anyone(acme, monkeypatch):
    with tenant_context(acme):
        for i in range(20):
            contact_create(
                name=f"Person {i}", phone=f"+1 555 010 {1000 + i}", email=f"p{i}@example.test"
            )
        wanted = contact_create(name="Ada", phone="+44 20 7946 0018", email="Ada@Example.test")
        calls = []
        real = fields.decrypt
        monkeypatch.setattr(fields, "decrypt", lambda *a, **k: calls.append(k) or real(*a, **k))
        assert contact_find_by_phone("(+44) 20-7946-0018") == wanted
        assert contact_find_by_email(" ada@example.TEST ") == wanted
        assert contact_find_by_phone("+44 20 7946 0019") is None
        assert calls == []  # equality lookups decrypted nothing
        assert contact_pii(wanted) == {
            "name": "Ada",
            "phone": "+442079460018",
            "email": "ada@example.test",
        }
        assert len(calls) == 3  # showing one contact decrypts that contact only


def test_it_keeps_blind_indexes_tenant_specific(acme, globex):
    with tenant_context(acme):
        contact_create(name="Ada", phone="+442079460018")
    with tenant_context(globex):
        assert contact_find_by_phone("+442079460018") is None
        assert Contact.objects.count() == 0


def test_it_refuses_a_pii_ciphertext_swapped_between_columns(acme):
    with tenant_context(acme):
        contact = contact_create(name="Ada", phone="+442079460018", email="ada@example.test")
        Contact.objects.filter(pk=contact.pk).update(name_ct=contact.phone_ct)
        with pytest.raises(fields.DecryptionError, match="conversations_contact.name"):
            contact_pii(Contact.objects.get(pk=contact.pk))


# --- phone numbers: E.164 in the tenant's region ----------------------------------------------


def _region(tenant, region: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(phone_region=region)


@pytest.mark.parametrize(
    "written",
    [
        "+44 20 7946 0018",
        "0044 20 7946 0018",  # "00" international prefix
        "020 7946 0018",  # national, in the tenant's region (GB)
        "(+44) 20-7946-0018",
        "+44 (0)20 7946 0018",
        "\uff0b\uff14\uff14 \uff12\uff10 7946 0018",  # fullwidth
        "\u0660\u0660\u0664\u0664\u0662\u0660\u0667\u0669\u0664\u0666\u0660\u0660\u0661\u0668",  # Arabic-Indic
    ],
)
def test_it_finds_a_number_however_it_was_written(acme, written):
    _region(acme, "GB")
    with tenant_context(acme):
        stored = contact_create(name="Ada", phone="0044 20 7946 0018")
        assert contact_find_by_phone(written) == stored
        assert contact_pii(stored)["phone"] == "+442079460018"
        assert contact_find_by_phone("+44 20 7946 0019") is None


def test_it_reads_national_numbers_in_each_tenants_own_region(acme, globex):
    _region(acme, "GB")
    _region(globex, "DE")
    with tenant_context(acme):
        london = contact_create(name="Ada", phone="020 7946 0018")
        assert contact_pii(london)["phone"] == "+442079460018"
        assert contact_find_by_phone("+44 20 7946 0018") == london
    with tenant_context(globex):
        essen = contact_create(name="Emil", phone="020 7946 0018")
        assert contact_pii(essen)["phone"] == "+492079460018"
        assert contact_find_by_phone("+49 20 7946 0018") == essen
        assert contact_find_by_phone("+44 20 7946 0018") is None


def test_unreadable_numbers_fall_back_to_their_digits_deterministically(acme):
    _region(acme, "US")
    with tenant_context(acme):
        odd = contact_create(name="Odd", phone="12-34")
        assert contact_pii(odd)["phone"] == "1234"
        assert contact_find_by_phone("1 2 3 4") == odd  # the same digits: found
        # The fallback never collides with a real E.164 number's index.
        real = contact_create(name="Real", phone="+1 202 555 0143")
        assert contact_find_by_phone("12025550143") == real
        assert odd.phone_bi != real.phone_bi


@pytest.mark.parametrize(
    ("hostile", "phone"),
    [
        ("\u00b2\u00b2\u00b2", ""),  # superscripts are not digits
        ("abc", ""),
        ("", ""),
        ("9" * 64, "9" * 64),  # no parse, no error: the digits
    ],
)
def test_hostile_phone_input_never_breaks_create_or_lookup(acme, hostile, phone):
    with tenant_context(acme):
        contact = contact_create(name="Hostile", phone=hostile)
        assert contact_pii(contact)["phone"] == phone
        assert (contact.phone_bi == "") == (phone == "")
        found = contact_find_by_phone(hostile)
        assert found == (contact if phone else None)


@pytest.mark.parametrize(
    "hostile",
    [
        "+44 20\x00 7946 0018",  # NUL
        "\ud800+44 20 7946 0018",  # lone surrogate
        "9" * 65,  # longer than any phone number
        "9" * 100_000,
    ],
)
def test_text_the_database_cannot_keep_is_refused_and_nothing_stored(acme, hostile):
    with tenant_context(acme):
        before = Contact.objects.count()
        with pytest.raises(ValidationError):
            contact_create(name="Hostile", phone=hostile)
        assert Contact.objects.count() == before
        assert contact_find_by_phone(hostile) is None  # a lookup never raises


def _legacy_contact(phone_as_stored: str) -> Contact:
    """A contact as the digits-only normaliser wrote it: "+" and every digit."""
    schema = connection.schema_name
    contact = Contact()
    contact.allocate_pk()
    contact.phone_ct = fields.encrypt(
        phone_as_stored, schema=schema, table="conversations_contact", column="phone", pk=contact.pk
    )
    contact.phone_bi = fields.blind_index(phone_as_stored, schema=schema, field="contact.phone")
    contact.save(force_insert=True)
    return contact


def test_the_migration_reindexes_existing_rows_with_the_keyring(acme):
    migration = importlib.import_module("conversations.migrations.0005_contact_phone_e164")
    _region(acme, "GB")
    with tenant_context(acme):
        legacy = {
            "+00442079460018": _legacy_contact("+00442079460018"),  # was "0044 20 7946 0018"
            "+02079460018": _legacy_contact("+02079460018"),  # was "020 7946 0018"
            "+442079460018": _legacy_contact("+442079460018"),  # was "+44 20 7946 0018"
        }
        wanted = contact_find_by_phone("+44 20 7946 0018").phone_bi
        # The old indexes of the "0044…" and "020…" rows miss.
        assert Contact.objects.filter(phone_bi=wanted).count() == 1
        with connection.schema_editor() as editor:
            migration.reindex(django_apps, editor)
        for contact in legacy.values():
            contact.refresh_from_db()
            assert contact_pii(contact)["phone"] == "+442079460018"
        assert {c.phone_bi for c in legacy.values()} == {wanted}
        # Idempotent: a second run finds nothing to change.
        assert contact_phones_reindex(region="GB") == 0


def test_changing_a_tenants_region_reindexes_its_contacts_and_is_audited(acme, globex):
    _region(acme, "US")
    with tenant_context(acme):
        contact = contact_create(name="Ada", phone="020 7946 0018")  # not a US number
        assert contact_find_by_phone("+44 20 7946 0018") is None
    call_command("tenant_phone_region", "acme", " gb ", stdout=io.StringIO())
    assert Tenant.objects.get(pk=acme.pk).phone_region == "GB"
    with tenant_context(acme):
        assert contact_find_by_phone("+44 20 7946 0018") == contact
        assert AuditEvent.objects.filter(action="contact.phones_reindexed").exists()
    assert AuditEvent.objects.filter(
        action="tenant.phone_region_changed", details__to="GB"
    ).exists()
    for bad in ("XX", "G\x00B", "gbr", "²²", ""):
        with pytest.raises(CommandError):
            call_command("tenant_phone_region", "acme", bad, stdout=io.StringIO())
    assert Tenant.objects.get(pk=acme.pk).phone_region == "GB"
