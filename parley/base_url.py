"""Public base URLs (``https://acme.example.com``), for links made outside a request.

Kernel: it reads only django-tenants' ``get_primary_domain()`` and settings, so any
layer builds a link (invites in accounts, break-glass in tenants) from this one place.
"""

from __future__ import annotations

from django.conf import settings


def _origin(host: str) -> str:
    """Scheme and host, plus the port when it is not the scheme's default."""
    port = settings.PARLEY_PUBLIC_PORT
    default_port = 443 if settings.PARLEY_PUBLIC_SCHEME == "https" else 80
    suffix = "" if port == default_port else f":{port}"
    return f"{settings.PARLEY_PUBLIC_SCHEME}://{host}{suffix}"


def tenant_base_url(tenant) -> str:
    """The tenant's primary domain as an origin, without a trailing slash."""
    domain = tenant.get_primary_domain()
    return _origin(domain.domain if domain else settings.PARLEY_BASE_DOMAIN)


def console_url(path: str = "/") -> str:
    """A page of the platform console (the bare base domain)."""
    return _origin(settings.PARLEY_BASE_DOMAIN) + path
