"""The inbound event store: verified webhook bodies kept (encrypted) before anything else.

DESIGN.md, messages steps 2-3. The webhook verifies, parses (pure, bounded:
a body no adapter can read is refused with 400 and nothing stored), stores the
raw bytes in an ``InboundEvent`` row, idempotently on ``(channel, dedupe_key)``,
and answers. Processing (upserting contacts, conversations, messages and
delivery states through ``conversations.services``) happens in the worker,
in the tenant's schema, after a conditional UPDATE claims the row; the API
kind processes in the request (its answer names the stored message). The
broker being down loses nothing: :func:`inbound_events_pending` feeds the beat
relay (``connectors.tasks.inbound_events_relay``), which enqueues again.
Processed rows are purged after ``PARLEY_INBOUND_EVENT_RETENTION_DAYS``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from connectors.adapters import registry
from connectors.adapters.base import (
    ChannelAdapter,
    InboundMessage,
    MessageKind,
    ParsedEvent,
    PayloadInvalid,
    StatusUpdate,
)
from connectors.channels import ROUTING_SETTINGS, channel_event_seen, channel_health_failed
from connectors.models import Channel, InboundEvent
from conversations.models import Message
from conversations.services import message_delivery_update, message_receive
from parley.keyring import fields

logger = logging.getLogger(__name__)

TABLE = "connectors_inboundevent"
COLUMN = "raw"
MAX_ATTEMPTS = 5  # processing attempts before an event is marked failed
CLAIM_SECONDS = 300  # a claim older than this belonged to a worker that died
RELAY_AFTER_SECONDS = 10  # pending this long: its enqueue was probably lost


def retention_days() -> int:
    return int(getattr(settings, "PARLEY_INBOUND_EVENT_RETENTION_DAYS", 7))


# --- storing ----------------------------------------------------------------------------------------


def dedupe_key(parsed: ParsedEvent, raw: bytes) -> str:
    """One item with an id: that id (a retry with a changed body is the same event);
    otherwise the body's hash (a retried batch is byte-identical)."""
    items = [f"m:{m.routing_key}:{m.external_id}" for m in parsed.messages] + [
        f"s:{s.routing_key}:{s.external_id}:{s.status}" for s in parsed.statuses if s.external_id
    ]
    if len(items) == 1 and not parsed.errors and len(parsed.statuses) <= 1:
        return items[0][:300]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def inbound_event_store(*, channel: Channel, raw: bytes, key: str) -> tuple[InboundEvent, bool]:
    """Keep ``raw`` encrypted (bound to the row): ``(event, created)``; a repeat is not stored."""
    existing = InboundEvent.objects.filter(channel=channel, dedupe_key=key).first()
    if existing is not None:
        return existing, False
    event = InboundEvent(channel=channel, dedupe_key=key, received_at=timezone.now())
    event.pk = fields.reserve_ids(TABLE)[0]
    event.raw_ct = fields.encrypt(
        raw, schema=connection.schema_name, table=TABLE, column=COLUMN, pk=event.pk
    )
    try:
        with transaction.atomic():
            event.save(force_insert=True)
    except IntegrityError:
        # The same event, delivered twice at once: the other request stored it.
        return InboundEvent.objects.get(channel=channel, dedupe_key=key), False
    channel_event_seen(channel=channel)
    return event, True


def raw_of(event: InboundEvent) -> bytes:
    return fields.decrypt(
        bytes(event.raw_ct), schema=connection.schema_name, table=TABLE, column=COLUMN, pk=event.pk
    )


# --- applying ----------------------------------------------------------------------------------------


@dataclass
class Applied:
    """What one event changed (the API kind's answer is built from it)."""

    messages: list[tuple[Message, bool]] = field(default_factory=list)  # (message, created)
    statuses: list[tuple[Message, bool]] = field(default_factory=list)  # (message, changed)
    unknown_statuses: int = 0


def _body(item: InboundMessage) -> str:
    if item.kind == MessageKind.INTERACTIVE_REPLY:
        return item.reply_title or item.text or item.reply_id
    if item.kind == MessageKind.LOCATION and item.location is not None:
        place = item.location
        return f"Location: {place.latitude}, {place.longitude} {place.name}".strip()
    if item.kind == MessageKind.REACTION and item.reaction is not None:
        return f"Reacted {item.reaction.emoji}" if item.reaction.emoji else "Removed a reaction"
    if item.kind == MessageKind.CONTACTS:
        return "Shared contact: " + ", ".join(c.name for c in item.contacts)[:500]
    if item.kind == MessageKind.UNSUPPORTED:
        return f"[unsupported message: {item.raw_type or 'unknown'}]"[:200]
    if item.kind == MessageKind.MEDIA and not item.text:
        linked = [m for m in item.media if m.url.startswith("https://")]
        return "" if linked else f"[{item.media[0].type if item.media else 'media'}]"
    return item.text


def _attachments(item: InboundMessage) -> list[dict]:
    return [
        {"url": m.url, "type": m.mime_type or m.type, "size": m.size}
        for m in item.media
        if m.url.startswith("https://")
    ]


def _receive(channel: Channel, item: InboundMessage) -> tuple[Message, bool]:
    kwargs = {
        "inbox": channel.inbox,
        "contact_external_id": item.sender_id,
        "contact_name": item.sender_name,
        "body": _body(item)[:4096],
        "attachments": _attachments(item),
        "external_id": item.external_id[:128],
    }
    try:
        return message_receive(**kwargs)
    except IntegrityError:
        # Two first messages of one new contact raced on its identity: the
        # other one created it, so a second go finds it.
        return message_receive(**kwargs)


def _status(channel: Channel, adapter: ChannelAdapter, item: StatusUpdate) -> tuple[Message, bool]:
    outbound = Message.objects.filter(
        inbox_id_denorm=channel.inbox.pk,
        direction=Message.Direction.OUT,
        kind=Message.Kind.MESSAGE,
    )
    if adapter.status_names_our_id:
        ident = item.external_id
        message = (
            outbound.filter(pk=int(ident)).first() if ident.isascii() and ident.isdigit() else None
        )
    else:
        message = (
            outbound.filter(external_id=item.external_id).first() if item.external_id else None
        )
    if message is None:
        raise Http404("No such message on this channel.")
    before = message.delivery
    error = item.error_title or (f"code {item.error_code}" if item.error_code else "")
    message = message_delivery_update(message=message, status=str(item.status), error=error)
    return message, message.delivery != before


def inbound_event_apply(*, channel: Channel, parsed: ParsedEvent, strict: bool) -> Applied:
    """Store what ``parsed`` says, through ``conversations``. ``strict``: an unknown
    message in a status update raises Http404 (the API kind's answer), else it is counted."""
    if getattr(channel, "inbox", None) is None:
        raise ValidationError({"channel": "This channel is not bound to an inbox."})
    adapter = registry.get(channel.kind)
    applied = Applied()
    # One app secret can sign events of several accounts: keep only this channel's.
    account = str((channel.settings or {}).get(ROUTING_SETTINGS.get(channel.kind, ""), ""))

    def ours(item) -> bool:
        return not account or item.routing_key == account

    for item in parsed.messages:
        if ours(item):
            applied.messages.append(_receive(channel, item))
    for error in parsed.errors:
        if ours(error):
            # An account-level error the channel reported (WhatsApp value.errors):
            # the channels page shows it as the channel's last error.
            channel_health_failed(channel_id=channel.pk, code=f"vendor_{error.code or 'error'}")
    for item in parsed.statuses:
        if not ours(item):
            continue
        try:
            applied.statuses.append(_status(channel, adapter, item))
        except Http404:
            if strict:
                raise
            applied.unknown_statuses += 1
    return applied


# --- processing in the worker ------------------------------------------------------------------------


def _claim(event_id: int) -> bool:
    now = timezone.now()
    return bool(
        InboundEvent.objects.filter(pk=event_id)
        .filter(
            Q(status=InboundEvent.Status.PENDING)
            | Q(
                status=InboundEvent.Status.PROCESSING,
                claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS),
            )
        )
        .update(status=InboundEvent.Status.PROCESSING, claimed_at=now, attempts=F("attempts") + 1)
    )


def _finish(event_id: int, status: str, error: str = "") -> None:
    InboundEvent.objects.filter(pk=event_id).update(
        status=status,
        last_error=error[:200],
        processed_at=timezone.now() if status == InboundEvent.Status.PROCESSED else None,
        claimed_at=None,
    )


def inbound_event_process(*, event_id: int) -> str:
    """Claim, parse and apply one stored event: ``processed``, ``failed``, ``skipped``
    (another worker has it, or it is done) or ``missing``. Idempotent: messages are
    keyed by external id, statuses only move forward. An unexpected error puts the
    event back as pending (the relay retries) until ``MAX_ATTEMPTS``."""
    if not _claim(event_id):
        return "skipped" if InboundEvent.objects.filter(pk=event_id).exists() else "missing"
    event = InboundEvent.objects.select_related("channel", "channel__inbox").get(pk=event_id)
    channel = event.channel
    try:
        adapter = registry.get(channel.kind)
        parsed = adapter.parse(raw_of(event))
        with transaction.atomic():
            inbound_event_apply(channel=channel, parsed=parsed, strict=False)
            _finish(event_id, InboundEvent.Status.PROCESSED)
    except (PayloadInvalid, ValidationError, registry.UnknownChannelKind) as exc:
        # The event itself cannot be stored: trying again cannot help.
        code = getattr(exc, "code", None) or type(exc).__name__
        _finish(event_id, InboundEvent.Status.FAILED, str(code))
        logger.warning("inbound event %s failed: %s", event_id, code)
        return "failed"
    except Exception as exc:
        status = (
            InboundEvent.Status.FAILED
            if event.attempts >= MAX_ATTEMPTS
            else InboundEvent.Status.PENDING
        )
        _finish(event_id, status, type(exc).__name__)
        raise
    return "processed"


def inbound_events_pending(*, older_than_seconds: int = RELAY_AFTER_SECONDS, limit: int = 500):
    """Ids of events still waiting (their enqueue may have been lost), oldest first."""
    now = timezone.now()
    return list(
        InboundEvent.objects.filter(
            Q(
                status=InboundEvent.Status.PENDING,
                received_at__lt=now - timedelta(seconds=older_than_seconds),
            )
            | Q(
                status=InboundEvent.Status.PROCESSING,
                claimed_at__lt=now - timedelta(seconds=CLAIM_SECONDS),
            )
        )
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )


def inbound_events_purge(*, days: int | None = None) -> int:
    """Delete processed events older than the retention (their content lives on in messages)."""
    cutoff = timezone.now() - timedelta(days=retention_days() if days is None else days)
    deleted, _ = InboundEvent.objects.filter(
        status=InboundEvent.Status.PROCESSED, processed_at__lt=cutoff
    ).delete()
    return deleted
