"""Cross-cutting request middleware: request ids and the security headers."""

from __future__ import annotations

import logging
import re
import threading
import uuid

from django.conf import settings

_local = threading.local()
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str:
    return getattr(_local, "request_id", "-")


class RequestIdMiddleware:
    """Give each request an id (the edge proxy's X-Request-ID when well-formed)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request.id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        _local.request_id = request.id
        try:
            response = self.get_response(request)
        finally:
            _local.request_id = "-"
        response["X-Request-ID"] = request.id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id()
        return True


class ContentSecurityPolicyMiddleware:
    """A strict CSP on every response: scripts and styles from our origin only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if settings.DEBUG and _is_debug_404(response):
            # Django's DEBUG 404 page styles itself inline, which this policy
            # refuses: show Parley's own page (the server log names the path).
            from parley.views import not_found

            response = not_found(request)
        response.setdefault("Content-Security-Policy", settings.PARLEY_CSP)
        response.setdefault(
            "Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"
        )
        return response


_DEBUG_404_MARK = b"seeing this error because you have <code>DEBUG = True</code>"


def _is_debug_404(response) -> bool:
    return (
        response.status_code == 404
        and not getattr(response, "streaming", False)
        and response.get("Content-Type", "").startswith("text/html")
        and _DEBUG_404_MARK in response.content
    )
