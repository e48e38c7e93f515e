"""Reads of break-glass grants (evaluated in ``public``, where grants and operators live)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django_tenants.utils import schema_context

from accounts.policy import Perm, Role, role_has
from tenants.models import PUBLIC_SCHEMA, BreakGlassGrant, Tenant


def _with_operator(qs: QuerySet[BreakGlassGrant]) -> list[BreakGlassGrant]:
    """Evaluate grants with their operator and tenant, read in ``public``."""
    with schema_context(PUBLIC_SCHEMA):
        return list(qs.select_related("operator", "tenant"))


def grant_list_for_operator(*, operator, tenant: Tenant, limit: int = 20) -> list[BreakGlassGrant]:
    return _with_operator(
        BreakGlassGrant.objects.filter(operator=operator, tenant=tenant).order_by("-id")[:limit]
    )


def grant_list_for_tenant(*, tenant: Tenant, limit: int = 50) -> list[BreakGlassGrant]:
    return _with_operator(BreakGlassGrant.objects.filter(tenant=tenant).order_by("-id")[:limit])


def grant_notices_for_tenant(*, tenant: Tenant) -> list[BreakGlassGrant]:
    """Grants an owner should know about now: waiting for a decision, or live."""
    return _with_operator(
        BreakGlassGrant.objects.filter(tenant=tenant)
        .filter(
            Q(status=BreakGlassGrant.Status.PENDING)
            | Q(status=BreakGlassGrant.Status.ACTIVE, expires_at__gt=timezone.now())
        )
        .order_by("-id")
    )


def grant_get_for_operator(*, operator, tenant: Tenant, grant_id: int) -> BreakGlassGrant:
    """The operator's own grant on this tenant, or 404."""
    found = _with_operator(
        BreakGlassGrant.objects.filter(pk=grant_id, operator=operator, tenant=tenant)
    )
    if not found:
        raise Http404("No such break-glass grant.")
    return found[0]


def grant_get_for_tenant(*, tenant: Tenant, grant_id: int) -> BreakGlassGrant:
    """A grant on this tenant (for its owners), or 404: other tenants' grants do not exist here."""
    found = _with_operator(BreakGlassGrant.objects.filter(pk=grant_id, tenant=tenant))
    if not found:
        raise Http404("No such break-glass grant.")
    return found[0]


def _approver_roles() -> list[str]:
    return [role for role in Role.values if role_has(role, Perm.BREAK_GLASS_APPROVE)]


def owner_emails(tenant: Tenant) -> list[str]:
    """E-mail addresses of the tenant's active users who may approve break-glass."""
    with schema_context(tenant.schema_name):
        return list(
            get_user_model()
            .objects.filter(is_active=True, role__in=_approver_roles())
            .exclude(email="")
            .order_by("email")
            .values_list("email", flat=True)
        )
