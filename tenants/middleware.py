"""Refuse requests to tenants that are not active (after host resolution)."""

from __future__ import annotations

from django.http import JsonResponse
from django.shortcuts import render

from tenants.models import Tenant


class TenantStatusMiddleware:
    """Suspended: 403 page, 403 JSON under /api/, 410 for webhooks.

    Provisioning or failed: 503, the workspace is not ready. The public schema
    (platform console) always passes.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.is_public or tenant.status == Tenant.Status.ACTIVE:
            return self.get_response(request)
        path = request.path
        if tenant.status in (
            Tenant.Status.SUSPENDED,
            Tenant.Status.OFFBOARDING,
            Tenant.Status.OFFBOARDED,
        ):
            if path.startswith("/webhooks/"):
                return JsonResponse(
                    {"code": "tenant_gone", "detail": "This workspace does not accept events."},
                    status=410,
                )
            if path.startswith("/api/"):
                return JsonResponse(
                    {"code": "tenant_suspended", "detail": "This workspace is suspended."},
                    status=403,
                )
            return render(request, "errors/tenant_suspended.html", {"tenant": tenant}, status=403)
        if path.startswith(("/api/", "/webhooks/")):
            return JsonResponse(
                {"code": "tenant_not_ready", "detail": "This workspace is not ready yet."},
                status=503,
            )
        return render(request, "errors/tenant_not_ready.html", {"tenant": tenant}, status=503)
