"""Re-index every contact's phone as E.164 in its tenant's region (was: digits only,
so "0044 20 …" and "+44 20 …" indexed differently). Needs the keyring (decrypt,
re-encrypt, blind index), like every write of a contact; a schema without contacts
(the template, a new tenant) touches no key."""

from django.conf import settings
from django.db import migrations


def _region(connection) -> str:
    with connection.cursor() as cursor:
        # Raw SQL on the one column: the public schema's Tenant model may be newer
        # than this migration. Shared apps migrate first, so the column exists.
        cursor.execute(
            "SELECT phone_region FROM public.tenants_tenant WHERE schema_name = %s",
            [connection.schema_name],
        )
        row = cursor.fetchone()
    return row[0] if row else settings.PARLEY_DEFAULT_PHONE_REGION


def reindex(apps, schema_editor):
    from conversations.services import contact_phones_reindex

    Contact = apps.get_model("conversations", "Contact")
    if not Contact.objects.filter(phone_ct__isnull=False).exists():
        return
    contact_phones_reindex(region=_region(schema_editor.connection), model=Contact)


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0004_list_indexes"),
    ]

    operations = [
        migrations.RunPython(reindex, migrations.RunPython.noop, elidable=True),
    ]
