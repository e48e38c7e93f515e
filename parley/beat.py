"""Celery beat scheduler (imported by beat only, after Django is set up)."""

from __future__ import annotations

import logging

from django.db import close_old_connections
from tenant_schemas_celery.scheduler import TenantAwarePersistentScheduler

from parley import faults
from tenants.models import Tenant

logger = logging.getLogger(__name__)


class ParleyBeatScheduler(TenantAwarePersistentScheduler):
    """Fans per-tenant entries out to active tenants only (not the template,
    not suspended or half-provisioned tenants), and rides through outages.

    Each due entry asks the database which tenants to send it to. When
    PostgreSQL restarts, that query fails with "the connection is lost"; the
    stock scheduler lets it escape ``tick()`` and beat exits. Here that run of
    the entry is skipped (its next run stays scheduled), the broken connection
    is dropped, and the next entry reconnects. A broker outage is already
    caught per message by the parent class.
    """

    @classmethod
    def get_queryset(cls):  # type: ignore[override]
        return Tenant.objects.schedulable()

    def apply_entry(self, entry, producer=None):
        # As Django does around each request: retire connections past
        # CONN_MAX_AGE or left broken by an earlier error.
        close_old_connections()
        try:
            super().apply_entry(entry, producer=producer)
        except faults.DATABASE_ERRORS as exc:
            logger.warning(
                "beat: database unavailable (%s); %s skipped this time, next run as scheduled",
                type(exc).__name__,
                entry.name,
            )
            faults.close_broken_connections()
