"""Error pages: HTML for people, JSON with a stable code under /api/."""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import HttpResponseServerError, JsonResponse
from django.shortcuts import render
from django.template import loader


def _wants_json(request) -> bool:
    return request.path.startswith(("/api/", "/webhooks/"))


def permission_denied(request, exception=None):
    if _wants_json(request):
        return JsonResponse(
            {"code": "permission_denied", "detail": "You do not have permission."}, status=403
        )
    return render(request, "errors/403.html", status=403)


def not_found(request, exception=None):
    if _wants_json(request):
        return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
    return render(request, "errors/404.html", status=404)


def server_error(request):
    if _wants_json(request):
        return JsonResponse(
            {"code": "server_error", "detail": "Something went wrong on our side."}, status=500
        )
    # No context processors here: whatever failed may fail again while rendering.
    return HttpResponseServerError(loader.get_template("errors/500.html").render())


def relaxed_styles(view):
    """The API docs page only: Swagger UI sets inline styles. Scripts stay 'self'."""
    policy = settings.PARLEY_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = policy
        return response

    return wrapper
