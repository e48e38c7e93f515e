"""Per-user revocation epoch: deactivation, a role change, a password change or
"sign out everywhere" end every session of that user on its next request.

The epoch lives in Redis (through the cache, so keys carry the tenant's schema)
and in each session when it starts; a session whose epoch is behind is ended.
JWTs carry it too once the API tokens arrive (identity issue).
"""

from __future__ import annotations

import time

from django.contrib.auth import logout
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import redirect

SESSION_KEY = "parley_revocation_epoch"
_TTL = 60 * 60 * 24 * 30  # longer than any session


def _key(user_id) -> str:
    return f"revocation-epoch:{user_id}"


def current(user_id) -> int:
    value = cache.get(_key(user_id))
    if value is None:
        value = 0
        cache.add(_key(user_id), value, _TTL)
    return int(value)


def bump(user_id) -> int:
    """Invalidate everything issued to this user so far; returns the new epoch."""
    epoch = time.time_ns()
    cache.set(_key(user_id), epoch, _TTL)
    return epoch


def remember(request, user) -> None:
    request.session[SESSION_KEY] = current(user.pk)


class RevocationMiddleware:
    """After authentication: end a session issued before the user's epoch moved."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            issued = request.session.get(SESSION_KEY)
            if issued is None or int(issued) < current(user.pk) or not user.is_active:
                logout(request)
                if request.path.startswith("/api/"):
                    return JsonResponse(
                        {
                            "code": "session_revoked",
                            "detail": "Your session was ended; sign in again.",
                        },
                        status=401,
                    )
                return redirect(f"/login/?next={request.path}")
        return self.get_response(request)
