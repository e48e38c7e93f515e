"""Keep the app role's grants right on every schema the owner creates or migrates."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.dispatch import receiver
from django_tenants.signals import schema_migrated

from parley.dbroles import grant_app_access


@receiver(schema_migrated)
def _grant_app_role(sender, schema_name: str, **kwargs) -> None:
    if settings.PARLEY_DB_ROLE != "owner":
        return
    with connection.cursor() as cursor:
        grant_app_access(cursor, schema=schema_name, app_role=settings.PARLEY_DB_APP_ROLE)
