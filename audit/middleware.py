"""Bind the request for audit records; record refused requests (403)."""

from __future__ import annotations

from audit.context import bind_request, unbind_request


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = bind_request(request)
        try:
            response = self.get_response(request)
            if (
                response.status_code == 403
                and not getattr(response, "_audit_recorded", False)
                # A service that refused recorded its own, more precise access.denied.
                and not getattr(request, "_audit_denial_recorded", False)
            ):
                from audit.services import record_denied

                record_denied(request)
            return response
        finally:
            unbind_request(token)
