"""What WhatsApp, Messenger and Instagram share: Meta's webhook signature and
subscription handshake, batch bookkeeping, and the Graph API (URLs, the send
call, error classification).

Secrets read (``ChannelAdapter.SECRETS``): ``app_secret`` (signs webhooks),
``verify_token`` (the subscription handshake), ``access_token`` (sends; a
system-user token for WhatsApp, a page token for Messenger and Instagram).
Settings read: ``graph_base_url`` (default ``https://graph.facebook.com``) and
``api_version`` (default ``v21.0``), plus each kind's account id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings as django_settings

from connectors.adapters.base import (
    ChannelAdapter,
    ChannelError,
    DeliveryError,
    InboundMessage,
    ParsedEvent,
    StatusUpdate,
)
from connectors.adapters.http import HttpCall, HttpReply, HttpTransportError
from connectors.adapters.payload import PayloadInvalid, integer

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
API_VERSION = "v21.0"
SEND_TIMEOUT = 10.0  # seconds for one attempt
MAX_ITEMS = 1000  # messages + statuses + errors in one POST; Meta batches far fewer
MAX_ENTRIES = 1000
RATE_LIMIT_RETRY = 60.0  # seconds, when a rate-limit answer names no Retry-After
MAX_RETRY_AFTER = 24 * 3600.0

_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_CHALLENGE = re.compile(r"[\x21-\x7e]{1,128}")  # echoed back: printable ASCII only
_PATH_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # an id that goes into a URL path
_VERSION = re.compile(r"v[0-9]{1,2}\.[0-9]{1,2}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,4096}")  # a bearer token: no space, no CR/LF

# Graph error codes (https://developers.facebook.com/docs/graph-api/guides/error-handling,
# WhatsApp Cloud API error codes). Rate limits: API-level 4, 17, 32, 613, 80007 (WABA),
# 130429 (Cloud API throughput), 131048 (spam rate limit), 131056 (pair rate limit).
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
OUTSIDE_WINDOW_CODE = 131047  # WhatsApp: re-engagement needs a template
# Messenger and Instagram say the same with code 10 ("permission") and a subcode:
# 2018278 (Messenger), 2534022 (Instagram), and the older 2018065 ("... outside of
# allowed window. You need page_messaging_subscriptions permission").
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278, 2534022, 2018065})
# Auth: 102 (session), 190 (access token), 10 and 200-299 (permissions).
AUTH_CODES = frozenset({102, 190, 10})
# "Try again" codes: 1 (API unknown), 2 (API service), 131000 (something went wrong),
# 131016 (service unavailable).
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016})


def header_value(headers: Mapping[str, str], name: str) -> str:
    """Case-insensitive header lookup ('' when missing or not text)."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return value if isinstance(value, str) else ""


def signature_valid(headers: Mapping[str, str], body: bytes, app_secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``, constant time.

    Meta signs the body as sent (escaped-unicode JSON): hash the bytes received,
    never a re-serialisation. A missing secret verifies nothing.
    """
    if not app_secret or not isinstance(body, bytes | bytearray):
        return False
    match = _SIGNATURE.fullmatch(header_value(headers, SIGNATURE_HEADER).strip())
    if match is None:
        return False
    expected = hmac.new(app_secret.encode(), bytes(body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), match.group(1).lower().encode())


def challenge_answer(params: Mapping[str, str], verify_token: str) -> str | None:
    """``hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`` → the challenge, or None."""
    if not verify_token:
        return None
    mode, token, challenge = (
        params.get(k) for k in ("hub.mode", "hub.verify_token", "hub.challenge")
    )
    if mode != "subscribe" or not isinstance(token, str) or not isinstance(challenge, str):
        return None
    try:
        given = token.encode()
    except UnicodeEncodeError:
        return None
    if not hmac.compare_digest(verify_token.encode(), given):
        return None
    # Echoed into a response body: refuse anything that is not a plain token.
    return challenge if _CHALLENGE.fullmatch(challenge) else None


def derived_id(prefix: str, *parts: str) -> str:
    """A deterministic id for events the channel gives none (postbacks, reactions):
    the same event retried by Meta yields the same id, and the length is bounded."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
    return f"{prefix}.{digest}"


class EventBuilder:
    """Collects a batch, enforcing ``MAX_ITEMS`` across every entry and change."""

    def __init__(self, *, max_items: int = MAX_ITEMS):
        self.max_items = max_items
        self.messages: list[InboundMessage] = []
        self.statuses: list[StatusUpdate] = []
        self.errors: list[ChannelError] = []
        self.routing_keys: dict[str, None] = {}
        self.ignored = 0
        self._count = 0

    def _take(self) -> None:
        self._count += 1
        if self._count > self.max_items:
            raise PayloadInvalid(
                "batch_too_large", f"More than {self.max_items} items in one POST."
            )

    def route(self, key: str) -> None:
        self.routing_keys.setdefault(key, None)

    def message(self, message: InboundMessage) -> None:
        self._take()
        self.messages.append(message)

    def status(self, status: StatusUpdate) -> None:
        self._take()
        self.statuses.append(status)

    def error(self, error: ChannelError) -> None:
        self._take()
        self.errors.append(error)

    def skip(self) -> None:
        self._take()
        self.ignored += 1

    def event(self) -> ParsedEvent:
        return ParsedEvent(
            messages=tuple(self.messages),
            statuses=tuple(self.statuses),
            errors=tuple(self.errors),
            routing_keys=tuple(self.routing_keys),
            ignored=self.ignored,
        )


# --- Graph API -----------------------------------------------------------------------------------


def _settings_error(what: str) -> DeliveryError:
    return DeliveryError(
        f"The channel settings are invalid: {what}.", permanent=True, code="settings_invalid"
    )


def content_error(what: str) -> DeliveryError:
    return DeliveryError(what, permanent=True, code="content_invalid")


def path_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _PATH_ID.fullmatch(value):
        raise _settings_error(what)
    return value


def graph_url(settings: Mapping[str, str], path: str) -> str:
    """``{graph_base_url}/{api_version}/{path}`` with both checked."""
    base = settings.get("graph_base_url") or django_settings.PARLEY_META_GRAPH_BASE_URL
    version = settings.get("api_version") or API_VERSION
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        raise _settings_error("api_version is like v21.0")
    if not isinstance(base, str) or len(base) > 200:
        raise _settings_error("graph_base_url")
    parts = urlsplit(base)
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise _settings_error("graph_base_url port") from None
    if (
        parts.scheme not in ("https", "http")
        or not parts.hostname
        or parts.username
        or parts.password
        or parts.query
        or parts.fragment
    ):
        raise _settings_error("graph_base_url is an http(s) URL without credentials or query")
    return f"{base.rstrip('/')}/{version}/{path}"


def bearer(secrets: Mapping[str, str]) -> str:
    token = secrets.get("access_token")
    if not token:
        raise DeliveryError(
            "The channel has no access token.",
            permanent=True,
            code="credentials_missing",
            auth_failed=True,
        )
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        # Never echo it: say only that it cannot be a token.
        raise DeliveryError(
            "The channel's access token is malformed.",
            permanent=True,
            code="credentials_invalid",
            auth_failed=True,
        )
    return f"Bearer {token}"


def retry_after_seconds(value: str) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date), bounded; None when absent or unreadable."""
    value = (value or "").strip()
    if not value or len(value) > 64:
        return None
    if re.fullmatch(r"[0-9]{1,9}", value):
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, min((when - datetime.now(UTC)).total_seconds(), MAX_RETRY_AFTER))


def graph_error_of(body: bytes) -> dict[str, Any]:
    """The ``error`` object of a Graph answer, or {} (never raises)."""
    try:
        document = json.loads(bytes(body[:65536]).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def classify(reply: HttpReply) -> DeliveryError:
    """A Graph error answer → :class:`DeliveryError`. Never quotes the body (Meta's
    messages can name the recipient or echo parameters): code and status only."""
    status = reply.status
    error = graph_error_of(reply.body)
    code = integer(error.get("code"))
    subcode = integer(error.get("error_subcode"))
    retry_after = retry_after_seconds(reply.header("retry-after"))
    what = (
        f"Graph API error {code} (HTTP {status})"
        if code is not None
        else f"Graph API answered HTTP {status}"
    )
    if subcode is not None:
        what += f", subcode {subcode}"
    common = {"vendor_code": code, "http_status": status}
    if code in RATE_LIMIT_CODES or status == 429:
        return DeliveryError(
            f"{what}: rate limited, try later.",
            permanent=False,
            code="rate_limited",
            retry_after=retry_after if retry_after is not None else RATE_LIMIT_RETRY,
            **common,
        )
    if code == OUTSIDE_WINDOW_CODE or (code == 10 and subcode in OUTSIDE_WINDOW_SUBCODES):
        return DeliveryError(
            f"{what}: the customer last wrote more than 24 hours ago (outside the messaging window).",
            permanent=True,
            code="outside_window",
            outside_window=True,
            **common,
        )
    if (code is not None and (code in AUTH_CODES or 200 <= code <= 299)) or status in (401, 403):
        return DeliveryError(
            f"{what}: the channel's credentials or permissions were refused.",
            permanent=True,
            code="auth_failed",
            auth_failed=True,
            **common,
        )
    if code in TRANSIENT_CODES or status >= 500 or status == 408:
        return DeliveryError(
            f"{what}: the channel is failing, try later.",
            permanent=False,
            code="server_error",
            retry_after=retry_after,
            **common,
        )
    return DeliveryError(
        f"{what}: the message was refused.", permanent=True, code="rejected", **common
    )


def graph_post(
    http: HttpCall,
    url: str,
    *,
    body: dict[str, Any],
    authorization: str,
    purpose: str,
) -> dict[str, Any]:
    """One POST to the Graph API: the decoded success answer, or :class:`DeliveryError`."""
    try:
        reply = http(
            "POST",
            url,
            json_body=body,
            headers={"Authorization": authorization, "Accept": "application/json"},
            timeout=SEND_TIMEOUT,
            purpose=purpose,
        )
    except HttpTransportError as exc:
        if exc.transient:
            raise DeliveryError(
                "The Graph API could not be reached; try later."
                if exc.attempted
                else "Not sent yet: the channel's send rate or the Graph API's circuit "
                "holds it back; try later.",
                permanent=False,
                code="network_error" if exc.attempted else "held_back",
                retry_after=exc.retry_after,
            ) from None
        raise DeliveryError(
            "The Graph API destination was refused.", permanent=True, code="destination_refused"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the contract: DeliveryError and nothing else
        # A broken transport, not an answer: logged by type (never the body), and
        # not retried (it would fail the same way).
        logger.error("%s: the HTTP transport failed: %s", purpose, type(exc).__name__)
        raise DeliveryError(
            "The message could not be handed to the HTTP transport.",
            permanent=True,
            code="transport_failed",
        ) from None
    if not 200 <= reply.status < 300:
        raise classify(reply)
    try:
        document = json.loads(bytes(reply.body).decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if not isinstance(document, dict):
        # Sent, most likely, but unconfirmed: a retry could send it twice.
        raise DeliveryError(
            f"The Graph API answered HTTP {reply.status} without a readable body.",
            permanent=True,
            code="response_invalid",
            http_status=reply.status,
        )
    return document


def answer_id(value: Any) -> str:
    """A message id from a send answer ('' when it is not a sane id)."""
    return (
        value
        if isinstance(value, str)
        and 0 < len(value) <= 256
        and value.isascii()
        and value.isprintable()
        else ""
    )


class MetaAdapter(ChannelAdapter):
    """What every Meta kind shares: its three secrets, the hub handshake and the
    X-Hub-Signature-256 check (the webhook decrypts the app secret only, a send the
    access token only)."""

    SECRETS = ("app_secret", "verify_token", "access_token")
    VERIFY_SECRETS = ("app_secret",)
    SEND_SECRETS = ("access_token",)
    CHALLENGE_SECRETS = ("verify_token",)

    def verify_challenge(self, params: Mapping[str, str], secrets: Mapping[str, str]) -> str | None:
        return challenge_answer(params, secrets.get("verify_token") or "")

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return signature_valid(headers, body, secrets.get("app_secret") or "")
