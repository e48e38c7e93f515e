"""Policy-table checks for views and the API."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

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

        return wrapper

    return decorator


class HasPolicyPermission(BasePermission):
    """DRF permission: the view names ``required_permission`` from the policy table."""

    def has_permission(self, request, view) -> bool:
        perm = getattr(view, "required_permission", None)
        if perm is None:
            return bool(request.user and request.user.is_authenticated)
        return user_has(request.user, perm)
