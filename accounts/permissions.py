"""Policy-table checks for views and the API, and the step-up guard.

``permission_required`` and DRF views' ``required_permission`` both read the
policy table; each view keeps the permission it needs as an attribute so the
generated role-matrix test can check every URL against the table.
"""

from __future__ import annotations

import secrets
import time
from functools import wraps
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from rest_framework.exceptions import APIException
from rest_framework.permissions import BasePermission

from accounts import mfa
from accounts.policy import user_has


def permission_required(perm: str):
    """View decorator: sign in first, then the policy table decides (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has(request.user, perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.required_permission = perm
        return wrapper

    return decorator


class HasPolicyPermission(BasePermission):
    """DRF permission: the view names ``required_permission`` from the policy table."""

    def has_permission(self, request, view) -> bool:
        perm = required_permission_for(view, request.method)
        if perm is None:
            return bool(request.user and request.user.is_authenticated)
        return user_has(request.user, perm)


def required_permission_for(view, method: str) -> str | None:
    """The policy permission a DRF view needs for ``method`` (None: any signed-in user).

    ``required_permissions`` maps methods to permissions where they differ
    (reading a list vs. changing it); ``required_permission`` covers the rest.
    """
    per_method = getattr(view, "required_permissions", None) or {}
    if method == "HEAD":
        method = "GET"
    return per_method.get(method, getattr(view, "required_permission", None))


# --- step-up -------------------------------------------------------------------------------------


def _return_path(request) -> str:
    """Where to come back after step-up: this page for GET, the page the form was on otherwise."""
    if request.method == "GET":
        return request.get_full_path()
    referer = urlsplit(request.headers.get("Referer", ""))
    if referer.netloc == request.get_host() and referer.path.startswith("/"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def detour(request, target: str, *, code: str, detail: str, status: int):
    """Send the user elsewhere first: JSON with ``code`` under /api/, an htmx
    redirect for htmx requests, a plain redirect otherwise."""
    if request.path.startswith("/api/"):
        return JsonResponse({"code": code, "detail": detail}, status=status)
    if request.headers.get("HX-Request"):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)


# The form that met the step-up detour, kept in the session (one at a time, for
# the step-up window) so the action can be finished right after the code.
STEP_UP_PENDING = "parley_step_up_pending"
# Never kept: the CSRF token (a fresh one is issued) and anything secret-like,
# which the person types again (the session must not hold it in clear).
_SECRET_WORDS = ("secret", "password", "token", "otp", "passphrase", "private", "key")


def _stash(request) -> str | None:
    """Keep a plain (non-htmx, no upload) POST's fields; return its one-time id."""
    if request.method != "POST" or request.headers.get("HX-Request") or request.FILES:
        return None
    fields: list[list[str]] = []
    dropped = False
    for name, values in request.POST.lists():
        if name == "csrfmiddlewaretoken":
            continue
        if any(word in name.lower() for word in _SECRET_WORDS):
            dropped = True
            continue
        fields += [[name, value] for value in values]
    one_time = secrets.token_urlsafe(16)
    match = getattr(request, "resolver_match", None)
    request.session[STEP_UP_PENDING] = {
        "id": one_time,
        "path": request.path,
        "view": match.view_name if match else "",
        "fields": fields,
        "dropped": dropped,
        "at": time.time(),
    }
    return one_time


def step_up_pending_pop(request, one_time: str, *, max_age: float) -> dict | None:
    """The stashed form with this id, once; None when absent, stale or another id."""
    pending = request.session.get(STEP_UP_PENDING)
    if (
        not pending
        or not one_time
        or not secrets.compare_digest(str(pending.get("id", "")), str(one_time))
    ):
        return None
    del request.session[STEP_UP_PENDING]
    if time.time() - float(pending.get("at", 0)) > max_age:
        return None
    return pending


def step_up_response(request):
    resume = "" if request.path.startswith("/api/") else _stash(request)
    return detour(
        request,
        f"{reverse('mfa:step_up')}?next={quote(_return_path(request))}"
        + (f"&resume={resume}" if resume else ""),
        code="step_up_required",
        detail="This action needs a one-time code verified in the last 5 minutes.",
        status=403,
    )


_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def step_up_required(view):
    """View decorator: changes (POST and other unsafe methods) need an OTP verified
    within the step-up window, or take a detour to give one and come back.

    Put it inside ``permission_required`` so a role that may not act at all
    gets its 403 first. Reading the page needs no fresh code.
    """

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method not in _SAFE_METHODS and not mfa.step_up_fresh(request):
            return step_up_response(request)
        return view(request, *args, **kwargs)

    wrapper.required_permission = getattr(view, "required_permission", None)
    wrapper.step_up = True
    return wrapper


class StepUpRequired(APIException):
    status_code = 403
    default_code = "step_up_required"
    default_detail = (
        "This action needs a one-time code verified in the last 5 minutes: "
        "send it in the X-Parley-OTP header, or use a token issued with one."
    )


class CodesLocked(APIException):
    status_code = 429
    default_code = "locked"
    default_detail = (
        "Too many wrong one-time codes for this account or network; try again later, "
        "or ask an administrator to lift the lock."
    )


class StepUpFresh(BasePermission):
    """DRF permission for unsafe methods: step-up (GET and HEAD pass)."""

    def has_permission(self, request, view) -> bool:
        if request.method in _SAFE_METHODS:
            return True
        try:
            fresh = mfa.step_up_fresh(request)
        except mfa.CodesLocked:
            locked = CodesLocked()
            locked.wait = settings.PARLEY_LOGIN_LOCK_SECONDS  # Retry-After
            raise locked from None
        if not fresh:
            raise StepUpRequired
        return True
