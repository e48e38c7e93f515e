"""Background work for tenants."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from parley.celery import app, tenant_task

# Module imports both ways (tenants.services enqueues these tasks): names are read at call time.
from tenants import services
from tenants.breakglass import services as breakglass_services
from tenants.models import Tenant

logger = logging.getLogger(__name__)


@app.task(bind=True, max_retries=3, default_retry_delay=5, acks_late=True)
def tenant_provision(self, tenant_id: int) -> dict:
    """Clone the template for a requested tenant (provisioning queue, owner role)."""
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None or tenant.status not in (Tenant.Status.PROVISIONING, Tenant.Status.FAILED):
        return {"tenant": tenant_id, "skipped": True}
    try:
        result = services.tenant_provision(tenant=tenant)
    except Exception as exc:
        connection.close()
        logger.exception("provisioning of tenant id=%s failed", tenant_id)
        if self.request.retries >= self.max_retries:
            services.tenant_mark_failed(
                tenant_id=tenant_id, reason=f"{type(exc).__name__}: see provisioning worker log"
            )
            raise
        raise self.retry(exc=exc) from exc
    # A backend that created a schema keeps every new relation in its catalog
    # caches; reusing it for the next clone makes each clone slower (measured:
    # 0.23 s fresh vs 0.37 s after 15 clones on one connection). Start afresh.
    connection.close()
    if result.invite_url:
        send_mail(
            subject=f"Your Parley workspace {result.tenant.name} is ready",
            message=(
                f"Set your password and sign in to {result.tenant.name}:\n\n{result.invite_url}\n\n"
                "The link works once and expires in 3 days."
            ),
            from_email=None,
            recipient_list=[result.owner_email],
        )

    with tenant_context(result.tenant):
        tenant_usage_refresh.delay()  # the console shows the user count right away
    logger.info("tenant id=%s provisioned in %.3fs", tenant_id, result.seconds)
    return {"tenant": tenant_id, "seconds": result.seconds}


@tenant_task()
def tenant_usage_refresh() -> dict:
    """Count the tenant's users (in its own schema) for the platform console."""
    users = get_user_model().objects.filter(is_active=True).count()
    tenant = connection.tenant
    Tenant.objects.filter(pk=tenant.pk).update(usage_users=users, usage_refreshed_at=timezone.now())
    return {"schema": connection.schema_name, "users": users}


@app.task(acks_late=True)
def tenant_offboard_execute(tenant_id: int) -> dict:
    """Provisioning queue (owner role): drop the schema and destroy the keys."""
    tenant = Tenant.objects.filter(pk=tenant_id, status=Tenant.Status.OFFBOARDING).first()
    if tenant is None:
        return {"tenant": tenant_id, "skipped": True}
    services.tenant_offboard_execute(tenant=tenant)
    return {"tenant": tenant_id, "offboarded": True}


@app.task
def offboard_due() -> int:
    """Beat (public): tenants whose retention window has ended go now."""
    due = Tenant.objects.filter(
        status=Tenant.Status.OFFBOARDING, offboard_after__lte=timezone.now()
    )
    ids = list(due.values_list("id", flat=True))
    for tenant_id in ids:
        tenant_offboard_execute.delay(tenant_id)
    return len(ids)


@app.task
def break_glass_expire_due() -> int:
    """Beat (public): break-glass grants past their deadline become ``expired``, audited
    on both trails. Access never relies on it: every request checks the deadline."""
    return breakglass_services.break_glass_expire_due()
