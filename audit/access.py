"""Who may read the audit trail and manage sinks, in a tenant or on the console."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import connection

from accounts.policy import Perm, user_has


def _on_console() -> bool:
    return connection.schema_name == "public"


def can(request, perm: str) -> bool:
    user = request.user
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if _on_console():
        return True  # every active public-schema user is a platform operator
    return user_has(user, perm)


def require(perm: str):
    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not can(request, perm):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapper.required_permission = perm
        return wrapper

    return decorator


VIEW = Perm.AUDIT_VIEW
SINKS = Perm.TENANT_SETTINGS
