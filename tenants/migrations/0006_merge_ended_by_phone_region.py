from django.db import migrations


class Migration(migrations.Migration):
    """Joins two branches of work: break-glass ``ended_by`` and the tenant's phone region."""

    dependencies = [
        ("tenants", "0005_breakglassgrant_ended_by"),
        ("tenants", "0005_tenant_phone_region"),
    ]

    operations = []
