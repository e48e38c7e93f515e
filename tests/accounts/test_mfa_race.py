"""One backup code, several requests at the same moment: exactly one signs in.

Not in a test transaction: the threads use their own connections and must see
committed rows.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django_tenants.utils import tenant_context

from accounts import mfa
from accounts.models import BackupCodeDevice


@pytest.mark.slow
def test_two_requests_with_one_backup_code_at_once_sign_in_once(django_db_blocker):
    """The device row is locked and the code's row deleted: the second request finds nothing."""
    from tenants.models import Tenant

    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        tenant = Tenant.objects.get(slug="globex")
        with tenant_context(tenant):
            user = get_user_model().objects.get(email="analyst@globex.test")
            code = mfa.backup_codes_create(user, 1, name="race")[0]
        barrier, results = threading.Barrier(4), []

        def attempt() -> None:
            try:
                connection.set_tenant(tenant)
                barrier.wait(timeout=10)
                results.append(mfa.verify(user, code) is not None)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=attempt) for _ in range(4)]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert sorted(results) == [False, False, False, True]
        finally:
            with tenant_context(tenant):
                BackupCodeDevice.objects.filter(user=user, name="race").delete()
            connection.set_schema_to_public()
