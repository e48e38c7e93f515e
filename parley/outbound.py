"""The one module through which Parley calls other systems over HTTP (and TCP).

Timeouts always; retries with exponential backoff for transient failures
(connection errors, 429, 5xx), none for permanent ones (other 4xx); every
attempt logged with its outcome, never with a body or a secret.

The destination guard (unless ``PARLEY_OUTBOUND_ALLOW_PRIVATE``): only globally
routable addresses, or those in ``PARLEY_OUTBOUND_ALLOWED_NETWORKS``. It is applied
where the socket is opened, to the very address the socket connects to: every new
connection (first try, retry, reconnect) resolves the name, vets every answer and
connects to a vetted address, while TLS (SNI, certificate check) and the ``Host``
header keep the original name. Vetting a name and letting the HTTP client resolve
it again would let DNS rebinding swap in 127.0.0.1 between the two lookups.

A circuit breaker per destination and a rate limit per caller-supplied key
(a channel), both kept in Redis so every worker process shares them, refuse a
call without touching the network (:class:`CircuitOpen`, :class:`RateLimited`,
both transient, with ``retry_after``). They fail open: when Redis is unreachable
calls proceed, with one warning per outage.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import redis
import urllib3
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 ranges that carry an IPv4 address inside them: the wrapped address decides.
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated; includes :: and ::1


# How much of an error answer is kept for the caller to classify (a vendor's JSON error).
ERROR_BODY_LIMIT = 16 * 1024
# The longest Retry-After honoured between two attempts of one call; a longer one
# ends the call, and the caller's own schedule (a task retry) takes over.
RETRY_AFTER_LIMIT = 30.0


class OutboundError(Exception):
    """A refused or failed outbound call.

    ``body`` (at most ``ERROR_BODY_LIMIT`` bytes) and ``headers`` (names lower-cased)
    are the error answer's, so a channel adapter can read the vendor's error code;
    they are never put into the message, and callers must not log them.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        transient: bool = False,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.transient = status, transient
        self.body, self.headers = body, headers or {}

    @property
    def retry_after(self) -> float | None:
        """Seconds from a numeric ``Retry-After`` header, when there is one."""
        raw = self.headers.get("retry-after", "").strip()
        if raw.isascii() and raw.isdigit() and len(raw) <= 6:
            return float(raw)
        return None


class CircuitOpen(OutboundError):
    """The destination's circuit is open: refused without a network request.

    ``retry_after`` is the number of seconds until a trial call may be let through.
    """

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message, transient=True)
        self._retry_after = max(0.0, retry_after)

    @property
    def retry_after(self) -> float:
        return self._retry_after


class RateLimited(OutboundError):
    """The caller's rate (``rate_key``) is spent: refused without a network request.

    ``retry_after`` is the number of seconds until the next call fits.
    """

    def __init__(self, message: str, *, retry_after: float):
        super().__init__(message, transient=True)
        self._retry_after = max(0.0, retry_after)

    @property
    def retry_after(self) -> float:
        return self._retry_after


class AttemptHook(Protocol):
    """Told about every attempt that went to the network (see ``request``)."""

    def __call__(
        self, *, attempt: int, status: int | None, error: str | None, elapsed_ms: float
    ) -> None: ...


@dataclass
class OutboundResponse:
    status: int
    body: bytes
    attempts: int

    def json(self) -> Any:
        return json.loads(self.body or b"null")


# --- the destination guard -----------------------------------------------------------------------


def refusal_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached from production, or None when it may.

    ``is_global`` alone is not enough: it calls multicast global, and it judges an
    IPv6 address that wraps an IPv4 one (6to4, NAT64, IPv4-mapped) by the wrapper,
    not by the IPv4 host the packets end up at.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return refusal_reason(address.ipv4_mapped)
        if address in _NAT64_WELL_KNOWN:
            return refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            return refusal_reason(address.sixtofour)
        if address.teredo is not None:
            # The client half is the far end's NAT; the tunnel relays anywhere.
            return "a Teredo tunnel address"
        if address in _IPV4_COMPATIBLE:
            return "an IPv4-compatible (deprecated) or unspecified IPv6 address"
    if address.is_multicast:
        return "a multicast address"
    if (
        not address.is_global
        or address.is_reserved
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    ):
        return "a private, loopback, link-local or otherwise non-public address"
    return None


def _explicitly_allowed(address: IPAddress) -> bool:
    return any(
        address.version == network.version and address in network
        for network in settings.PARLEY_OUTBOUND_ALLOWED_NETWORKS
    )


def _vet(host: str, address: IPAddress) -> None:
    if settings.PARLEY_OUTBOUND_ALLOW_PRIVATE or _explicitly_allowed(address):
        return
    reason = refusal_reason(address)
    if reason:
        raise OutboundError(f"{host!r} resolves to {reason}; refused")


def resolve_vetted(host: str, port: int | None = None) -> list[tuple[Any, ...]]:
    """Resolve ``host`` and return its ``getaddrinfo`` answers (TCP), each vetted.

    One refused answer refuses the name: which answer a client would pick is not ours
    to predict. DNS failures are transient; refusals are permanent.
    """
    if not host:
        raise OutboundError("no host to connect to")
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundError(f"cannot resolve {host!r}", transient=True) from None
    if not infos:
        raise OutboundError(f"cannot resolve {host!r}", transient=True)
    for info in infos:
        _vet(host, ipaddress.ip_address(info[4][0]))
    return infos


def check_destination(host: str, port: int | None = None) -> None:
    """Refuse a host that resolves to anything but globally routable addresses
    (unless PARLEY_OUTBOUND_ALLOW_PRIVATE, or the address is in
    PARLEY_OUTBOUND_ALLOWED_NETWORKS): a tenant-configured URL must not reach the
    platform's own network. For validating configuration; connections made through
    this module (``request``, ``open_connection``) vet again when they connect."""
    if settings.PARLEY_OUTBOUND_ALLOW_PRIVATE:
        return  # development: names like shop.example need not resolve to be saved
    resolve_vetted(host, port)


def open_connection(
    host: str,
    port: int,
    *,
    timeout: float | None,
    socket_options: list[tuple[int, int, int | bytes]] | None = None,
) -> socket.socket:
    """A TCP connection to ``host`` made to an address vetted in this very call."""
    last: OSError | None = None
    for family, kind, proto, _name, sockaddr in resolve_vetted(host, port):
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            last = exc
            sock.close()
    raise last or OSError(f"cannot connect to {host!r}")


class _VettedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        return open_connection(
            self._dns_host, self.port, timeout=self.timeout, socket_options=self.socket_options
        )


class _VettedHTTPSConnection(HTTPSConnection):
    # HTTPSConnection.connect() wraps what _new_conn returns, with self.host as SNI
    # and as the name the certificate must carry: the vetted IP never replaces it.
    def _new_conn(self) -> socket.socket:
        return open_connection(
            self._dns_host, self.port, timeout=self.timeout, socket_options=self.socket_options
        )


class _VettedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _VettedHTTPConnection


class _VettedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _VettedHTTPSConnection


# --- connection pools: keep-alive per destination ----------------------------------------------------

# A process keeps its connections to a destination open between calls (keep-alive):
# a channel's replies then cost one TCP and TLS handshake per connection, not per
# message, and the TLS context (CA bundle loading) is built once per destination.
# Every *new* connection still vets the address it connects to (open_connection);
# a kept connection stays with the address vetted when it was opened.
POOL_CONNECTIONS = 4  # idle connections kept per destination (more may be open at once)
POOLS_MAX = 64  # destinations kept per process; the least recently used is closed
_pools: dict[tuple, urllib3.HTTPConnectionPool] = {}
_pools_pid = 0
_pools_lock = threading.Lock()


def _pool(scheme: str, host: str, port: int | None, ca_pem: str | None):
    """This process's pool for one destination (and CA bundle), created on first use."""
    global _pools_pid
    key = (scheme, host, port, ca_pem)
    with _pools_lock:
        if _pools_pid != os.getpid():
            # Forked (gunicorn, Celery prefork): the parent's sockets are not ours.
            _pools.clear()
            _pools_pid = os.getpid()
        pool = _pools.pop(key, None)
        if pool is None:
            if scheme == "https":
                context = (
                    ssl.create_default_context(cadata=ca_pem)
                    if ca_pem
                    else ssl.create_default_context()
                )
                context.minimum_version = ssl.TLSVersion.TLSv1_2
                pool = _VettedHTTPSPool(
                    host, port or 443, ssl_context=context, maxsize=POOL_CONNECTIONS
                )
            else:
                pool = _VettedHTTPPool(host, port or 80, maxsize=POOL_CONNECTIONS)
            while len(_pools) >= POOLS_MAX:
                _pools.pop(next(iter(_pools))).close()
        _pools[key] = pool  # most recently used last
        return pool


def pools_clear() -> None:
    """Close every kept connection of this process (tests; a changed network)."""
    with _pools_lock:
        while _pools:
            _pools.popitem()[1].close()


# --- circuit breaker and rate limit (shared through Redis) -----------------------------------------

# A streak of failures with no new one for this long is forgotten: "N consecutive
# failures within a window", the window sliding with each failure.
BREAKER_WINDOW_SECONDS = 60
# How long an open (then half-open) circuit's state is kept after its cool-down:
# with no call at all for that long, the destination starts closed again.
BREAKER_KEEP_SECONDS = 3600
# After Redis failed, it is left alone this long (calls proceed unguarded) rather
# than making every call wait for a Redis timeout.
REDIS_PAUSE_SECONDS = 5.0

# The wall clock shared by all workers' views of the breaker and the buckets (hosts
# run NTP; a skew of milliseconds is nothing against seconds of cool-down). A module
# attribute so tests can give an explicit clock.
clock: Callable[[], float] = time.time

# Both scripts run atomically in Redis: read, decide and write are one step for all
# workers, which is what makes the half-open trial a claim only one caller wins.
# Numbers go in and out as strings (Lua would truncate a float reply to an integer).
_ADMIT = """
local opened_until = tonumber(redis.call('HGET', KEYS[1], 'opened_until'))
if not opened_until then return {0, '0'} end
local now = tonumber(ARGV[1])
if now < opened_until then return {1, tostring(opened_until - now)} end
local trial_until = tonumber(redis.call('HGET', KEYS[1], 'trial_until'))
if trial_until and now < trial_until then return {1, tostring(trial_until - now)} end
redis.call('HSET', KEYS[1], 'trial_until', tostring(now + tonumber(ARGV[2])))
return {2, '0'}
"""

_RECORD = """
if ARGV[1] == 'ok' then
  redis.call('DEL', KEYS[1])
  return 0
end
local now = tonumber(ARGV[2])
local reset = tonumber(ARGV[4])
local opened_until = tonumber(redis.call('HGET', KEYS[1], 'opened_until'))
if opened_until then
  if now >= opened_until then
    redis.call('HSET', KEYS[1], 'opened_until', tostring(now + reset))
    redis.call('HDEL', KEYS[1], 'trial_until')
    redis.call('EXPIRE', KEYS[1], math.ceil(reset) + tonumber(ARGV[6]))
  end
  return 1
end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[1], 'failures')
  redis.call('HSET', KEYS[1], 'opened_until', tostring(now + reset))
  redis.call('EXPIRE', KEYS[1], math.ceil(reset) + tonumber(ARGV[6]))
  return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0
"""

# A token bucket holding one second's worth of calls, refilled continuously.
_TAKE = """
local now = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if not tokens or not at then
  tokens = rate
  at = now
end
if now > at then
  tokens = math.min(rate, tokens + (now - at) * rate)
  at = now
end
local wait = '0'
-- (1e-6: epoch seconds as doubles are exact to about 1e-7 s; a token refilled to
-- 0.9999999 by rounding is a whole one)
if tokens + 1e-6 >= 1 then
  tokens = tokens - 1
else
  wait = tostring((1 - tokens) / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], 2)
return wait
"""


def destination_of(url: str) -> str:
    """The breaker's unit: scheme, host and port (``https://graph.facebook.com:443``)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}:{port}"


class CircuitBreaker:
    """Per-destination circuit state in Redis, shared by every client of that Redis.

    closed → (``failures`` consecutive failures, each within ``BREAKER_WINDOW_SECONDS``
    of the last) → open for ``reset_seconds`` → half-open: one caller claims the
    trial (for ``lease`` seconds, so a worker that dies mid-trial does not wedge
    it); its success closes the circuit, its failure opens it again. A trial that
    ends neither way (a 429, a refusal by our guard) keeps the claim until its lease
    runs out, and the next caller after that makes the next trial.
    """

    def __init__(self, client: redis.Redis, *, failures: int, reset_seconds: float):
        self.failures, self.reset_seconds = failures, reset_seconds
        self._admit = client.register_script(_ADMIT)
        self._record = client.register_script(_RECORD)

    @staticmethod
    def key(destination: str) -> str:
        return f"parley:outbound:breaker:{destination}"

    def admit(self, destination: str, *, now: float, lease: float) -> bool:
        """Let a call through (True when it is the half-open trial) or raise CircuitOpen."""
        verdict, seconds = self._admit(keys=[self.key(destination)], args=[repr(now), repr(lease)])
        if int(verdict) == 1:
            raise CircuitOpen(
                f"circuit open for {destination}; not called", retry_after=float(seconds)
            )
        return int(verdict) == 2

    def record(self, destination: str, *, failed: bool, now: float) -> bool:
        """Count a call's outcome; True when the circuit is (now) open."""
        opened = self._record(
            keys=[self.key(destination)],
            args=[
                "fail" if failed else "ok",
                repr(now),
                self.failures,
                repr(float(self.reset_seconds)),
                BREAKER_WINDOW_SECONDS,
                BREAKER_KEEP_SECONDS,
            ],
        )
        return bool(int(opened))


class RateLimiter:
    """A token bucket per key in Redis (one second's burst), shared by every client."""

    def __init__(self, client: redis.Redis):
        self._take = client.register_script(_TAKE)

    @staticmethod
    def key(rate_key: str) -> str:
        return f"parley:outbound:rate:{rate_key}"

    def take(self, rate_key: str, *, rate_per_second: float, now: float) -> None:
        """Spend one token, or raise RateLimited with the seconds until one is there."""
        wait = float(
            self._take(keys=[self.key(rate_key)], args=[repr(now), repr(float(rate_per_second))])
        )
        if wait > 0:
            raise RateLimited(f"rate limit reached for {rate_key}; not called", retry_after=wait)


class _Shared:
    """One Redis URL's client, breaker and limiter, and whether Redis is failing."""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.breaker = CircuitBreaker(
            self.client,
            failures=settings.PARLEY_OUTBOUND_BREAKER_FAILURES,
            reset_seconds=settings.PARLEY_OUTBOUND_BREAKER_RESET_SECONDS,
        )
        self.limiter = RateLimiter(self.client)
        self.paused_until = 0.0
        self.warned = False
        self.lock = threading.Lock()

    def run(self, operation: Callable[[], Any]) -> Any:
        """``operation()``, or None when Redis fails (fail open: the call proceeds)."""
        if time.monotonic() < self.paused_until:
            return None
        try:
            result = operation()
        except redis.exceptions.RedisError as exc:
            with self.lock:
                self.paused_until = time.monotonic() + REDIS_PAUSE_SECONDS
                if not self.warned:
                    self.warned = True
                    logger.warning(
                        "outbound: Redis unavailable (%s); circuit breaker and rate limit "
                        "skipped until it is back",
                        type(exc).__name__,
                    )
            return None
        if self.warned:
            with self.lock:
                self.warned = False
            logger.info("outbound: Redis available again; circuit breaker and rate limit resume")
        return result


_shared_by_url: dict[str, _Shared] = {}
_shared_lock = threading.Lock()


def _shared() -> _Shared:
    url = settings.REDIS_URL
    with _shared_lock:
        shared = _shared_by_url.get(url)
        if shared is None:
            shared = _shared_by_url[url] = _Shared(url)
    # Read each call, so a changed setting (a test's override) applies at once.
    shared.breaker.failures = settings.PARLEY_OUTBOUND_BREAKER_FAILURES
    shared.breaker.reset_seconds = settings.PARLEY_OUTBOUND_BREAKER_RESET_SECONDS
    return shared


# --- HTTP ----------------------------------------------------------------------------------------


def request(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 0.5,
    ca_pem: str | None = None,
    purpose: str = "",
    rate_key: str | None = None,
    rate_per_second: float | None = None,
    on_attempt: AttemptHook | None = None,
) -> OutboundResponse:
    """Call ``url`` with up to ``retries`` retries of transient failures.

    Before each attempt, without touching the network: ``rate_key`` (e.g.
    ``"channel:<id>"``), when given, spends a token of its shared bucket
    (``rate_per_second``, default ``PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND``) or
    raises :class:`RateLimited`; the destination's circuit breaker lets the
    attempt through or raises :class:`CircuitOpen`. Both are transient and carry
    ``retry_after``.

    ``on_attempt(attempt=, status=, error=, elapsed_ms=)`` is called after every
    attempt that went to the network: ``status`` is the HTTP status or None when no
    answer came, ``error`` None on success, else the error's class name (the
    innermost one for a network failure: ``ConnectionRefusedError``,
    ``ReadTimeoutError``). An exception it raises is logged and ignored: the call
    happened either way, and failing after a delivered message would send it twice.
    """
    if rate_key is not None and (
        not isinstance(rate_key, str)
        or not 0 < len(rate_key) <= 200
        or not rate_key.isascii()
        or not rate_key.isprintable()
    ):
        raise ValueError("rate_key must be 1-200 printable ASCII characters")
    rate = (
        settings.PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND
        if rate_per_second is None
        else rate_per_second
    )
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 < rate < math.inf:
        raise ValueError("rate_per_second must be a positive finite number")
    if not url.startswith(("https://", "http://")):
        raise OutboundError(f"refusing a non-HTTP URL scheme for {purpose or 'outbound call'}")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise OutboundError(f"bad port in the URL for {purpose or 'outbound call'}") from None
    if not parts.hostname:
        raise OutboundError(f"no host in the URL for {purpose or 'outbound call'}")
    if parts.username or parts.password:
        raise OutboundError(f"refusing credentials in the URL for {purpose or 'outbound call'}")
    # Early, clear refusal for configuration that is wrong on its face; the pool's
    # connections vet again each time they connect.
    check_destination(parts.hostname, port)
    data = None
    all_headers = {"User-Agent": "Parley/1", **(headers or {})}
    if json_body is not None:
        data = json.dumps(json_body, separators=(",", ":")).encode()
        all_headers["Content-Type"] = "application/json"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
    pool = _pool(parts.scheme, parts.hostname, port, ca_pem)
    destination = destination_of(url)
    shared = _shared()
    # A trial call holds the half-open claim this long at most (connect + read + margin).
    lease = 2 * timeout + 5
    attempt = 0
    while True:
        attempt += 1
        if rate_key is not None:
            shared.run(lambda: shared.limiter.take(rate_key, rate_per_second=rate, now=clock()))
        shared.run(lambda: shared.breaker.admit(destination, now=clock(), lease=lease))
        started = time.perf_counter()
        # Whether this attempt says the destination is failing (True), working
        # (False), or nothing about it (None: a 429, a refusal by our own guard).
        failing: bool | None
        status: int | None = None
        try:
            # retries=False, redirect=False: our loop retries; a 3xx is returned,
            # never followed (it could point past the guard).
            resp = pool.urlopen(
                method,
                target,
                body=data,
                headers=all_headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=pool_timeout,
            )
            status, body = resp.status, resp.data
            if status < 300:
                _after_attempt(
                    shared, destination, False, on_attempt, attempt, status, None, started
                )
                logger.info(
                    "outbound %s %s purpose=%s status=%s attempt=%s ms=%.0f",
                    method,
                    _safe(url),
                    purpose,
                    status,
                    attempt,
                    (time.perf_counter() - started) * 1000,
                )
                return OutboundResponse(status=status, body=body, attempts=attempt)
            error = OutboundError(
                f"HTTP {status} from {_safe(url)}",
                status=status,
                transient=status in TRANSIENT_STATUSES,
                body=bytes(body[:ERROR_BODY_LIMIT]),
                headers={k.lower(): v for k, v in resp.headers.items()},
            )
            # 429 is the destination telling this sender to slow down: it is up,
            # and on a shared host (graph.facebook.com) one tenant's 429 must not
            # cut off every tenant. Retry-After and the rate limit deal with it.
            failing = None if status == 429 else (status >= 500 or status == 408)
            error_name = type(error).__name__
        except OutboundError as exc:  # the guard, at connect time
            error, failing, error_name = exc, None, type(exc).__name__
        except (Urllib3Error, TimeoutError, ssl.SSLError, OSError) as exc:
            error = OutboundError(f"{_reason(exc)} calling {_safe(url)}", transient=True)
            failing, error_name = True, type(_innermost(exc)).__name__
        _after_attempt(
            shared, destination, failing, on_attempt, attempt, status, error_name, started
        )
        logger.warning(
            "outbound %s %s purpose=%s failed attempt=%s transient=%s: %s",
            method,
            _safe(url),
            purpose,
            attempt,
            error.transient,
            error,
        )
        if not error.transient or attempt > retries:
            raise error
        wait = backoff * (2 ** (attempt - 1))
        if error.retry_after is not None:
            if error.retry_after > RETRY_AFTER_LIMIT:
                raise error
            wait = max(wait, error.retry_after)
        time.sleep(wait)


def _after_attempt(
    shared: _Shared,
    destination: str,
    failing: bool | None,
    on_attempt: AttemptHook | None,
    attempt: int,
    status: int | None,
    error: str | None,
    started: float,
) -> None:
    if failing is not None:
        shared.run(lambda: shared.breaker.record(destination, failed=failing, now=clock()))
    if on_attempt is None:
        return
    try:
        on_attempt(
            attempt=attempt,
            status=status,
            error=error,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
    except Exception:
        logger.exception(
            "outbound: the on_attempt callback failed; attempt %s not recorded", attempt
        )


def _innermost(exc: BaseException) -> BaseException:
    """The exception urllib3 wrapped (the socket's error, our guard's refusal): its
    ``reason``, or the exception among its arguments (``ProtocolError("Connection
    aborted.", ConnectionRefusedError(...))``)."""
    seen: BaseException = exc
    for _ in range(10):  # a bounded walk: a cycle must not hang a send
        inner = getattr(seen, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((a for a in seen.args if isinstance(a, BaseException)), None)
        if inner is None:
            break
        seen = inner
    return seen


def _reason(exc: BaseException) -> str:
    """The innermost exception's type name (urllib3 wraps the socket's error)."""
    seen = _innermost(exc)
    if isinstance(seen, OutboundError):
        return str(seen)
    return type(seen).__name__


def _safe(url: str) -> str:
    """The URL without query string or credentials, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
