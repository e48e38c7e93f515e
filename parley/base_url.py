"""A tenant's public base URL (``https://acme.example.com``), for links sent out of a request.

Kernel: it reads only django-tenants' ``get_primary_domain()`` and settings, so any
layer can build a link (invites in accounts, break-glass in tenants) from one place.
"""

from __future__ import annotations

from django.conf import settings


def tenant_base_url(tenant) -> str:
    """Scheme, host (the tenant's primary domain) and port, without a trailing slash."""
    domain = tenant.get_primary_domain()
    host = domain.domain if domain else settings.PARLEY_BASE_DOMAIN
    port = settings.PARLEY_PUBLIC_PORT
    default_port = 443 if settings.PARLEY_PUBLIC_SCHEME == "https" else 80
    suffix = "" if port == default_port else f":{port}"
    return f"{settings.PARLEY_PUBLIC_SCHEME}://{host}{suffix}"
