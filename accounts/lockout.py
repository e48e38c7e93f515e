"""Sign-in throttling: repeated failures lock the account and the address.

Counters live in Redis through the tenant-prefixed cache, so a lock in one
tenant means nothing in another. A lock ends by itself after
``PARLEY_LOGIN_LOCK_SECONDS`` or when an administrator lifts it
(``manage.py accounts_unlock``).
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

_IP = "login-fail:ip:"


def _user_key(username: str) -> str:
    """The account's counter key: a digest of the typed name, so whatever was typed
    (spaces, any length, an e-mail address) never reaches a cache key as text."""
    typed = (username or "").strip().lower()[:150]
    digest = hashlib.sha256(typed.encode("utf-8", "surrogatepass")).hexdigest()
    return f"login-fail:user:{digest}"


def _is_locked(key: str, limit: int) -> bool:
    return int(cache.get(key, 0)) >= limit


def locked(*, username: str, ip: str | None) -> bool:
    if _is_locked(_user_key(username), settings.PARLEY_LOGIN_MAX_FAILURES):
        return True
    return bool(ip) and _is_locked(_IP + ip, settings.PARLEY_LOGIN_MAX_FAILURES_PER_IP)


def register_failure(*, username: str, ip: str | None) -> None:
    ttl = settings.PARLEY_LOGIN_LOCK_SECONDS
    for key in [_user_key(username)] + ([_IP + ip] if ip else []):
        if cache.add(key, 1, ttl):
            continue
        try:
            cache.incr(key)
        except ValueError:  # expired in between
            cache.add(key, 1, ttl)


def clear(*, username: str | None = None, ip: str | None = None) -> None:
    if username:
        cache.delete(_user_key(username))
    if ip:
        cache.delete(_IP + ip)
