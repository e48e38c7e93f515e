"""The API channel's adapter: signed JSON in, signed JSON out.

Inbound events are JSON POSTed to ``/webhooks/api/<public_id>/``; replies are
POSTed to the channel's ``outbound_url`` setting. Both directions carry

    X-Parley-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

under the channel's ``signing_secret`` (a vaulted credential). Events:

- ``{"type": "message", "id", "contact": {"id", "name"}, "body", "attachments"}``
- ``{"type": "status", "message_id": <Parley's id>, "status": delivered|read|failed, "error"}``

Unlike the Meta kinds, the integrator's contract answers with the stored
message id, so this kind asks the webhook to process its events in the
request (``answers_inline``), after storing them like every other kind.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.views.decorators.debug import sensitive_variables

from connectors.adapters.base import (
    ChannelAdapter,
    DeliveryError,
    DeliveryResult,
    DeliveryStatus,
    InboundMessage,
    Media,
    MessageKind,
    ParsedEvent,
    PayloadInvalid,
    StatusUpdate,
)
from connectors.adapters.http import HttpCall, HttpTransportError
from parley import validation

KIND = "api"
SIGNATURE_HEADER = "X-Parley-Signature"
TOLERANCE_SECONDS = 300  # replay window, both ways (clock skew)
MAX_SIGNATURE_HEADER = 1024
SEND_TIMEOUT = 10.0  # seconds per attempt
MAX_BODY = 4096
MAX_ATTACHMENTS = 10
STATUSES = ("delivered", "read", "failed")


# --- signatures -----------------------------------------------------------------------------------


class SignatureError(Exception):
    """A refused signature; ``code`` is the stable API code."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@sensitive_variables("secret")
def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


@sensitive_variables("secret")
def signature_header(*, secret: str, body: bytes, timestamp: int | None = None) -> str:
    """``t=<unix>,v1=<hex>`` for ``body`` (the exact bytes sent)."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


@sensitive_variables("secret")
def signature_verify(
    *,
    secret: str,
    body: bytes,
    header: str,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> int:
    """Check ``header`` over the raw ``body``: the signed timestamp, or :class:`SignatureError`.

    Several ``v1=`` entries are allowed (any one matching passes). The MAC is
    checked first, in constant time; a genuine signature outside the window is
    a replay (``timestamp_out_of_window``).
    """
    if not header:
        raise SignatureError("signature_missing", f"The {SIGNATURE_HEADER} header is missing.")
    if len(header) > MAX_SIGNATURE_HEADER:
        raise SignatureError("signature_invalid", "The signature header is malformed.")
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        value = value.strip()
        # ASCII digits only: "²".isdigit() is true but int("²") raises.
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1" and value:
            # Compared as bytes: compare_digest refuses non-ASCII str (TypeError);
            # a non-ASCII candidate can never equal a hex digest anyway.
            candidates.append(value.lower().encode("ascii", "replace"))
    if timestamp is None or not candidates:
        raise SignatureError("signature_invalid", "The signature header is malformed.")
    expected = _mac(secret, timestamp, body).encode()
    # Every candidate is compared (no early exit on the first match).
    matched = [hmac.compare_digest(expected, c) for c in candidates]
    if not any(matched):
        raise SignatureError("signature_invalid", "The signature does not match the body.")
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            "timestamp_out_of_window",
            f"The signed timestamp is more than {tolerance} seconds away from now.",
        )
    return timestamp


def canonical_json(payload) -> bytes:
    """The bytes ``parley.outbound`` sends for ``json_body=payload`` (what gets signed)."""
    return json.dumps(payload, separators=(",", ":")).encode()


# --- parsing ----------------------------------------------------------------------------------------


class EventInvalid(PayloadInvalid):
    """A refused event with per-field ``errors`` for the integrator."""

    def __init__(self, code: str, detail: str, errors: dict | None = None):
        super().__init__(code, detail)
        self.errors = errors or {}


def _invalid(exc: ValidationError) -> EventInvalid:
    errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
    return EventInvalid("invalid", "The event is invalid.", errors)


def _text(payload: dict, key: str, *, required: bool, limit: int, label: str) -> str:
    return validation.clean_text(
        payload.get(key), field=key, label=label, max_length=limit, required=required, ints=True
    )


def _attachments(value) -> tuple[Media, ...]:
    items = value or []
    if not isinstance(items, list):
        raise ValidationError({"attachments": "Attachments are a list."})
    if len(items) > MAX_ATTACHMENTS:
        raise ValidationError({"attachments": f"At most {MAX_ATTACHMENTS} attachments."})
    media = []
    for item in items:
        if not isinstance(item, dict):
            raise ValidationError({"attachments": "Each attachment is an object."})
        url = validation.clean_text(
            item.get("url"),
            field="attachments",
            label="An attachment link",
            max_length=1000,
            required=True,
        )
        if urlsplit(url).scheme != "https":
            raise ValidationError({"attachments": "Attachment links must be https URLs."})
        mime = validation.clean_text(
            item.get("type", ""), field="attachments", label="An attachment type", max_length=100
        )
        size = item.get("size", 0)
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 100 * 2**20:
            raise ValidationError({"attachments": "Attachment size is bytes, at most 100 MiB."})
        media.append(Media(type="file", url=url, mime_type=mime, size=size))
    return tuple(media)


def _message(payload: dict) -> InboundMessage:
    external_id = _text(payload, "id", required=True, limit=128, label="The message id")
    contact = payload.get("contact")
    if not isinstance(contact, dict):
        raise ValidationError({"contact": 'Give the sender as {"id": "...", "name": "..."}.'})
    contact_id = _text(contact, "id", required=True, limit=128, label="The contact id")
    contact_name = _text(contact, "name", required=False, limit=200, label="The contact name")
    body = validation.clean_text(
        payload.get("body"), field="body", label="The body", max_length=MAX_BODY
    )
    media = _attachments(payload.get("attachments"))
    if not body and not media:
        raise ValidationError({"body": "A message needs text or an attachment."})
    return InboundMessage(
        channel_kind=KIND,
        routing_key="",
        external_id=external_id,
        sender_id=contact_id,
        sender_name=contact_name,
        timestamp=datetime.now(UTC),
        kind=MessageKind.MEDIA if media and not body else MessageKind.TEXT,
        text=body,
        media=media,
    )


def _status(payload: dict) -> StatusUpdate:
    message_id = validation.parse_int(
        payload.get("message_id"), field="message_id", label="The message_id Parley sent"
    )
    status = payload.get("status")
    if status not in STATUSES:
        raise ValidationError({"status": f"One of {', '.join(STATUSES)}."})
    error = _text(payload, "error", required=False, limit=300, label="The error")
    return StatusUpdate(
        channel_kind=KIND,
        routing_key="",
        external_id=str(message_id),
        status=DeliveryStatus(status),
        timestamp=datetime.now(UTC),
        error_title=error,
    )


# --- sending ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApiOutbound:
    """What the API channel sends: Parley's own message, as the integrator's JSON."""

    recipient_id: str
    message_id: int
    conversation_id: int
    body: str
    attachments: tuple[Mapping[str, Any], ...]
    created_at: str
    attempt: int = 1

    def payload(self) -> dict:
        return {
            "type": "message",
            "id": self.message_id,
            "conversation_id": self.conversation_id,
            "contact_id": self.recipient_id,
            "body": self.body,
            "attachments": [dict(a) for a in self.attachments],
            "created_at": self.created_at,
        }


class ApiChannelAdapter(ChannelAdapter):
    kind = KIND
    label = "API channel"
    SETTINGS = ("outbound_url",)
    SECRETS = ("signing_secret",)
    VERIFY_SECRETS = ("signing_secret",)
    SEND_SECRETS = ("signing_secret",)
    signature_header = SIGNATURE_HEADER
    answers_inline = True  # the integrator's answer names the stored message
    status_names_our_id = True  # status events name Parley's message id

    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        return self.refusal(headers, body, secrets) is None

    def refusal(
        self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]
    ) -> tuple[str, str] | None:
        secret = secrets.get("signing_secret", "")
        if not secret:
            return ("signature_invalid", "The channel has no signing secret.")
        try:
            signature_verify(secret=secret, body=body, header=headers.get(SIGNATURE_HEADER, ""))
        except SignatureError as exc:
            return (exc.code, exc.detail)
        return None

    def parse(self, body: bytes) -> ParsedEvent:
        try:
            payload = validation.json_loads(body)
        except validation.JSONSyntaxError:
            raise EventInvalid("invalid_json", "The body is not valid JSON.") from None
        except ValidationError as exc:
            # NUL, lone surrogates, numbers past 64 bits, deep nesting: refused
            # before any field is read, for every event type alike.
            raise _invalid(exc) from None
        return self.parse_document(payload)

    def parse_document(self, document: Any) -> ParsedEvent:
        if not isinstance(document, dict):
            raise EventInvalid("invalid_json", "The body is a JSON object.")
        kind = document.get("type")
        try:
            if kind == "message":
                return ParsedEvent(messages=(_message(document),))
            if kind == "status":
                return ParsedEvent(statuses=(_status(document),))
        except ValidationError as exc:
            raise _invalid(exc) from None
        raise EventInvalid("unknown_type", 'The "type" is "message" or "status".')

    def outbound(
        self, *, recipient_id, message_id, conversation_id, body, attachments, created_at, attempt
    ) -> ApiOutbound:
        return ApiOutbound(
            recipient_id=recipient_id,
            message_id=message_id,
            conversation_id=conversation_id,
            body=body,
            attachments=tuple(attachments),
            created_at=created_at,
            attempt=attempt,
        )

    @sensitive_variables("secrets", "secret")
    def send(
        self, message, settings: Mapping[str, str], secrets: Mapping[str, str], http: HttpCall
    ) -> DeliveryResult:
        url = settings.get("outbound_url", "")
        if not url:
            raise DeliveryError(
                "The channel has no outbound URL.", permanent=True, code="settings_invalid"
            )
        secret = secrets.get("signing_secret", "")
        if not secret:
            raise DeliveryError(
                "The signing secret is missing.", permanent=True, code="credentials_missing"
            )
        payload = message.payload()
        # ``outbound`` serialises json_body exactly as canonical_json does,
        # so the signature covers the bytes on the wire.
        header = signature_header(secret=secret, body=canonical_json(payload))
        try:
            reply = http(
                "POST",
                url,
                json_body=payload,
                headers={SIGNATURE_HEADER: header, "X-Parley-Attempt": str(message.attempt)},
                timeout=SEND_TIMEOUT,
                purpose="channel.deliver",
            )
        except HttpTransportError as exc:
            raise DeliveryError(
                str(exc)[:300],
                permanent=not exc.transient,
                code=(
                    ("network_error" if exc.attempted else "held_back")
                    if exc.transient
                    else "destination_refused"
                ),
                retry_after=exc.retry_after,
            ) from None
        status = reply.status
        if 200 <= status < 300:
            return DeliveryResult(external_id="", recipient_id=message.recipient_id)
        retry_after = None
        raw_after = reply.header("Retry-After")
        if raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 6:
            retry_after = float(raw_after)
        transient = status in (408, 425, 429) or status >= 500
        raise DeliveryError(
            f"HTTP {status}",
            permanent=not transient,
            code="rate_limited"
            if status == 429
            else (
                "server_error"
                if transient
                else ("auth_failed" if status in (401, 403) else "rejected")
            ),
            retry_after=retry_after,
            auth_failed=status in (401, 403),
            http_status=status,
        )
