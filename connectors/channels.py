"""API channels: create, rotate the signing secret, sign and verify, deliver replies.

An API channel is the generic connector for custom integrations. Inbound events
are JSON POSTed to ``/webhooks/api/<public_id>/`` (``connectors.webhooks``);
replies are POSTed to the channel's ``outbound_url``. Both directions carry

    X-Parley-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

under the channel's signing secret, a write-only ``Credential`` (kind
``webhook_secret``, connector ``api-channel``) generated here and shown once.
The secret is decrypted only through ``credential_use`` (audited) for the one
signature at hand and never logged, stored elsewhere or returned again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.http import Http404
from django.views.decorators.debug import sensitive_variables

from accounts.policy import Perm, user_has
from audit.context import Actor
from audit.services import record
from connectors.adapters import registry
from connectors.models import Channel, Credential
from connectors.services import credential_replace, credential_set, credential_use
from parley import outbound, validation
from parley.keyring.providers import KeyringError

logger = logging.getLogger(__name__)

CONNECTOR = "api-channel"
SIGNATURE_HEADER = "X-Parley-Signature"
TOLERANCE_SECONDS = 300  # replay window, both ways (clock skew)
MAX_SIGNATURE_HEADER = 1024
MAX_ATTEMPTS = 5  # HTTP attempts per outbound message, the first one included
SEND_TIMEOUT = 10.0  # seconds per attempt
LEASE_SECONDS = 60  # one sender per message at a time (longer than an attempt)


def channel_actor(channel: Channel) -> Actor:
    """Who acts when the channel does (inbound events, deliveries)."""
    return Actor(kind="connector", id=str(channel.pk), name=f"{CONNECTOR}:{channel.name}"[:200])


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


# --- reads ------------------------------------------------------------------------------------


def channel_list():
    return (
        Channel.objects.select_related("inbox", "signing_credential")
        .defer("signing_credential__secret_ct")
        .order_by("name")
    )


def channel_get(*, channel_id) -> Channel:
    try:
        channel_id = int(channel_id)
    except (TypeError, ValueError):
        raise Http404 from None
    channel = channel_list().filter(pk=channel_id).first()
    if channel is None:
        raise Http404("No such channel.")
    return channel


def channel_for_webhook(*, public_id: str) -> Channel | None:
    """The enabled API channel behind a webhook URL, in the request's tenant (None otherwise)."""
    if not public_id or len(public_id) > 32:
        return None
    return (
        Channel.objects.select_related("inbox", "signing_credential")
        .filter(public_id=public_id, kind=Channel.Kind.API, enabled=True)
        .first()
    )


def inboxes_unbound():
    """Inboxes a new channel may be bound to (names only matter to the channel form)."""
    from conversations.models import Inbox

    return Inbox.objects.filter(channel__isnull=True).order_by("name")


def webhook_path(channel: Channel) -> str:
    return f"/webhooks/api/{channel.public_id}/"


# --- changes ------------------------------------------------------------------------------------


def _require(by) -> None:
    if not user_has(by, Perm.CONNECTORS_MANAGE):
        raise PermissionDenied
    if getattr(by, "is_break_glass", False):
        raise PermissionDenied("Break-glass access is read-only.")


def outbound_url_clean(url: str) -> str:
    """A URL replies may be POSTed to: http(s) (https in production), no user info,
    and a host that passes ``parley.outbound``'s private-address guard."""
    url = (url or "").strip()
    field = "outbound_url"
    if not url:
        raise ValidationError({field: "Give the URL replies are POSTed to."})
    if len(url) > 500:
        raise ValidationError({field: "At most 500 characters."})
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValidationError({field: "The port is not a number from 1 to 65535."}) from None
    allowed = ("https",) if settings.PRODUCTION else ("https", "http")
    if parts.scheme not in allowed or not parts.hostname:
        raise ValidationError(
            {field: "Use an https:// URL with a host name."}
            if settings.PRODUCTION
            else {field: "Use an http:// or https:// URL with a host name."}
        )
    if parts.username or parts.password:
        raise ValidationError(
            {field: "Leave credentials out of the URL: replies are signed instead."}
        )
    try:
        outbound.check_destination(parts.hostname, port or (443 if parts.scheme == "https" else 80))
    except outbound.OutboundError as exc:
        raise ValidationError({field: f"Refused: {exc}."}) from None
    return url


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def channel_create(
    *, by, name: str, outbound_url: str, inbox_id: int | None = None
) -> tuple[Channel, str]:
    """Create an API channel bound to an inbox: ``(channel, signing secret)``.

    ``inbox_id`` names an existing inbox without a channel; None creates an
    inbox of the same name (which needs ``inboxes.manage``). The secret is
    returned once, for the caller to show once; only its ciphertext is kept.
    """
    from conversations.access import inbox_create
    from conversations.models import Inbox

    _require(by)
    name = (name or "").strip()
    if not 1 <= len(name) <= 80:
        raise ValidationError({"name": "Give the channel a name of 1 to 80 characters."})
    if Channel.objects.filter(name__iexact=name).exists():
        raise ValidationError({"name": "A channel with this name exists."})
    outbound_url = outbound_url_clean(outbound_url)
    if inbox_id is None and not user_has(by, Perm.INBOXES_MANAGE):
        raise ValidationError(
            {"inbox": "Pick an existing inbox: only owners and admins create inboxes."}
        )
    public_id = secrets.token_urlsafe(16)
    secret = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            if inbox_id is None:
                inbox = inbox_create(by=by, name=name)
            else:
                inbox = Inbox.objects.select_for_update().filter(pk=inbox_id).first()
                if inbox is None:
                    raise ValidationError({"inbox": "No such inbox."})
                if inbox.channel_id is not None:
                    raise ValidationError({"inbox": "This inbox already has a channel."})
            credential = credential_set(
                name=f"channel-{public_id}",
                kind=Credential.Kind.WEBHOOK_SECRET,
                connector=CONNECTOR,
                secret=secret,
            )
            channel = Channel.objects.create(
                name=name,
                kind=Channel.Kind.API,
                public_id=public_id,
                outbound_url=outbound_url,
                signing_credential=credential,
            )
            Inbox.objects.filter(pk=inbox.pk).update(channel=channel)
            record(
                "channel.created",
                target_type="channel",
                target_id=channel.pk,
                details={
                    "name": name,
                    "kind": channel.kind,
                    "public_id": public_id,
                    "inbox": inbox.pk,
                    "outbound_host": _host(outbound_url),
                    "credential": credential.pk,
                },
            )
    except IntegrityError:
        # Another request bound the inbox or took the name meanwhile.
        raise ValidationError(
            {"name": "This name or inbox was just taken by another channel; try again."}
        ) from None
    channel.refresh_from_db()
    return channel, secret


def channel_secret_rotate(*, by, channel: Channel) -> str:
    """Replace the signing secret at once (the old one stops verifying); the new one, once."""
    _require(by)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic():
        credential_replace(credential=channel.signing_credential, secret=secret)
        record(
            "channel.secret_rotated",
            target_type="channel",
            target_id=channel.pk,
            details={"name": channel.name, "credential": channel.signing_credential_id},
        )
    return secret


def channel_set_enabled(*, by, channel: Channel, enabled: bool) -> Channel:
    """Pause a channel (its webhook answers 404, replies fail with "The channel is disabled") or resume it."""
    _require(by)
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk)
        if channel.enabled != enabled:
            channel.enabled = enabled
            channel.save(update_fields=["enabled"])
            record(
                "channel.enabled" if enabled else "channel.disabled",
                target_type="channel",
                target_id=channel.pk,
                details={"name": channel.name},
            )
    return channel


# --- inbound events ---------------------------------------------------------------------------------


def _text(payload: dict, key: str, *, required: bool, limit: int, label: str) -> str:
    return validation.clean_text(
        payload.get(key), field=key, label=label, max_length=limit, required=required, ints=True
    )


def inbound_message(*, channel: Channel, payload: dict):
    """``{"type": "message", ...}`` → ``(message, created)`` (idempotent on ``id``)."""
    from conversations.services import MAX_BODY, message_receive

    inbox = getattr(channel, "inbox", None)
    if inbox is None:
        raise ValidationError({"channel": "This channel is not bound to an inbox."})
    external_id = _text(payload, "id", required=True, limit=128, label="The message id")
    contact = payload.get("contact")
    if not isinstance(contact, dict):
        raise ValidationError({"contact": 'Give the sender as {"id": "...", "name": "..."}.'})
    contact_id = _text(contact, "id", required=True, limit=128, label="The contact id")
    contact_name = _text(contact, "name", required=False, limit=200, label="The contact name")
    body = validation.clean_text(
        payload.get("body"), field="body", label="The body", max_length=MAX_BODY
    )
    attachments = payload.get("attachments") or []
    if not isinstance(attachments, list):
        raise ValidationError({"attachments": "Attachments are a list."})
    kwargs = {
        "inbox": inbox,
        "contact_external_id": contact_id,
        "contact_name": contact_name,
        "body": body,
        "attachments": attachments,
        "external_id": external_id,
    }
    try:
        return message_receive(**kwargs)
    except IntegrityError:
        # Two first messages of one new contact raced on its identity: the
        # other one created it, so a second go finds it.
        return message_receive(**kwargs)


STATUSES = ("delivered", "read", "failed")


def inbound_status(*, channel: Channel, payload: dict):
    """``{"type": "status", ...}`` → ``(message, changed)`` for an outbound message of this channel."""
    from conversations.models import Message
    from conversations.services import message_delivery_update

    message_id = validation.parse_int(
        payload.get("message_id"), field="message_id", label="The message_id Parley sent"
    )
    status = payload.get("status")
    if status not in STATUSES:
        raise ValidationError({"status": f"One of {', '.join(STATUSES)}."})
    error = _text(payload, "error", required=False, limit=300, label="The error")
    inbox = getattr(channel, "inbox", None)
    message = Message.objects.filter(
        pk=message_id,
        inbox_id_denorm=inbox.pk if inbox else -1,
        direction=Message.Direction.OUT,
        kind=Message.Kind.MESSAGE,
    ).first()
    if message is None:
        raise Http404("No such message on this channel.")
    before = message.delivery
    message = message_delivery_update(message=message, status=status, error=error)
    return message, message.delivery != before


# --- outbound delivery ---------------------------------------------------------------------------


class TransientDeliveryError(Exception):
    """An attempt failed in a way another attempt may fix (5xx, 429, timeout, network)."""

    def __init__(self, error: str, *, attempts: int):
        super().__init__(error)
        self.error, self.attempts = error, attempts


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt: 10, 20, 40, 80… (at most 10 minutes), with jitter."""
    base = min(600, 10 * 2 ** max(0, attempts - 1))
    return base + secrets.randbelow(max(1, base // 4))


def _eligible() -> Q:
    from conversations.models import Message

    return Q(delivery=Message.Delivery.QUEUED) | Q(
        delivery=Message.Delivery.FAILED, delivery_attempts__lt=MAX_ATTEMPTS
    )


def delivery_payload(message, channel: Channel, contact_external_id: str) -> dict:
    from conversations.services import body_of

    return {
        "type": "message",
        "id": message.pk,
        "conversation_id": message.conversation_id,
        "contact_id": contact_external_id,
        "body": body_of(message),
        "attachments": list(message.attachments or []),
        "created_at": message.created_at.isoformat(),
    }


def delivery_fail(*, message_id: int, error: str, attempts: int, channel_id=None) -> None:
    """Give up on a message: delivery ``failed`` with a short error, audited."""
    from conversations.models import Message
    from conversations.services import message_delivery_update

    message = Message.objects.get(pk=message_id)
    error = error[:300]
    with transaction.atomic():
        message_delivery_update(message=message, status=Message.Delivery.FAILED, error=error)
        record(
            "message.delivery_failed",
            actor=Actor(kind="connector", id=str(channel_id or ""), name=CONNECTOR),
            outcome="failed",
            target_type="message",
            target_id=message_id,
            details={
                "conversation": message.conversation_id,
                "channel": channel_id,
                "attempts": attempts,
                "error": error,
            },
        )
    logger.warning(
        "channel delivery failed for good: message=%s attempts=%s error=%s",
        message_id,
        attempts,
        error,
    )


def _pulls(kind: str) -> bool:
    """Whether the kind's adapter leaves replies for the recipient to fetch (``PULL``)."""
    try:
        return bool(getattr(registry.get(kind), "PULL", False))
    except registry.UnknownChannelKind:
        return False


@sensitive_variables("secret")
def delivery_attempt(*, message_id: int) -> str:
    """One attempt at sending an outbound message through its API channel.

    Returns the outcome (``sent``, ``failed``, or why nothing was done) or
    raises :class:`TransientDeliveryError` for the task to retry later. Safe
    to run twice: a message already sent (or being sent by another worker,
    under a short Redis lease) is left alone, and the attempt is counted by a
    conditional UPDATE before anything leaves. Delivery is at least once: a
    worker dying mid-request can send one message twice, so receivers dedupe
    on ``id``.
    """
    from conversations.models import ContactIdentity, Message
    from conversations.services import message_delivery_update

    base = Message.objects.filter(
        pk=message_id, kind=Message.Kind.MESSAGE, direction=Message.Direction.OUT
    )
    message = base.select_related("conversation__inbox").first()
    if message is None:
        return "missing"
    lease_key, lease = f"channel-deliver:{message_id}", uuid.uuid4().hex
    if not cache.add(lease_key, lease, LEASE_SECONDS):
        return "busy"
    try:
        if not base.filter(_eligible()).update(delivery_attempts=F("delivery_attempts") + 1):
            return "skipped"
        message.refresh_from_db(fields=["delivery", "delivery_attempts"])
        attempts = message.delivery_attempts
        inbox = message.conversation.inbox
        channel = (
            Channel.objects.select_related("signing_credential").filter(pk=inbox.channel_id).first()
            if inbox.channel_id
            else None
        )
        if channel is not None and _pulls(channel.kind):
            # Web chat: the reply waits for the visitor's poll, which marks it
            # delivered. Nothing to send, and no failure. (Minimal guard until
            # the delivery task dispatches over the adapter registry.)
            return "awaiting_visitor"
        problem = ""
        if channel is None:
            problem = "The inbox has no channel."
        elif channel.kind != Channel.Kind.API:
            problem = f"No sender for {channel.get_kind_display()} channels yet."
        elif not channel.enabled:
            problem = "The channel is disabled."
        elif not channel.outbound_url:
            problem = "The channel has no outbound URL."
        identity = None
        if not problem:
            identity = (
                ContactIdentity.objects.filter(
                    contact_id=message.conversation.contact_id, channel_id=channel.pk
                )
                .values_list("external_id", flat=True)
                .first()
            )
            if identity is None:
                problem = "The contact has no id on this channel."
        if problem:
            delivery_fail(
                message_id=message_id,
                error=problem,
                attempts=attempts,
                channel_id=channel.pk if channel else None,
            )
            return "failed"
        payload = delivery_payload(message, channel, identity)
        body = canonical_json(payload)
        try:
            secret = credential_use(
                credential=channel.signing_credential,
                purpose="channel.sign",
                actor=channel_actor(channel),
            )
        except KeyringError as exc:
            delivery_fail(
                message_id=message_id,
                error=f"The signing secret cannot be decrypted ({type(exc).__name__}).",
                attempts=attempts,
                channel_id=channel.pk,
            )
            return "failed"
        header = signature_header(secret=secret, body=body)
        del secret
        try:
            # ``outbound`` serialises json_body exactly as canonical_json does,
            # so the signature covers the bytes on the wire.
            outbound.request(
                "POST",
                channel.outbound_url,
                json_body=payload,
                headers={SIGNATURE_HEADER: header, "X-Parley-Attempt": str(attempts)},
                timeout=SEND_TIMEOUT,
                retries=0,  # Celery retries, with backoff, without holding a worker
                purpose="channel.deliver",
            )
        except outbound.OutboundError as exc:
            error = str(exc)[:300]
            if exc.transient and attempts < MAX_ATTEMPTS:
                raise TransientDeliveryError(error, attempts=attempts) from None
            delivery_fail(
                message_id=message_id, error=error, attempts=attempts, channel_id=channel.pk
            )
            return "failed"
        message_delivery_update(message=message, status=Message.Delivery.SENT)
        return "sent"
    finally:
        if cache.get(lease_key) == lease:
            cache.delete(lease_key)
