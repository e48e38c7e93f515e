from __future__ import annotations

from django.db import connection

from conversations.models import Contact
from parley.keyring import fields


def contact_find_by_phone(phone: str) -> Contact | None:
    """Equality lookup through the blind index: nothing is decrypted."""
    normalised = fields.normalise_phone(phone)
    if not normalised:
        return None
    digest = fields.blind_index(normalised, schema=connection.schema_name, field="contact.phone")
    return Contact.objects.filter(phone_bi=digest).first()


def contact_find_by_email(email: str) -> Contact | None:
    normalised = fields.normalise_email(email)
    if not normalised:
        return None
    digest = fields.blind_index(normalised, schema=connection.schema_name, field="contact.email")
    return Contact.objects.filter(email_bi=digest).first()
