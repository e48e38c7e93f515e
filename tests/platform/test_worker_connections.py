"""A worker process keeps its database connection across tasks (as a web thread does
across requests) and drops it only when Django would: too old, broken, or left
outside autocommit. Celery's Django fixup used to close it around every task, so
each task paid a new PostgreSQL backend (docs/scaling.md, "Channels: measured")."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection

from parley.celery import _close_old_connections, app


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _task(eager: bool = False):
    return SimpleNamespace(request=SimpleNamespace(is_eager=eager))


def test_celery_s_fixup_no_longer_closes_the_connection_around_every_task():
    assert settings.CELERY_DB_REUSE_MAX >= 100
    assert app.conf.get("CELERY_DB_REUSE_MAX") == settings.CELERY_DB_REUSE_MAX


def test_after_a_task_a_young_healthy_connection_is_kept_an_old_one_closed(django_db_blocker):
    # Outside a test transaction, as in a worker (autocommit on).
    with django_db_blocker.unblock():
        try:
            pid = _backend_pid()
            connection.close_at = time.monotonic() + 60  # as with CONN_MAX_AGE = 60

            _close_old_connections(sender=_task())

            assert connection.connection is not None
            assert _backend_pid() == pid

            connection.close_at = time.monotonic() - 1  # older than CONN_MAX_AGE
            _close_old_connections(sender=_task())

            assert connection.connection is None
            assert _backend_pid() != pid
        finally:
            connection.close()


def test_after_a_task_that_met_a_database_error_the_connection_is_checked(django_db_blocker):
    with django_db_blocker.unblock():
        try:
            pid = _backend_pid()
            connection.close_at = time.monotonic() + 60
            connection.errors_occurred = True

            _close_old_connections(sender=_task())

            # Still usable: kept, its errors forgotten; broken: closed (Django's rule).
            assert connection.errors_occurred is False
            assert _backend_pid() == pid
        finally:
            connection.close()


@pytest.mark.django_db
def test_an_eager_task_leaves_the_caller_s_connection_and_transaction_alone():
    pid = _backend_pid()

    _close_old_connections(sender=_task(eager=True))

    assert _backend_pid() == pid
