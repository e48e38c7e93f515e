"""Reads of tenants (public schema)."""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from django.http import Http404

from tenants.models import ChannelRoute, Tenant


def tenant_list():
    return Tenant.objects.businesses().prefetch_related("domains").order_by("slug")


def tenant_get(*, slug: str) -> Tenant:
    """The business tenant with this slug, or Http404 (also for public/template)."""
    tenant = Tenant.objects.businesses().filter(slug=slug).first()
    if tenant is None:
        raise Http404("No such tenant.")
    return tenant


def tenant_phone_region(schema_name: str | None = None) -> str:
    """The phone region of the tenant whose schema is active (or ``schema_name``).

    Read from the row, not from ``connection.tenant``: a ``schema_context`` carries
    no tenant object, and a stale one would index with an old region. Fails closed
    when the schema is no business tenant's.
    """
    schema = schema_name or connection.schema_name
    region = Tenant.objects.filter(schema_name=schema).values_list("phone_region", flat=True)
    found = region.first()
    if found is None:
        if schema == settings.TENANT_BASE_SCHEMA:
            return settings.PARLEY_DEFAULT_PHONE_REGION
        raise LookupError(f"no tenant for schema {schema!r}: phone numbers need one")
    return found


def channel_routes_for(*, kind: str, routing_ids) -> dict[str, ChannelRoute]:
    """The enabled routes of active business tenants for these ids: ``{routing_id: route}``.
    An id missing from the answer is unknown (or paused, or its tenant is not active)."""
    routes = ChannelRoute.objects.filter(
        kind=kind,
        routing_id__in=list(routing_ids),
        enabled=True,
        tenant__status=Tenant.Status.ACTIVE,
        tenant__is_template=False,
    ).select_related("tenant")
    return {route.routing_id: route for route in routes if not route.tenant.is_public}
