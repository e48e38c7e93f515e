"""The suite's own database gives up durable commits; no other database does."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db


def test_the_test_database_commits_without_waiting_for_the_disk():
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "off"


def test_only_the_test_database_has_the_setting():
    """Not the development database (``make run``) on the same server, nor any other."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.datname, s.setconfig FROM pg_db_role_setting s "
            "JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = 0"
        )
        rows = cursor.fetchall()
    with_it = {name for name, config in rows if "synchronous_commit=off" in config}
    assert with_it == {settings.DATABASES["default"]["NAME"]}
