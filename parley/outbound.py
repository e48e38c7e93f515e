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
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
) -> OutboundResponse:
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
    if parts.scheme == "https":
        context = (
            ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        pool: urllib3.HTTPConnectionPool = _VettedHTTPSPool(
            parts.hostname, port or 443, timeout=pool_timeout, ssl_context=context, maxsize=1
        )
    else:
        pool = _VettedHTTPPool(parts.hostname, port or 80, timeout=pool_timeout, maxsize=1)
    attempt = 0
    try:
        while True:
            attempt += 1
            started = time.perf_counter()
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
                )
                status, body = resp.status, resp.data
                if status < 300:
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
            except OutboundError as exc:  # the guard, at connect time
                error = exc
            except (Urllib3Error, TimeoutError, ssl.SSLError, OSError) as exc:
                error = OutboundError(f"{_reason(exc)} calling {_safe(url)}", transient=True)
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
    finally:
        pool.close()


def _reason(exc: BaseException) -> str:
    """The innermost exception's type name (urllib3 wraps the socket's error)."""
    seen = exc
    while getattr(seen, "reason", None) is not None and isinstance(seen.reason, BaseException):
        seen = seen.reason
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
