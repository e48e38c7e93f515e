"""Rate limits in Redis: per address on sign-in, per user and per tenant on the API.

Each limit is a sliding-window counter: two fixed windows (the current and the
previous one) and an estimate ``previous * (share of it still inside the
sliding window) + current``. One Redis round trip per request, however many
limits apply (``INCR`` + ``EXPIRE`` + ``GET`` for each, in one ``MULTI``;
an API request is counted per user and per tenant), no list of timestamps to read and
rewrite (DRF's ``SimpleRateThrottle`` does that, and is racy), and no burst of
twice the rate at a window boundary as a plain fixed window would allow. A
refused request is taken back out of the count, so a client that waits for
``Retry-After`` gets through.

A limit met hundreds of times a second by one process (a busy channel's
webhooks) can be counted a lease at a time (:func:`hit_leased`): one round trip
per lease of requests instead of one per request.

Keys go through the Django cache's key function, so they carry the tenant's
schema: one tenant's traffic never uses up another's budget. Rates are
settings (``PARLEY_RATE_*``, ``"<count>/<sec|min|hour|day>"``) read on every
check, so ``override_settings`` works in tests.
"""

from __future__ import annotations

import abc
import contextlib
import math
import re
import threading
import time
from dataclasses import dataclass
from functools import lru_cache

import redis
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
    # The cache's socket timeouts too: a stuck Redis fails the request (503), never hangs it.
    options = settings.CACHES["default"].get("OPTIONS", {})
    return _client_for(
        re.split("[;,]", first)[0],
        options.get("socket_connect_timeout"),
        options.get("socket_timeout"),
    )


@lru_cache(maxsize=4)
def _client_for(url: str, connect_timeout: float | None, timeout: float | None):
    return redis.Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=timeout)


_scripts: dict[tuple[int, str], object] = {}


def registered_script(client, source: str):
    """``source`` registered once per Redis client (EVALSHA after the first call;
    redis-py loads it again if the server lost it)."""
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


def get_raw(keys: list[str]) -> list[bytes | None]:
    """Raw values of cache keys written through ``set_raw`` / ints, in one round trip."""
    client = redis_client()
    if client is None:
        found = cache.get_many(keys)
        return [found.get(k) for k in keys]
    return client.mget([cache.make_key(k) for k in keys])


def set_raw(key: str, value: bytes, ttl: int) -> None:
    client = redis_client()
    if client is None:
        cache.set(key, value, ttl)
    else:
        client.set(cache.make_key(key), value, ex=ttl)


def delete_raw(key: str) -> None:
    client = redis_client()
    if client is None:
        cache.delete(key)
    else:
        client.delete(cache.make_key(key))


@dataclass(frozen=True)
class Limit:
    """``rate`` for ``ident`` in ``scope`` (e.g. ``Limit("user", "u42", "600/min")``)."""

    scope: str
    ident: str
    rate: str


# KEYS: current and previous window of each limit, in pairs; ARGV: the units to add,
# then each current's TTL. Returns current count after the increment, previous count,
# per limit. One script rather than a MULTI pipeline of three commands a limit: one
# command to send and one reply to parse on every rate-limited request (each webhook,
# API call and sign-in).
_COUNT = """
local out = {}
for i = 1, #KEYS, 2 do
  local n = redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[(i + 1) / 2 + 1])
  out[#out + 1] = n
  out[#out + 1] = tonumber(redis.call('GET', KEYS[i + 1]) or '0') or 0
end
return out
"""


def _count(keys: list[tuple[str, str]], ttls: list[int], units: int = 1) -> list[tuple[int, int]]:
    """Add ``units`` to each current key; (current, previous) counts after it, in one round trip."""
    client = redis_client()
    if client is not None:
        names = [cache.make_key(key) for pair in keys for key in pair]
        replies = registered_script(client, _COUNT)(keys=names, args=[units, *ttls])
        return [(int(replies[i]), int(replies[i + 1])) for i in range(0, len(replies), 2)]
    # Other cache backends (not used by Parley, kept so a misconfiguration degrades, not crashes).
    counts = []
    for (current, previous), ttl in zip(keys, ttls, strict=True):
        cache.add(current, 0, ttl)
        counts.append((int(cache.incr(current, units)), int(cache.get(previous) or 0)))
    return counts


def _uncount(currents: list[str], units: int = 1) -> None:
    client = redis_client()
    if client is not None:
        with client.pipeline(transaction=False) as pipe:
            for current in currents:  # each key lives two windows past its last hit
                pipe.decrby(cache.make_key(current), units)
            pipe.execute()
        return
    for current in currents:
        with contextlib.suppress(ValueError):
            cache.decr(current, units)


def hit_many(limits: list[Limit], *, now: float | None = None, units: int = 1) -> int | None:
    """Count one request against every limit: None when all allow it, else seconds to wait.

    A request refused by any limit is counted by none (it did not happen).
    ``units``: count that many requests at once (a lease, :func:`hit_leased`).
    """
    now = time.time() if now is None else now
    plans, keys, ttls = [], [], []
    for limit in limits:
        allowed, period = parse_rate(limit.rate)
        window, into = divmod(now, period)
        stem = f"rl:{limit.scope}:{limit.ident}:"
        keys.append((f"{stem}{int(window)}", f"{stem}{int(window) - 1}"))
        ttls.append(2 * period + 1)
        plans.append((allowed, period, into))
    waits = []
    counts = _count(keys, ttls, units)
    for (allowed, period, into), (count, previous) in zip(plans, counts, strict=True):
        weight = 1 - into / period  # share of the previous window still inside the sliding one
        if previous * weight + count > allowed:
            waits.append(_retry_after(allowed, period, into, count - units, previous))
    if not waits:
        return None
    _uncount([current for current, _ in keys], units)
    return max(waits)


def hit(*, scope: str, ident: str, rate: str, now: float | None = None) -> int | None:
    """Count one request of ``ident`` in ``scope``: None when allowed, else seconds to wait."""
    return hit_many([Limit(scope, ident, rate)], now=now)


# --- leases: busy limits counted a share at a time ----------------------------------------------

LEASE_SHARE = 1000  # a lease is at most this fraction (1/n) of a window's allowance...
LEASE_MAX = 50  # ...and at most this many requests
MAX_LEASES = 4096


@dataclass
class _Lease:
    window: int
    left: int


_leases: dict[str, _Lease] = {}
_leases_lock = threading.Lock()


def hit_leased(*, scope: str, ident: str, rate: str, now: float | None = None) -> int | None:
    """:func:`hit` for a limit one process may meet hundreds of times a second (a
    channel's webhooks): None when allowed, else seconds to wait.

    A limit of at least ``2 x LEASE_SHARE`` requests a window is counted a lease at a
    time: one round trip adds ``allowed / LEASE_SHARE`` requests (at most
    ``LEASE_MAX``) to the shared count, and this process lets that many through
    before it asks again. A lease left unused when its window ends was counted all
    the same, so with ``P`` processes the limit may refuse up to ``P`` leases
    (``P / LEASE_SHARE`` of the allowance) early, never late. A lease the count
    cannot take whole is not taken: that request is counted alone, exactly, as
    :func:`hit` counts it, so refusals near the limit and their ``Retry-After`` are
    those of :func:`hit`. A smaller limit is always counted one request at a time.
    """
    now = time.time() if now is None else now
    allowed, period = parse_rate(rate)
    size = min(LEASE_MAX, allowed // LEASE_SHARE)
    if size < 2:
        return hit(scope=scope, ident=ident, rate=rate, now=now)
    window = int(now // period)
    key = cache.make_key(f"lease:{scope}:{ident}:{rate}")  # the tenant's prefix included
    with _leases_lock:
        lease = _leases.get(key)
        if lease is not None and lease.window == window and lease.left > 0:
            lease.left -= 1
            return None
    if hit_many([Limit(scope, ident, rate)], now=now, units=size) is None:
        with _leases_lock:
            if len(_leases) >= MAX_LEASES:
                _leases.clear()
            _leases[key] = _Lease(window, size - 1)
        return None
    return hit(scope=scope, ident=ident, rate=rate, now=now)


def leases_forget() -> None:
    """Drop this process's unused leases (tests that reset the shared counts call it)."""
    with _leases_lock:
        _leases.clear()


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


class _RedisThrottle(BaseThrottle, abc.ABC):
    @abc.abstractmethod
    def limits(self, request) -> list[Limit]:
        """The limits one request counts against."""

    def allow_request(self, request, view) -> bool:
        self._wait = hit_many(self.limits(request))
        return self._wait is None

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)


class TokenRateThrottle(_RedisThrottle):
    """Per client address on the token endpoints (sign-in, refresh, revoke)."""

    def limits(self, request) -> list[Limit]:
        ip = client_ip(request) or "unknown"
        return [Limit("token", ip, settings.PARLEY_RATE_TOKEN_PER_IP)]


class ApiRateThrottle(_RedisThrottle):
    """Every API request: per signed-in user (per address when there is none) and per
    tenant, both counted in one Redis round trip."""

    def limits(self, request) -> list[Limit]:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            who = f"u{user.pk}"
        else:
            who = f"ip{client_ip(request) or 'unknown'}"
        return [
            Limit("user", who, settings.PARLEY_RATE_API_PER_USER),
            # The key carries the schema anyway; named for clarity.
            Limit("tenant", connection.schema_name, settings.PARLEY_RATE_API_PER_TENANT),
        ]


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
