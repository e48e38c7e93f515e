"""Rate limits in Redis: per address on sign-in, per user and per tenant on the API.

Each limit is a sliding-window counter: two fixed windows (the current and the
previous one) and an estimate ``previous * (share of it still inside the
sliding window) + current``. One Redis round trip per check (``INCR`` +
``EXPIRE`` + ``GET`` in one ``MULTI``), no list of timestamps to read and
rewrite (DRF's ``SimpleRateThrottle`` does that, and is racy), and no burst of
twice the rate at a window boundary as a plain fixed window would allow. A
refused request is taken back out of the count, so a client that waits for
``Retry-After`` gets through.

Keys go through the Django cache's key function, so they carry the tenant's
schema: one tenant's traffic never uses up another's budget. Rates are
settings (``PARLEY_RATE_*``, ``"<count>/<sec|min|hour|day>"``) read on every
check, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from functools import lru_cache

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from rest_framework.throttling import BaseThrottle

from audit.context import client_ip

_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}
_UNITS |= {"h": 3600, "hour": 3600, "d": 86400, "day": 86400}
RATE_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/min"`` → ``(30, 60)``: requests allowed per period in seconds."""
    match = RATE_PATTERN.match(rate.lower())
    if not match or match.group(2) not in _UNITS or int(match.group(1)) < 1:
        raise ValueError(f"bad rate {rate!r}: use <count>/<sec|min|hour|day>, e.g. 30/min")
    return int(match.group(1)), _UNITS[match.group(2)]


def redis_client():
    """One Redis client per process on the cache's server, or None if the cache is not Redis.

    For the per-request hot paths (rate limits, token revocation state): Django's
    RedisCache builds a new ``redis.Redis`` for every call, which with redis-py 8
    costs more than the round trip itself. Keys still go through
    ``cache.make_key`` (tenant prefix), and integers are stored unpickled by
    Django's serializer, so both sides read each other's values.
    """
    if not isinstance(caches["default"], RedisCache):  # ``cache`` itself is a proxy
        return None
    location = settings.CACHES["default"]["LOCATION"]
    first = location if isinstance(location, str) else location[0]
    return _client_for(re.split("[;,]", first)[0])


@lru_cache(maxsize=4)
def _client_for(url: str):
    import redis

    return redis.Redis.from_url(url)


def get_ints(keys: list[str]) -> list[int | None]:
    """Integer values of cache keys, in one round trip."""
    client = redis_client()
    if client is None:
        found = cache.get_many(keys)
        return [found.get(k) for k in keys]
    return [None if v is None else int(v) for v in client.mget([cache.make_key(k) for k in keys])]


def _count(current: str, previous: str, ttl: int) -> tuple[int, int]:
    """Add one to ``current``; returns (current, previous) after it."""
    client = redis_client()
    if client is not None:
        full_current = cache.make_key(current)
        with client.pipeline(transaction=True) as pipe:
            pipe.incr(full_current)
            pipe.expire(full_current, ttl)
            pipe.get(cache.make_key(previous))
            now_count, _, before = pipe.execute()
        return int(now_count), int(before or 0)
    # Other cache backends (not used by Parley, kept so a misconfiguration degrades, not crashes).
    cache.add(current, 0, ttl)
    return int(cache.incr(current)), int(cache.get(previous) or 0)


def _uncount(current: str) -> None:
    client = redis_client()
    if client is not None:
        client.decr(cache.make_key(current))  # the key lives two windows past its last hit
        return
    with contextlib.suppress(ValueError):
        cache.decr(current)


def hit(*, scope: str, ident: str, rate: str, now: float | None = None) -> int | None:
    """Count one request of ``ident`` in ``scope``: None when allowed, else seconds to wait."""
    limit, period = parse_rate(rate)
    now = time.time() if now is None else now
    window, into = divmod(now, period)
    window = int(window)
    current = f"rl:{scope}:{ident}:{window}"
    count, previous = _count(current, f"rl:{scope}:{ident}:{window - 1}", 2 * period + 1)
    weight = 1 - into / period  # share of the previous window still inside the sliding one
    if previous * weight + count <= limit:
        return None
    _uncount(current)
    return _retry_after(limit, period, into, count - 1, previous)


def _retry_after(limit: int, period: int, into: float, count: int, previous: int) -> int:
    """Seconds until one more request fits (the counts exclude the refused request)."""
    excess = previous * (1 - into / period) + count + 1 - limit
    if previous and count + 1 <= limit:
        # The previous window's share decays by previous/period per second.
        wait = excess * period / previous
    else:
        # Only the next window helps: then this window's count decays.
        fraction = 1 - (limit - 1) / count if count else 0
        wait = (period - into) + period * max(0.0, fraction)
    return max(1, math.ceil(wait))


# --- DRF throttles -------------------------------------------------------------------------------


class _RedisThrottle(BaseThrottle):
    scope = ""
    rate_setting = ""

    def ident(self, request) -> str | None:
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        ident = self.ident(request)
        if ident is None:
            return True
        self._wait = hit(scope=self.scope, ident=ident, rate=getattr(settings, self.rate_setting))
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class TokenRateThrottle(_RedisThrottle):
    """Per client address on the token endpoints (sign-in, refresh, revoke)."""

    scope = "token"
    rate_setting = "PARLEY_RATE_TOKEN_PER_IP"

    def ident(self, request) -> str | None:
        return client_ip(request) or "unknown"


class UserRateThrottle(_RedisThrottle):
    """Per signed-in user (per address for the few endpoints open to anyone)."""

    scope = "user"
    rate_setting = "PARLEY_RATE_API_PER_USER"

    def ident(self, request) -> str | None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"u{user.pk}"
        return f"ip{client_ip(request) or 'unknown'}"


class TenantRateThrottle(_RedisThrottle):
    """The whole tenant's API traffic (the key carries the schema anyway; named for clarity)."""

    scope = "tenant"
    rate_setting = "PARLEY_RATE_API_PER_TENANT"

    def ident(self, request) -> str | None:
        return connection.schema_name


# --- sign-in pages --------------------------------------------------------------------------------


class LoginRateLimitMixin:
    """For the sign-in views: a POST beyond ``PARLEY_RATE_LOGIN_PER_IP`` gets 429.

    Counted before the form is even validated, so a refused attempt costs no
    password hash and does not touch the lockout counters.
    """

    def post(self, request, *args, **kwargs):
        wait = hit(
            scope="login",
            ident=client_ip(request) or "unknown",
            rate=settings.PARLEY_RATE_LOGIN_PER_IP,
        )
        if wait is None:
            return super().post(request, *args, **kwargs)
        messages.error(
            request,
            f"Too many sign-in attempts from your network. Try again in {wait} seconds.",
        )
        # An unbound form: rendering the posted one would validate it, i.e. check the password.
        form = self.get_form_class()(request=request)
        response = self.render_to_response(self.get_context_data(form=form), status=429)
        response["Retry-After"] = str(wait)
        return response
