"""Sending replies: one attempt through the channel's adapter, whatever its kind.

When ``conversations`` announces ``reply_queued`` the reply joins its inbox's drain
queue (:func:`drain_push`) and ``connectors.tasks.message_drain`` sends the queued
replies in turn (:func:`deliveries_drain`); a retry, or a reply Redis could not
queue, is ``connectors.tasks.message_deliver``'s (:func:`delivery_attempt`). Both
run the same attempt per message (:func:`_attempt`). Every attempt is counted on the
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
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from redis.exceptions import RedisError

from accounts.throttles import redis_client, registered_script
from audit.context import Actor
from audit.services import record
from connectors.adapters import registry
from connectors.adapters.base import DeliveryError, OutboundMessage, Template
from connectors.adapters.http import HttpReply, HttpTransportError, outbound_http
from connectors.channels import MAX_ATTEMPTS
from connectors.health import channel_actor, channel_health_failed, channel_health_ok
from connectors.models import Channel, ChannelCredential, Credential
from connectors.services import credential_use
from conversations.models import (
    OUTSIDE_WINDOW_ERROR,
    ContactIdentity,
    Conversation,
    Inbox,
    Message,
)
from conversations.services import (
    body_of,
    message_delivery_log,
    message_delivery_retry,
    message_delivery_update,
    template_language_clean,
    template_name_clean,
)
from parley.keyring.providers import KeyringError
from parley.rows import all_fields, columns, from_row

logger = logging.getLogger(__name__)

LEASE_SECONDS = 60  # one sender per message at a time (longer than an attempt)
OUTSIDE_WINDOW = OUTSIDE_WINDOW_ERROR  # the inbox offers a template on such a message


def outside_window_closed(label: str) -> str:
    """What the agent reads on a reply refused outside the window of a kind without templates."""
    return (
        f"This customer last wrote more than 24 hours ago: {label} delivers no reply "
        "until they write again."
    )


AWAITING_RECIPIENT = "awaiting_visitor"  # the outcome for a PULL kind's reply
# Codes that say something about the channel rather than the message.
CHANNEL_CODES = {"auth_failed", "credentials_missing", "credentials_invalid", "settings_invalid"}


class TransientDeliveryError(Exception):
    """An attempt failed in a way another attempt may fix; retry after ``countdown`` seconds.

    ``counted`` is False when nothing went to the network (Parley's own rate limit
    or circuit breaker held the send back): the message's attempt budget is intact.
    """

    def __init__(
        self,
        error: str,
        *,
        attempts: int,
        countdown: int,
        counted: bool = True,
        retry_after: float | None = None,
    ):
        super().__init__(error)
        self.error, self.attempts, self.countdown = error, attempts, countdown
        self.counted = counted
        # Held back (not counted): the refusal's own seconds, before countdown's rounding.
        self.retry_after = retry_after


class _ChannelHttp:
    """The :class:`HttpCall` one delivery attempt hands its adapter: ``outbound_http``
    bound to the channel's rate key and rate, noting every network attempt (and
    every local refusal) for the message's ``delivery_log``. It remembers whether
    the last call was held back without a request (``held_back``).

    On success the notes are written in the same UPDATE as the message's ``sent``
    status (:meth:`take`); otherwise :meth:`flush` writes them before anything else
    the attempt records."""

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

    def take(self) -> list[dict]:
        """The noted attempts, handed over to be written with the message's status."""
        entries, self.pending = self.pending, []
        return entries

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


# Delete the lease only if it is still ours (it may have lapsed and been taken by
# another worker): compare and delete in one step, one round trip.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _lease_take(key: str, lease: str) -> bool:
    """Take the message's sending lease (``LEASE_SECONDS``), False if another holds it.

    Through the process's one Redis client (``accounts.throttles.redis_client``):
    Django's cache builds a client per call."""
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
    registered_script(client, _RELEASE)(keys=[cache.make_key(key)], args=[lease])


def pull_kinds() -> tuple[str, ...]:
    """Kinds whose adapter leaves replies for the recipient to fetch (``PULL``)."""
    return tuple(kind for kind in registry.kinds() if registry.get(kind).PULL)


@functools.cache
def _read_sql() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """One read of everything an attempt needs but the credentials: the message's
    fields, its conversation's contact and its inbox's channel (all of its fields)."""
    wanted = {
        "id",
        "conversation_id",
        "inbox_id_denorm",
        "body_ct",
        "attachments",
        "template",
        "created_at",
        "delivery",
        "delivery_attempts",
    }
    # In the model's field order: Model.from_db fills the deferred ones by position.
    message_fields = tuple(f.attname for f in Message._meta.concrete_fields if f.attname in wanted)
    channel_fields = all_fields(Channel)
    q = connection.ops.quote_name
    m, c = q(Message._meta.db_table), q(Conversation._meta.db_table)
    i, ch = q(Inbox._meta.db_table), q(Channel._meta.db_table)
    sql = (
        f"SELECT {columns(Message, message_fields)}, {c}.{q('contact_id')}, "  # noqa: S608
        f"{columns(Channel, channel_fields)} FROM {m} "
        f"JOIN {c} ON {c}.{q('id')} = {m}.{q('conversation_id')} "
        f"JOIN {i} ON {i}.{q('id')} = {c}.{q('inbox_id')} "
        f"LEFT JOIN {ch} ON {ch}.{q('id')} = {i}.{q('channel_id')} "
        f"WHERE {m}.{q('id')} = ANY(%s) AND {m}.{q('kind')} = %s AND {m}.{q('direction')} = %s "
        f"ORDER BY {m}.{q('id')}"
    )
    return sql, message_fields, channel_fields


def _load(message_id: int) -> tuple[Message, Channel | None, int] | None:
    """(message, its channel or None, its contact's id) in one query; None when there is
    no such outgoing message."""
    found = _load_many([message_id])
    return found[0] if found else None


@functools.cache
def _links_sql() -> tuple[str, tuple[str, ...]]:
    credential_fields = all_fields(Credential)
    q = connection.ops.quote_name
    link, credential = q(ChannelCredential._meta.db_table), q(Credential._meta.db_table)
    sql = (
        f"SELECT {link}.{q('role')}, {columns(Credential, credential_fields)} "  # noqa: S608
        f"FROM {link} JOIN {credential} ON {credential}.{q('id')} = {link}.{q('credential_id')} "
        f"WHERE {link}.{q('channel_id')} = %s ORDER BY {link}.{q('id')}"
    )
    return sql, credential_fields


def _credentials_load(channel: Channel) -> list[tuple[str, Credential]]:
    """The channel's credentials the adapter sends with (``SEND_SECRETS``), with their
    ciphertext (a reused decryption is keyed on it, so a replaced secret is never
    served from an earlier one): [(role, credential)], one query."""
    roles = registry.get(channel.kind).SEND_SECRETS
    sql, fields = _links_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [channel.pk])
        rows = cursor.fetchall()
    return [
        (row[0], from_row(Credential, fields, row[1:]))
        for row in rows
        if roles is None or row[0] in roles
    ]


@sensitive_variables("out")
def _send_secrets(channel: Channel, credentials: list[tuple[str, Credential]]) -> dict[str, str]:
    """Decrypt the send secrets for this attempt (``connectors.channels.channel_secrets``
    on credentials already read): a decryption of the same ciphertext by this process
    in the last minute may serve, each decryption is audited."""
    actor = channel_actor(channel)
    out = {}
    for role, credential in credentials:
        out[role] = credential_use(
            credential=credential, purpose="channel.sign", actor=actor, reuse=True
        )
    return out


@functools.cache
def _claim_sql() -> str:
    q = connection.ops.quote_name
    m, ident = q(Message._meta.db_table), q(ContactIdentity._meta.db_table)
    return (
        f"UPDATE {m} SET delivery_attempts = delivery_attempts + 1 "  # noqa: S608
        "WHERE id = %s AND kind = %s AND direction = %s "
        "AND (delivery = %s OR (delivery = %s AND delivery_attempts < %s)) "
        f"RETURNING delivery_attempts, (SELECT external_id FROM {ident} "
        "WHERE contact_id = %s AND channel_id = %s ORDER BY id LIMIT 1)"
    )


def _claim(
    message_id: int, contact_id: int, channel: Channel | None
) -> tuple[int, str | None] | None:
    """Count an attempt on an eligible message (queued, or failed with attempts left)
    before anything leaves: (attempts now, the contact's id on the channel or None),
    None when the message is not eligible (sent meanwhile, or out of attempts).

    One statement: the conditional UPDATE returns the new count, and the recipient
    is read in the same round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            _claim_sql(),
            [
                message_id,
                Message.Kind.MESSAGE,
                Message.Direction.OUT,
                Message.Delivery.QUEUED,
                Message.Delivery.FAILED,
                MAX_ATTEMPTS,
                contact_id,
                channel.pk if channel is not None else None,
            ],
        )
        row = cursor.fetchone()
    return None if row is None else (row[0], row[1])


def _pulled(channel: Channel | None) -> bool:
    return channel is not None and channel.kind in pull_kinds()


def _problem(channel: Channel | None, recipient: str | None) -> str:
    """Why the message cannot go; empty when it can."""
    if channel is None:
        return "The inbox has no channel."
    if channel.kind not in registry.kinds():
        return f"No sender for {channel.kind} channels."
    if not channel.enabled:
        return "The channel is disabled."
    if recipient is None:
        return "The contact has no id on this channel."
    return ""


def delivery_attempt(*, message_id: int) -> str:
    """One attempt at sending an outbound message through its channel's adapter.

    Returns the outcome (``sent``, ``failed``, ``awaiting_visitor`` for a PULL
    kind's reply, or why nothing was done) or
    raises :class:`TransientDeliveryError` for the task to retry later. Safe to
    run twice: a message already sent (or being sent by another worker, under a
    short Redis lease) is left alone.
    """
    loaded = _load(message_id)
    if loaded is None:
        return "missing"
    message, channel, contact_id = loaded
    if _pulled(channel):
        # Web chat: the reply waits for the visitor's poll, which marks it
        # delivered. No attempt is counted, nothing fails or retries, and the
        # channel's health is not touched.
        return AWAITING_RECIPIENT
    credentials = (
        _credentials_load(channel)
        if channel is not None and channel.enabled and channel.kind in registry.kinds()
        else []
    )
    return _attempt(message, channel, credentials, contact_id)


def _attempt(
    message: Message,
    channel: Channel | None,
    credentials: list[tuple[str, Credential]],
    contact_id: int,
) -> str:
    """The attempt proper, under the message's lease; ``credentials`` are the
    channel's send credentials (:func:`_credentials_load`) when it can send."""
    message_id = message.pk
    lease_key, lease = f"channel-deliver:{message_id}", uuid.uuid4().hex
    if not _lease_take(lease_key, lease):
        return "busy"
    try:
        claimed = _claim(message_id, contact_id, channel)
        if claimed is None:
            return "skipped"
        attempts, recipient = claimed
        message.delivery_attempts = attempts
        return _send(message, channel, credentials, recipient, attempts)
    finally:
        _lease_release(lease_key, lease)


@sensitive_variables("keys")
def _send(
    message: Message,
    channel: Channel | None,
    credentials: list[tuple[str, Credential]],
    recipient: str | None,
    attempts: int,
) -> str:
    message_id = message.pk
    problem = _problem(channel, recipient)
    if problem:
        delivery_fail(
            message_id=message_id,
            error=problem,
            attempts=attempts,
            channel_id=channel.pk if channel else None,
        )
        return "failed"
    base = Message.objects.filter(
        pk=message_id, kind=Message.Kind.MESSAGE, direction=Message.Direction.OUT
    )
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
        keys = _send_secrets(channel, credentials)
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
                str(exc),
                attempts=attempts - 1,
                countdown=countdown,
                counted=False,
                retry_after=http.held_back.retry_after,
            ) from None
        error = str(exc)[:300]
        if exc.outside_window:
            # A kind with templates (WhatsApp): the inbox offers one on this text.
            # Others (Messenger, Instagram) have no way to write first.
            error = OUTSIDE_WINDOW if adapter.TEMPLATES else outside_window_closed(adapter.label)
        if exc.auth_failed or exc.code in CHANNEL_CODES:
            channel_health_failed(channel_id=channel.pk, code=exc.code, auth_failed=exc.auth_failed)
        if not exc.permanent and attempts < MAX_ATTEMPTS:
            countdown = max(int(exc.retry_after or 0), retry_delay(attempts))
            message_delivery_retry(
                message=message,
                error=error,
                next_at=timezone.now() + timedelta(seconds=countdown),
            )
            raise TransientDeliveryError(error, attempts=attempts, countdown=countdown) from None
        delivery_fail(message_id=message_id, error=error, attempts=attempts, channel_id=channel.pk)
        return "failed"
    except Exception:
        http.flush(best_effort=True)
        raise
    del keys
    # The attempt's log entries and the ``sent`` status: one UPDATE.
    message_delivery_update(
        message=message,
        status=Message.Delivery.SENT,
        external_id=result.external_id,
        log=http.take(),
    )
    channel_health_ok(channel=channel)
    return "sent"


# --- draining an inbox's replies in one task -------------------------------------------------------

DRAIN_BATCH = 50  # replies taken at once: the channel and its credentials read once for them
DRAIN_SECONDS = 0.5  # then a drain with replies left hands over (as the inbound drain does)
DRAIN_KEEP_SECONDS = 24 * 3600  # an inbox's queue of reply ids outlives any drain
DRAIN_FLAG_SECONDS = 120  # a lost drain task stops holding the flag after this

# Queue a reply id and raise the inbox's "drain pending" flag, in one step (MULTI):
# returns the SET NX answer, so exactly one of the replies queued while no drain is
# pending enqueues the drain.
_DRAIN_PUSH = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[3]) then return 1 end
return 0
"""
# Lower the flag *then* take the ids, in one step: a reply pushed before this is
# in the ids taken; one pushed after it finds the flag down and enqueues a new drain.
# The ids taken are kept under the drain task's own key (KEYS[3]) until it is done:
# a drain redelivered after its worker died (acks_late) takes the same ids again.
_DRAIN_TAKE = """
local ids = redis.call('LRANGE', KEYS[3], 0, -1)
if #ids == 0 then
  redis.call('DEL', KEYS[2])
  ids = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
  redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
  if #ids > 0 then
    redis.call('RPUSH', KEYS[3], unpack(ids))
    redis.call('EXPIRE', KEYS[3], ARGV[2])
  end
end
return {ids, redis.call('LLEN', KEYS[1])}
"""
# Held back by the channel's rate limit (or its circuit): put the ids not sent back
# at the head of the queue, in their order, release the drain's own key and raise
# the flag, in one step. Returns the SET NX answer: 1 when the caller must enqueue
# the (delayed) drain, 0 when a drain is already pending and will take them.
_DRAIN_REQUEUE = """
for i = #ARGV, 3, -1 do redis.call('LPUSH', KEYS[1], ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[3])
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[2]) then return 1 end
return 0
"""
# A held-back drain waits at least this long before it tries again: time enough for
# the channel's bucket to refill a useful share (20 sends at WhatsApp's 80/s).
HELD_BACK_PAUSE_SECONDS = 0.25


def _drain_keys(inbox_id: int) -> list[str]:
    # Through the cache's key function: the tenant's schema is part of each key.
    return [
        cache.make_key(f"channel-drain-ids:{inbox_id}"),
        cache.make_key(f"channel-drain:{inbox_id}"),
    ]


def drain_push(*, inbox_id: int, message_id: int) -> bool | None:
    """Queue a reply for its inbox's drain: True when the caller must enqueue the
    drain task (none was pending), False when a pending drain will send it, None
    when Redis cannot be used (the caller sends it with a task of its own)."""
    client = redis_client()
    if client is None:
        return None
    try:
        pushed = registered_script(client, _DRAIN_PUSH)(
            keys=_drain_keys(inbox_id),
            args=[int(message_id), DRAIN_KEEP_SECONDS, DRAIN_FLAG_SECONDS],
        )
    except RedisError as exc:
        logger.warning("delivery: drain queue unavailable (%s)", type(exc).__name__)
        return None
    return bool(int(pushed))


def drain_flag_raise(*, inbox_id: int) -> bool | None:
    """Raise the inbox's flag (a drain left ids for the next one): True when the caller
    must enqueue that drain, False when one is pending, None when Redis failed."""
    client = redis_client()
    if client is None:
        return None
    try:
        return bool(client.set(_drain_keys(inbox_id)[1], "1", nx=True, ex=DRAIN_FLAG_SECONDS))
    except RedisError as exc:
        logger.warning("delivery: drain flag not raised (%s)", type(exc).__name__)
        return None


def drain_release(*, inbox_id: int) -> None:
    """Lower the inbox's flag without taking ids (the drain task could not be
    enqueued): the next reply enqueues one; ``deliveries_resume`` is the backstop."""
    client = redis_client()
    if client is None:
        return
    try:
        client.delete(_drain_keys(inbox_id)[1])
    except RedisError as exc:
        logger.warning("delivery: drain flag not lowered (%s)", type(exc).__name__)


def _taking_key(inbox_id: int, drain_id: str) -> str:
    return cache.make_key(f"channel-drain-taken:{inbox_id}:{drain_id}")


def _drain_take(inbox_id: int, drain_id: str, limit: int) -> tuple[list[int], int]:
    """(up to ``limit`` queued ids, how many are left after them)."""
    client = redis_client()
    if client is None:
        return [], 0
    ids, left = registered_script(client, _DRAIN_TAKE)(
        keys=[*_drain_keys(inbox_id), _taking_key(inbox_id, drain_id)],
        args=[limit, DRAIN_KEEP_SECONDS],
    )
    out = []
    for raw in ids:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        if text.isascii() and text.isdigit():
            out.append(int(text))
    return out, int(left)


def _drain_done(inbox_id: int, drain_id: str) -> None:
    client = redis_client()
    if client is None:
        return
    try:
        client.delete(_taking_key(inbox_id, drain_id))
    except RedisError as exc:  # it expires by itself
        logger.warning("delivery: drain's ids not released (%s)", type(exc).__name__)


def _drain_requeue(
    inbox_id: int, drain_id: str, ids: list[int], retry_after: float | None, drained: Drained
) -> bool:
    """Put ``ids`` (not sent: held back) back at the head of the inbox's queue for a
    drain after the pause; False when Redis refused (the caller schedules each on
    ``message_deliver`` instead, as before the queue existed)."""
    client = redis_client()
    if client is None:
        return False
    try:
        raised = registered_script(client, _DRAIN_REQUEUE)(
            keys=[*_drain_keys(inbox_id), _taking_key(inbox_id, drain_id)],
            args=[DRAIN_KEEP_SECONDS, DRAIN_FLAG_SECONDS, *(int(i) for i in ids)],
        )
    except RedisError as exc:
        logger.warning("delivery: held-back replies not requeued (%s)", type(exc).__name__)
        return False
    drained.count("held_back", len(ids))
    drained.resume_after = max(HELD_BACK_PAUSE_SECONDS, float(retry_after or 0))
    drained.resume = bool(int(raised))
    drained.more = False
    return True


@dataclass
class Drained:
    """What one drain did: ``outcomes`` counted by name, ``retries`` the messages to
    hand to ``message_deliver`` after ``countdown`` seconds (a transient failure, a
    lease another worker holds, an unexpected error), ``more`` when ids were left."""

    outcomes: dict[str, int] = field(default_factory=dict)
    retries: list[tuple[int, int]] = field(default_factory=list)
    more: bool = False
    # Held back by the channel's rate limit or circuit: the seconds to wait before
    # the next drain (``resume_after``), and whether this drain put the ids it had
    # not sent back in the queue and raised the flag (``resume``: the task must then
    # enqueue that drain; False with a pause: a pending drain takes them).
    resume_after: float | None = None
    resume: bool = False

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


def _load_many(message_ids: list[int]) -> list[tuple[Message, Channel | None, int]]:
    """(message, its channel or None, its contact's id) for each outgoing message of
    ``message_ids`` that exists, by id, in one query."""
    sql, message_fields, channel_fields = _read_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, [list(message_ids), Message.Kind.MESSAGE, Message.Direction.OUT])
        found = cursor.fetchall()
    n = len(message_fields)
    out = []
    for row in found:
        channel_values = row[n + 1 :]
        channel = (
            None if channel_values[0] is None else from_row(Channel, channel_fields, channel_values)
        )
        out.append((from_row(Message, message_fields, row[:n]), channel, row[n]))
    return out


def deliveries_drain(
    *,
    inbox_id: int,
    drain_id: str,
    limit: int = DRAIN_BATCH,
    max_seconds: float = DRAIN_SECONDS,
) -> Drained:
    """Send the replies queued for one inbox's drain (:func:`drain_push`), one after
    the other, reading the channel and its credentials once for all of them.

    Each message keeps everything of a single attempt (:func:`delivery_attempt`): its
    own lease, its attempt counted by the claim before anything leaves, its log and
    status, the rate limit and circuit breaker per send. A message that fails
    transiently, is held by another worker's lease, or meets an unexpected error is
    handed back in ``retries`` (the task schedules it on ``message_deliver``) and the
    drain goes on with the next one. A message held back by the channel's own rate
    limit or circuit breaker (nothing sent, no attempt counted) stops the drain: it
    and the ids after it go back to the head of the queue, in order, for one drain
    after ``resume_after`` seconds (the task enqueues it when ``resume``), instead of
    a retry task each. It takes ``limit`` ids at a time (the channel and its
    credentials read again for each batch) until none is left or ``max_seconds``
    have passed; then ``more`` asks for the next drain, at the back of the worker's
    queue, so inbound processing and sending take turns. ``drain_id`` (the task's id) names the ids this
    drain took, kept until it is done: a drain run again under the same id (its
    worker died) sends what it took, as a redelivered ``message_deliver`` would.
    """
    drained = Drained()
    deadline = time.monotonic() + max_seconds
    while True:
        ids, left = _drain_take(inbox_id, drain_id, limit)
        drained.more = left > 0
        if not ids:
            return drained
        # An error before any message is claimed (reading the rows or the credentials)
        # leaves the ids taken under ``drain_id``: the task's retry takes them again.
        _drain_ids(inbox_id, drain_id, ids, drained)
        _drain_done(inbox_id, drain_id)
        if drained.resume_after is not None or not drained.more or time.monotonic() > deadline:
            return drained


def _drain_ids(inbox_id: int, drain_id: str, ids: list[int], drained: Drained) -> None:
    rows = _load_many(list(dict.fromkeys(ids)))
    credentials: list[tuple[str, Credential]] | None = None
    for index, (message, channel, contact_id) in enumerate(rows):
        if message.inbox_id_denorm != inbox_id:
            continue  # not this inbox's (an id cannot move; never send it from here)
        if _pulled(channel):
            drained.count(AWAITING_RECIPIENT)
            continue
        if credentials is None:
            credentials = (
                _credentials_load(channel)
                if channel is not None and channel.enabled and channel.kind in registry.kinds()
                else []
            )
        try:
            outcome = _attempt(message, channel, credentials, contact_id)
        except TransientDeliveryError as exc:
            if not exc.counted:
                # The channel's budget is spent (or its circuit open): the rest of
                # this drain would be held back too. They wait in the queue, in
                # order, for one drain after the pause, not a task each.
                rest = [m.pk for m, _, _ in rows[index:] if m.inbox_id_denorm == inbox_id]
                if _drain_requeue(inbox_id, drain_id, rest, exc.retry_after, drained):
                    return
            drained.retries.append((message.pk, exc.countdown))
            outcome = "retry"
        except Exception as exc:  # noqa: BLE001 - one message's error never blocks the others
            logger.error(
                "delivery: drain of inbox %s, message %s: %s",
                inbox_id,
                message.pk,
                type(exc).__name__,
            )
            drained.retries.append((message.pk, retry_delay(1)))
            outcome = "error"
        if outcome == "busy":
            drained.retries.append((message.pk, LEASE_SECONDS))
        if outcome == "sent" and channel is not None:
            channel.health = Channel.Health.OK  # set by the first send; not again
        drained.count(outcome)
