"""The one module through which Parley calls other systems over HTTP.

Timeouts always; retries with exponential backoff for transient failures
(connection errors, 429, 5xx), none for permanent ones (other 4xx); every
attempt logged with its outcome, never with a body or a secret.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class OutboundError(Exception):
    def __init__(self, message: str, *, status: int | None = None, transient: bool = False):
        super().__init__(message)
        self.status, self.transient = status, transient


@dataclass
class OutboundResponse:
    status: int
    body: bytes
    attempts: int

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are refused: a 3xx could point past the private-address guard."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: PLR0913
        return None  # urllib then raises HTTPError for the 3xx


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
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    check_destination(parts.hostname or "", parts.port)
    data = None
    all_headers = {"User-Agent": "Parley/1", **(headers or {})}
    if json_body is not None:
        data = json.dumps(json_body, separators=(",", ":")).encode()
        all_headers["Content-Type"] = "application/json"
    context = ssl.create_default_context(cadata=ca_pem) if ca_pem else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        req = urllib.request.Request(url, data=data, method=method, headers=all_headers)  # noqa: S310
        try:
            opener = urllib.request.build_opener(
                _NoRedirect, urllib.request.HTTPSHandler(context=context)
            )
            with opener.open(req, timeout=timeout) as resp:
                body = resp.read()
                logger.info(
                    "outbound %s %s purpose=%s status=%s attempt=%s ms=%.0f",
                    method,
                    _safe(url),
                    purpose,
                    resp.status,
                    attempt,
                    (time.perf_counter() - started) * 1000,
                )
                return OutboundResponse(status=resp.status, body=body, attempts=attempt)
        except urllib.error.HTTPError as exc:
            transient = exc.code in TRANSIENT_STATUSES
            error = OutboundError(
                f"HTTP {exc.code} from {_safe(url)}", status=exc.code, transient=transient
            )
        except (urllib.error.URLError, TimeoutError, ConnectionError, ssl.SSLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            error = OutboundError(f"{type(reason).__name__} calling {_safe(url)}", transient=True)
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
        time.sleep(backoff * (2 ** (attempt - 1)))


def check_destination(host: str, port: int | None = None) -> None:
    """Refuse hosts that resolve to loopback, private or link-local addresses
    (unless PARLEY_OUTBOUND_ALLOW_PRIVATE): a tenant-configured URL must not
    reach the platform's own network."""
    import ipaddress
    import socket

    from django.conf import settings

    if settings.PARLEY_OUTBOUND_ALLOW_PRIVATE:
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror:
        raise OutboundError(f"cannot resolve {host!r}", transient=True) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_reserved
        ):
            raise OutboundError(f"{host!r} resolves to a private address; refused")


def _safe(url: str) -> str:
    """The URL without query string or credentials, for logs."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
