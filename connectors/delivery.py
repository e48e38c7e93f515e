"""Sending replies: one attempt through the channel's adapter, whatever its kind.

``connectors.tasks.message_deliver`` calls :func:`delivery_attempt` when
``conversations`` announces ``reply_queued``. Every attempt is counted on the
message row (a conditional UPDATE before anything leaves), its error and next
retry recorded; transient ``DeliveryError``s are retried with backoff that
honours ``retry_after``, permanent ones stop at once. ``auth_failed`` marks the
channel unhealthy (and tells its admins); ``outside_window`` leaves the agent a
clear error on the message. Delivery is at least once: a worker dying
mid-request can send one message twice, so receivers dedupe on our id.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets as _random
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Prefetch, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.throttles import redis_client
from audit.context import Actor
from audit.services import record
from connectors.adapters import registry
from connectors.adapters.base import DeliveryError, OutboundMessage, Template
from connectors.adapters.http import HttpReply, HttpTransportError, outbound_http
from connectors.channels import (
    MAX_ATTEMPTS,
    channel_health_failed,
    channel_health_ok,
    channel_secrets,
)
from connectors.models import Channel, ChannelCredential
from conversations.models import OUTSIDE_WINDOW_ERROR, ContactIdentity, Message
from conversations.services import (
    body_of,
    message_delivery_log,
    message_delivery_retry,
    message_delivery_update,
    template_language_clean,
    template_name_clean,
)
from parley.keyring.providers import KeyringError

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60  # one sender per message at a time (longer than an attempt)
OUTSIDE_WINDOW = OUTSIDE_WINDOW_ERROR  # the inbox offers a template on such a message
AWAITING_RECIPIENT = "awaiting_visitor"  # the outcome for a PULL kind's reply
# Codes that say something about the channel rather than the message.
CHANNEL_CODES = {"auth_failed", "credentials_missing", "credentials_invalid", "settings_invalid"}


class TransientDeliveryError(Exception):
    """An attempt failed in a way another attempt may fix; retry after ``countdown`` seconds.

    ``counted`` is False when nothing went to the network (Parley's own rate limit
    or circuit breaker held the send back): the message's attempt budget is intact.
    """

    def __init__(self, error: str, *, attempts: int, countdown: int, counted: bool = True):
        super().__init__(error)
        self.error, self.attempts, self.countdown = error, attempts, countdown
        self.counted = counted


class _ChannelHttp:
    """The :class:`HttpCall` one delivery attempt hands its adapter: ``outbound_http``
    bound to the channel's rate key and rate, noting every network attempt (and
    every local refusal) for the message's ``delivery_log``. It remembers whether
    the last call was held back without a request (``held_back``).

    The notes are written by :meth:`flush`: on success in the same transaction as
    the message's ``sent`` status (one commit per reply instead of two), otherwise
    before anything else the attempt records."""

    def __init__(self, *, message_id: int, attempt: int, channel: Channel, rate: float):
        self.message_id, self.attempt = message_id, attempt
        self.held_back: HttpTransportError | None = None
        self.pending: list[dict] = []
        self._call = functools.partial(
            outbound_http,
            rate_key=rate_key(channel),
            rate_per_second=rate,
            on_attempt=self._record,
        )

    def _record(self, *, attempt: int, status: int | None, error: str | None, elapsed_ms: float):
        self.pending.append(
            {
                "attempt": self.attempt,
                "at": timezone.now().isoformat(),
                "status": status,
                "error": error,
                "ms": round(elapsed_ms),
                "network": True,
            }
        )

    def flush(self, *, best_effort: bool = False) -> None:
        """Append the noted attempts to the message's ``delivery_log``. ``best_effort``:
        a failure is logged, never raised (a transient refusal must not become an
        error of its own)."""
        entries, self.pending = self.pending, []
        for entry in entries:
            try:
                message_delivery_log(message_id=self.message_id, entry=entry)
            except Exception:
                if not best_effort:
                    raise
                logger.exception("delivery: attempt of message %s not recorded", self.message_id)

    def __call__(self, method: str, url: str, **kwargs) -> HttpReply:
        self.held_back = None
        try:
            return self._call(method, url, **kwargs)
        except HttpTransportError as exc:
            if not exc.attempted:
                self.held_back = exc
                self.pending.append(
                    {
                        "attempt": self.attempt,
                        "at": timezone.now().isoformat(),
                        "status": None,
                        "error": "held_back",
                        "ms": 0,
                        "network": False,
                    }
                )
            raise


def rate_key(channel: Channel) -> str:
    """The channel's rate-limit bucket. Channel ids repeat across tenants (a schema
    each): the schema is part of the key, or one tenant's sends would spend another's."""
    return f"channel:{connection.schema_name}:{channel.pk}"


def channel_rate(channel: Channel) -> float:
    """Sends per second allowed on one channel: its kind's ``RATE_PER_SECOND``, else
    ``PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND``."""
    rate = registry.get(channel.kind).RATE_PER_SECOND
    return float(rate or settings.PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND)


def held_back_delay(retry_after: float | None) -> int:
    """Seconds before trying a held-back send again: the refusal's ``retry_after``
    (at least 1 s, Celery's countdown is in whole seconds) plus up to 2 s of jitter,
    so messages held back together do not all come back at the same instant."""
    return max(1, math.ceil(retry_after or 0)) + _random.randbelow(3)


def retry_delay(attempts: int) -> int:
    """Seconds before the next attempt: 10, 20, 40, 80… (at most 10 minutes), with jitter."""
    base = min(600, 10 * 2 ** max(0, attempts - 1))
    return base + _random.randbelow(max(1, base // 4))


def _eligible() -> Q:
    return Q(delivery=Message.Delivery.QUEUED) | Q(
        delivery=Message.Delivery.FAILED, delivery_attempts__lt=MAX_ATTEMPTS
    )


def delivery_fail(*, message_id: int, error: str, attempts: int, channel_id=None) -> None:
    """Give up on a message: delivery ``failed`` with a short error, audited."""
    message = Message.objects.get(pk=message_id)
    error = error[:300]
    with transaction.atomic():
        message_delivery_update(message=message, status=Message.Delivery.FAILED, error=error)
        record(
            "message.delivery_failed",
            actor=Actor(kind="connector", id=str(channel_id or ""), name="channel"),
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
    logger.warning("channel delivery failed for good: message=%s attempts=%s", message_id, attempts)


def _lease_take(key: str, lease: str) -> bool:
    """Take the message's sending lease (``LEASE_SECONDS``), False if another holds it.

    Through the process's one Redis client (``accounts.throttles.redis_client``):
    Django's cache builds a client per call, three per reply."""
    client = redis_client()
    if client is None:
        return cache.add(key, lease, LEASE_SECONDS)
    return bool(client.set(cache.make_key(key), lease, nx=True, ex=LEASE_SECONDS))


def _lease_release(key: str, lease: str) -> None:
    client = redis_client()
    if client is None:
        if cache.get(key) == lease:
            cache.delete(key)
        return
    if client.get(cache.make_key(key)) == lease.encode():
        client.delete(cache.make_key(key))


def pull_kinds() -> tuple[str, ...]:
    """Kinds whose adapter leaves replies for the recipient to fetch (``PULL``)."""
    return tuple(kind for kind in registry.kinds() if registry.get(kind).PULL)


def _channel_of(message: Message) -> Channel | None:
    """The message's channel with its credentials (one read for the whole attempt)."""
    channel_id = message.conversation.inbox.channel_id
    if not channel_id:
        return None
    return (
        Channel.objects.prefetch_related(
            Prefetch(
                "credential_links", queryset=ChannelCredential.objects.select_related("credential")
            )
        )
        .filter(pk=channel_id)
        .first()
    )


def _pulled(channel: Channel | None) -> bool:
    return channel is not None and channel.kind in pull_kinds()


def _problem(message: Message, channel: Channel | None) -> tuple[str, str]:
    """(recipient id, problem); an empty problem means go."""
    if channel is None:
        return "", "The inbox has no channel."
    if channel.kind not in registry.kinds():
        return "", f"No sender for {channel.kind} channels."
    if not channel.enabled:
        return "", "The channel is disabled."
    identity = (
        ContactIdentity.objects.filter(
            contact_id=message.conversation.contact_id, channel_id=channel.pk
        )
        .values_list("external_id", flat=True)
        .first()
    )
    if identity is None:
        return "", "The contact has no id on this channel."
    return identity, ""


@sensitive_variables("keys")
def delivery_attempt(*, message_id: int) -> str:
    """One attempt at sending an outbound message through its channel's adapter.

    Returns the outcome (``sent``, ``failed``, ``awaiting_visitor`` for a PULL
    kind's reply, or why nothing was done) or
    raises :class:`TransientDeliveryError` for the task to retry later. Safe to
    run twice: a message already sent (or being sent by another worker, under a
    short Redis lease) is left alone.
    """
    base = Message.objects.filter(
        pk=message_id, kind=Message.Kind.MESSAGE, direction=Message.Direction.OUT
    )
    message = base.select_related("conversation__inbox").first()
    if message is None:
        return "missing"
    channel = _channel_of(message)
    if _pulled(channel):
        # Web chat: the reply waits for the visitor's poll, which marks it
        # delivered. No attempt is counted, nothing fails or retries, and the
        # channel's health is not touched.
        return AWAITING_RECIPIENT
    lease_key, lease = f"channel-deliver:{message_id}", uuid.uuid4().hex
    if not _lease_take(lease_key, lease):
        return "busy"
    try:
        if not base.filter(_eligible()).update(delivery_attempts=F("delivery_attempts") + 1):
            return "skipped"
        message.refresh_from_db(fields=["delivery", "delivery_attempts"])
        attempts = message.delivery_attempts
        recipient, problem = _problem(message, channel)
        if problem:
            delivery_fail(
                message_id=message_id,
                error=problem,
                attempts=attempts,
                channel_id=channel.pk if channel else None,
            )
            return "failed"
        adapter = registry.get(channel.kind)
        if message.template:
            # A template reply (conversations.services.template_send): only kinds
            # that carry templates send one; its name and language were checked there.
            if not adapter.TEMPLATES:
                delivery_fail(
                    message_id=message_id,
                    error="This channel cannot send template messages.",
                    attempts=attempts,
                    channel_id=channel.pk,
                )
                return "failed"
            try:
                outbound = OutboundMessage(
                    recipient_id=recipient,
                    template=Template(
                        name=template_name_clean(message.template.get("name")),
                        language=template_language_clean(message.template.get("language")),
                    ),
                )
            except (ValueError, AttributeError):
                delivery_fail(
                    message_id=message_id,
                    error="The template reply names no valid template.",
                    attempts=attempts,
                    channel_id=channel.pk,
                )
                return "failed"
        else:
            outbound = adapter.outbound(
                recipient_id=recipient,
                message_id=message.pk,
                conversation_id=message.conversation_id,
                body=body_of(message),
                attachments=tuple(message.attachments or ()),
                created_at=message.created_at.isoformat(),
                attempt=attempts,
            )
        try:
            keys = channel_secrets(
                channel, purpose="channel.sign", roles=adapter.SEND_SECRETS, reuse=True
            )
        except KeyringError as exc:
            delivery_fail(
                message_id=message_id,
                error=f"The channel's secrets cannot be decrypted ({type(exc).__name__}).",
                attempts=attempts,
                channel_id=channel.pk,
            )
            return "failed"
        http = _ChannelHttp(
            message_id=message_id, attempt=attempts, channel=channel, rate=channel_rate(channel)
        )
        try:
            result = adapter.send(outbound, dict(channel.settings or {}), keys, http)
        except DeliveryError as exc:
            del keys
            http.flush(best_effort=True)
            if http.held_back is not None and not exc.permanent:
                # Parley's own rate limit or circuit breaker refused the send before
                # any request: not an attempt. Give the count back and come back
                # when the refusal says.
                base.filter(delivery_attempts__gt=0).update(
                    delivery_attempts=F("delivery_attempts") - 1
                )
                countdown = held_back_delay(http.held_back.retry_after)
                message_delivery_retry(
                    message=message,
                    error=str(exc)[:300],
                    next_at=timezone.now() + timedelta(seconds=countdown),
                )
                raise TransientDeliveryError(
                    str(exc), attempts=attempts - 1, countdown=countdown, counted=False
                ) from None
            error = OUTSIDE_WINDOW if exc.outside_window else str(exc)[:300]
            if exc.auth_failed or exc.code in CHANNEL_CODES:
                channel_health_failed(
                    channel_id=channel.pk, code=exc.code, auth_failed=exc.auth_failed
                )
            if not exc.permanent and attempts < MAX_ATTEMPTS:
                countdown = max(int(exc.retry_after or 0), retry_delay(attempts))
                message_delivery_retry(
                    message=message,
                    error=error,
                    next_at=timezone.now() + timedelta(seconds=countdown),
                )
                raise TransientDeliveryError(
                    error, attempts=attempts, countdown=countdown
                ) from None
            delivery_fail(
                message_id=message_id, error=error, attempts=attempts, channel_id=channel.pk
            )
            return "failed"
        except Exception:
            http.flush(best_effort=True)
            raise
        del keys
        with transaction.atomic():
            http.flush()
            message_delivery_update(
                message=message, status=Message.Delivery.SENT, external_id=result.external_id
            )
        if channel.health != Channel.Health.OK:
            channel_health_ok(channel_id=channel.pk)
        return "sent"
    finally:
        _lease_release(lease_key, lease)
