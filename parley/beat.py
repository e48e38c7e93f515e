"""Celery beat scheduler (imported by beat only, after Django is set up)."""

from tenant_schemas_celery.scheduler import TenantAwarePersistentScheduler


class ParleyBeatScheduler(TenantAwarePersistentScheduler):
    """Fans per-tenant entries out to active tenants only (not the template,
    not suspended or half-provisioned tenants)."""

    @classmethod
    def get_queryset(cls):  # type: ignore[override]
        from tenants.models import Tenant

        return Tenant.objects.schedulable()
