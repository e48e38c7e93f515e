"""The HTTP seam adapters send through.

An adapter's ``send`` gets an ``http`` callable (:class:`HttpCall`) rather than
calling a client itself: one attempt, an answer for every HTTP status (the
adapter reads the vendor's error body to classify it), :class:`HttpTransportError`
when no answer came. :func:`outbound_http` is the production one, built on
``parley.outbound`` (the one module Parley calls other systems through).

``parley.outbound`` raises ``OutboundError`` for an error answer and keeps its
body (bounded) and headers on it, so a Graph error answered with HTTP 400 is
still told apart by its code (131047 outside the window, 130429 rate limit) and
``Retry-After`` is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from parley import outbound

MAX_REPLY_BYTES = 64 * 1024  # an error or send answer is small; more is not read


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class HttpTransportError(Exception):
    """No HTTP answer: network failure, timeout, or a destination the guard refused.

    ``transient`` is False when retrying cannot help (a refused destination).
    ``retry_after``: seconds to wait at least, when the transport knows (an open
    circuit, a spent rate limit). ``attempted`` is False when nothing went to the
    network (``parley.outbound``'s ``CircuitOpen`` / ``RateLimited``): the caller's
    attempt budget is not spent by Parley's own refusal.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool = True,
        retry_after: float | None = None,
        attempted: bool = True,
    ):
        super().__init__(message)
        self.transient = transient
        self.retry_after = retry_after
        self.attempted = attempted


class HttpCall(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        json_body: Any,
        headers: Mapping[str, str],
        timeout: float,
        purpose: str,
    ) -> HttpReply: ...


def _lower(headers: Any) -> dict[str, str]:
    if not headers:
        return {}
    try:
        return {str(k).lower(): str(v) for k, v in dict(headers).items()}
    except (TypeError, ValueError):
        return {}


def outbound_http(
    method: str,
    url: str,
    *,
    json_body: Any,
    headers: Mapping[str, str],
    timeout: float,
    purpose: str,
    rate_key: str | None = None,
    rate_per_second: float | None = None,
    on_attempt: outbound.AttemptHook | None = None,
) -> HttpReply:
    """One attempt through ``parley.outbound`` (retries=0: the delivery task retries
    with backoff, without holding a worker).

    The delivery seam binds ``rate_key`` (``channel:<id>``), ``rate_per_second`` and
    ``on_attempt`` (``functools.partial``), so an adapter still calls the plain
    :class:`HttpCall`. A circuit or rate-limit refusal becomes a transient
    :class:`HttpTransportError` with ``attempted=False`` and its ``retry_after``."""
    try:
        response = outbound.request(
            method,
            url,
            json_body=json_body,
            headers=dict(headers),
            timeout=timeout,
            retries=0,
            purpose=purpose,
            rate_key=rate_key,
            rate_per_second=rate_per_second,
            on_attempt=on_attempt,
        )
    except (outbound.CircuitOpen, outbound.RateLimited) as exc:
        raise HttpTransportError(
            str(exc), transient=True, retry_after=exc.retry_after, attempted=False
        ) from None
    except outbound.OutboundError as exc:
        if exc.status is None:
            raise HttpTransportError(
                str(exc), transient=exc.transient, retry_after=exc.retry_after
            ) from None
        body = getattr(exc, "body", b"") or b""
        return HttpReply(
            status=exc.status,
            body=bytes(body[:MAX_REPLY_BYTES]) if isinstance(body, bytes | bytearray) else b"",
            headers=_lower(getattr(exc, "headers", None)),
        )
    return HttpReply(
        status=response.status,
        body=response.body[:MAX_REPLY_BYTES],
        headers=_lower(getattr(response, "headers", None)),
    )
