"""Session end rules, checked on every request after authentication:

* per-user revocation epoch: deactivation, a role change, a password change or
  "sign out everywhere" end every session of that user on its next request;
* idle timeout (``PARLEY_SESSION_IDLE_SECONDS``, 15 min) and absolute lifetime
  (``SESSION_COOKIE_AGE``, 12 h) from the moment of sign-in.

The epoch lives in Redis (through the cache, so keys carry the tenant's schema)
and in each session when it starts; a session whose epoch is behind is ended.
JWTs carry it too (``epc``, see :mod:`accounts.tokens`).
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


def epoch_key(user_id) -> str:
    """The cache key of the epoch, for callers that batch it with other reads (API tokens)."""
    return _key(user_id)


def current(user_id) -> int:
    value = cache.get(_key(user_id))
    if value is None:
        value = 0
        cache.add(_key(user_id), value, _TTL)
    return int(value)


def current_for_issue(user_id) -> int:
    """The epoch to write into a new session or token, and keep it in Redis for
    ``_TTL`` more: a lost epoch key would read 0 and end what carries the old one."""
    value = current(user_id)
    cache.touch(_key(user_id), _TTL)
    return value


def bump(user_id) -> int:
    """Invalidate everything issued to this user so far; returns the new epoch."""
    epoch = time.time_ns()
    cache.set(_key(user_id), epoch, _TTL)
    return epoch


STARTED, LAST_SEEN = "parley_session_started", "parley_session_seen"


def remember(request, user) -> None:
    now = int(time.time())
    request.session[SESSION_KEY] = current_for_issue(user.pk)
    request.session[STARTED] = request.session[LAST_SEEN] = now


def _expired(request) -> bool:
    from django.conf import settings

    now = int(time.time())
    started = int(request.session.get(STARTED, 0))
    seen = int(request.session.get(LAST_SEEN, 0))
    if (
        now - started > settings.SESSION_COOKIE_AGE
        or now - seen > settings.PARLEY_SESSION_IDLE_SECONDS
    ):
        return True
    if now - seen >= 30:  # record activity, without a session write on every request
        request.session[LAST_SEEN] = now
    return False


class RevocationMiddleware:
    """After authentication: end a session issued before the user's epoch moved."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            issued = request.session.get(SESSION_KEY)
            revoked = issued is None or int(issued) < current(user.pk) or not user.is_active
            expired = not revoked and _expired(request)
            if revoked or expired:
                if expired:
                    from audit.context import actor_for_user
                    from audit.services import record

                    record(
                        "auth.session.expired",
                        actor=actor_for_user(user),
                        target_type="user",
                        target_id=user.pk,
                        request=request,
                    )
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
