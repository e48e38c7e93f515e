"""Reads of tenants (public schema)."""

from __future__ import annotations

from django.http import Http404

from tenants.models import Tenant


def tenant_list():
    return Tenant.objects.businesses().prefetch_related("domains").order_by("slug")


def tenant_get(*, slug: str) -> Tenant:
    """The business tenant with this slug, or Http404 (also for public/template)."""
    tenant = Tenant.objects.businesses().filter(slug=slug).first()
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant
