"""Contacts: PII encrypted per field; found by phone or e-mail through blind indexes."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from conversations.models import Contact
from conversations.selectors import contact_find_by_email, contact_find_by_phone
from conversations.services import contact_create, contact_pii
from parley.keyring import fields

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
