"""Contact writes: PII encrypted, blind indexes computed."""

from __future__ import annotations

from django.db import connection, transaction

from conversations.models import Contact
from parley.keyring import fields

TABLE = "conversations_contact"
PII = ("name", "phone", "email")


def _encrypt(contact: Contact, column: str, value: str) -> bytes | None:
    if not value:
        return None
    return fields.encrypt(
        value, schema=connection.schema_name, table=TABLE, column=column, pk=contact.pk
    )


def contact_create(*, name: str = "", phone: str = "", email: str = "") -> Contact:
    phone = fields.normalise_phone(phone) if phone else ""
    email = fields.normalise_email(email) if email else ""
    contact = Contact()
    with transaction.atomic():
        contact.allocate_pk()
        contact.name_ct = _encrypt(contact, "name", name)
        contact.phone_ct = _encrypt(contact, "phone", phone)
        contact.email_ct = _encrypt(contact, "email", email)
        schema = connection.schema_name
        contact.phone_bi = (
            fields.blind_index(phone, schema=schema, field="contact.phone") if phone else ""
        )
        contact.email_bi = (
            fields.blind_index(email, schema=schema, field="contact.email") if email else ""
        )
        contact.save(force_insert=True)
    return contact


def contact_pii(contact: Contact) -> dict[str, str]:
    """Decrypt one contact's fields (for a view that may show them)."""
    out = {}
    for column in PII:
        ciphertext = getattr(contact, f"{column}_ct")
        out[column] = (
            fields.decrypt(
                ciphertext, schema=connection.schema_name, table=TABLE, column=column, pk=contact.pk
            ).decode()
            if ciphertext
            else ""
        )
    return out
