"""One break-glass event, written to the platform's trail and the tenant's."""

from __future__ import annotations

from typing import Any

from django_tenants.utils import schema_context

from audit.context import Actor
from audit.models import Outcome
from audit.services import record
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant, Tenant

TARGET = "break_glass_grant"


def _tenant_schema_exists(tenant: Tenant) -> bool:
    return tenant.status not in (Tenant.Status.OFFBOARDED,) and not tenant.is_public


def record_both(
    action: str,
    *,
    grant: BreakGlassGrant,
    tenant: Tenant,
    actor: Actor,
    outcome: str = Outcome.ALLOWED,
    details: dict[str, Any] | None = None,
    request=None,
) -> None:
    """The same event in the platform's trail and the tenant's, in the caller's transaction."""
    payload = {
        "grant": grant.pk,
        "tenant": tenant.slug,
        "operator_id": grant.operator_id,
        **(details or {}),
    }
    kwargs = {
        "actor": actor,
        "outcome": outcome,
        "target_type": TARGET,
        "target_id": grant.pk,
        "details": payload,
        "request": request,
    }
    with schema_context(PUBLIC_SCHEMA):
        record(action, **kwargs)
    if _tenant_schema_exists(tenant):
        with schema_context(tenant.schema_name):
            record(action, **kwargs)
