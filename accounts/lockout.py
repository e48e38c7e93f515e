"""Sign-in throttling: repeated failures lock the account and the address.

Counters live in Redis through the tenant-prefixed cache, so a lock in one
tenant means nothing in another. A lock ends by itself after
``PARLEY_LOGIN_LOCK_SECONDS`` or when an administrator lifts it
(``manage.py accounts_unlock``).
"""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache

_USER, _IP = "login-fail:user:", "login-fail:ip:"


def _norm(username: str) -> str:
    return (username or "").strip().lower()[:150]


def _is_locked(key: str, limit: int) -> bool:
    return int(cache.get(key, 0)) >= limit


def locked(*, username: str, ip: str | None) -> bool:
    if _is_locked(_USER + _norm(username), settings.PARLEY_LOGIN_MAX_FAILURES):
        return True
    return bool(ip) and _is_locked(_IP + ip, settings.PARLEY_LOGIN_MAX_FAILURES_PER_IP)


def register_failure(*, username: str, ip: str | None) -> None:
    ttl = settings.PARLEY_LOGIN_LOCK_SECONDS
    for key in [_USER + _norm(username)] + ([_IP + ip] if ip else []):
        if cache.add(key, 1, ttl):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired in between
            cache.add(key, 1, ttl)


def clear(*, username: str | None = None, ip: str | None = None) -> None:
    if username:
        cache.delete(_USER + _norm(username))
    if ip:
        cache.delete(_IP + ip)
