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

import functools
import hashlib
import logging
import time
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
from connectors.channels import ROUTING_SETTINGS, channel_with_inbox
from connectors.health import channel_event_seen, channel_health_failed
from connectors.models import Channel, InboundDrain, InboundEvent
from conversations.models import Message
from conversations.services import message_delivery_update, message_receive
from parley import rows
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


@functools.lru_cache(maxsize=512)
def _insert_sql(schema: str, request_drain: bool) -> str:
    """The event's INSERT for the tenant ``schema``, which it names: it runs without
    django-tenants' ``SET search_path`` (parley.rows.prepared_cursor). A row when the
    event is new: its id, and with ``request_drain`` whether the same statement raised
    the tenant's drain flag and whether the flag's row exists."""
    insert = (
        f"INSERT INTO {rows.tenant_table(InboundEvent, schema)} (id, channel_id, dedupe_key, raw_ct, status,"  # noqa: S608 - the tenant's checked schema
        " attempts, last_error, received_at) VALUES (%s, %s, %s, %s, %s, 0, '', %s)"
        " ON CONFLICT (channel_id, dedupe_key) DO NOTHING RETURNING id"
    )
    if not request_drain:
        return insert
    drain = rows.tenant_table(InboundDrain, schema)
    # One statement, one transaction: the event and the flag are committed together.
    # A flag already up is not written (no row lock, no WAL): the queued drain will
    # lower it before it claims, and so sees this event.
    return (
        f"WITH stored AS ({insert}), raised AS ("  # noqa: S608 - the tenant's checked schema
        f"UPDATE {drain} SET requested_at = now() WHERE id = {InboundDrain.ROW} "
        f"AND EXISTS (SELECT 1 FROM stored) AND {_flag_down()} RETURNING 1) "
        "SELECT stored.id, EXISTS (SELECT 1 FROM raised), "
        f"EXISTS (SELECT 1 FROM {drain} WHERE id = {InboundDrain.ROW}) FROM stored"
    )


# --- the tenant's drain flag (InboundDrain) ---------------------------------------------------------

DRAIN_FLAG_SECONDS = 60  # a raised flag whose drain never ran (its task lost) lapses after this


def _flag_down(column: str = "requested_at") -> str:
    """SQL: the flag (its ``requested_at`` column) is down, or up so long its drain was lost."""
    return f"({column} IS NULL OR {column} < now() - interval '{DRAIN_FLAG_SECONDS} seconds')"


def drain_flag_raise() -> bool:
    """Raise the tenant's drain flag unless it is up: True when this call raised it
    (its caller then publishes the drain). Creates the flag's row if it is missing."""
    table = connection.ops.quote_name(InboundDrain._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, requested_at) VALUES (%s, now()) "  # noqa: S608 - names from _meta
            f"ON CONFLICT (id) DO UPDATE SET requested_at = EXCLUDED.requested_at "
            f"WHERE {_flag_down(f'{table}.requested_at')} RETURNING 1",
            [InboundDrain.ROW],
        )
        return cursor.fetchone() is not None


def drain_flag_lower() -> None:
    """The drain is starting (or its task could not be published): the next event raises it."""
    InboundDrain.objects.filter(pk=InboundDrain.ROW).update(requested_at=None)


def inbound_event_store(
    *, channel: Channel, raw: bytes, key: str, pk: int | None = None, request_drain: bool = False
) -> tuple[InboundEvent, bool]:
    """Keep ``raw`` encrypted (bound to the row): ``(event, created)``; a repeat is not stored.

    Its id first (the ciphertext names the row): ``pk`` when the caller reserved one
    (the webhook's channel read does), else one statement here; then one ``INSERT …
    ON CONFLICT DO NOTHING`` (a repeat, even two deliveries racing, inserts nothing
    and is read back: no savepoint, no prior SELECT). A repeat costs one reserved id
    more than it needs; ids are not dense.

    ``request_drain`` (the webhook, storing outside any transaction): the same
    statement raises the tenant's drain flag (``InboundDrain``) when it stores the
    event and the flag is down. ``event.drain_flag_raised`` then tells the caller to
    publish the drain (``connectors.tasks.inbound_drain_publish``) once committed."""
    event = InboundEvent(
        channel=channel, dedupe_key=key, received_at=timezone.now(), attempts=0, last_error=""
    )
    event.pk = pk or fields.reserve_ids(TABLE)[0]
    event.raw_ct = fields.encrypt(
        raw, schema=connection.schema_name, table=TABLE, column=COLUMN, pk=event.pk
    )
    with rows.prepared_cursor(own_schema=True) as cursor:
        cursor.execute(
            _insert_sql(connection.schema_name, request_drain),
            [event.pk, channel.pk, key, event.raw_ct, event.status, event.received_at],
        )
        stored = cursor.fetchone()
    if stored is None:
        return InboundEvent.objects.get(channel=channel, dedupe_key=key), False
    event._state.adding = False
    event.drain_flag_raised = False
    if request_drain:
        raised, present = stored[1], stored[2]
        # No flag row (a schema restored without it): made and raised here.
        event.drain_flag_raised = raised or (not present and drain_flag_raise())
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
    # A pending event keeps ``claimed_at`` as "last tried at": the drain waits
    # RETRY_SECONDS x attempts before it claims that event again.
    InboundEvent.objects.filter(pk=event_id).update(
        status=status,
        last_error=error[:200],
        processed_at=timezone.now() if status == InboundEvent.Status.PROCESSED else None,
        claimed_at=timezone.now() if status == InboundEvent.Status.PENDING else None,
    )


def inbound_event_process(*, event_id: int) -> str:
    """Claim, parse and apply one stored event: ``processed``, ``failed``, ``skipped``
    (another worker has it, or it is done) or ``missing``. Idempotent: messages are
    keyed by external id, statuses only move forward. An unexpected error puts the
    event back as pending (the relay retries) until ``MAX_ATTEMPTS``."""
    if not _claim(event_id):
        return "skipped" if InboundEvent.objects.filter(pk=event_id).exists() else "missing"
    event = InboundEvent.objects.select_related("channel", "channel__inbox").get(pk=event_id)
    return _process_claimed(event)


def _process_claimed(event: InboundEvent) -> str:
    """Parse and apply an event this worker has claimed (its ``attempts`` counts this one)."""
    event_id, channel = event.pk, event.channel
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


# --- draining: many events per task -------------------------------------------------------------------

DRAIN_BATCH = 50  # events claimed per statement
# Then the drain hands over (it asks for another, at the back of the queue): the
# tenants' drains take turns, and so do the reply drains (message_drain) the events
# just processed have queued, so replies leave while a burst is still coming in
# rather than after it (a channel's send rate is capped: replies held until the end
# of a long burst could then only trickle out). About one claimed batch per task.
DRAIN_SECONDS = 0.5
RETRY_SECONDS = 10  # an event that failed unexpectedly waits this x its attempts

_CLAIM = """
    UPDATE connectors_inboundevent SET status = 'processing', claimed_at = %(now)s, attempts = attempts + 1
    WHERE id IN (
        SELECT id FROM connectors_inboundevent
        WHERE status = 'pending'
          AND (claimed_at IS NULL
               OR claimed_at < %(now)s - make_interval(secs => %(retry)s * attempts))
        ORDER BY id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    RETURNING {columns}
"""


@functools.cache
def _claim_sql() -> tuple[str, tuple[str, ...]]:
    names = rows.all_fields(InboundEvent)
    return _CLAIM.format(columns=rows.columns(InboundEvent, names)), names


def inbound_events_claim(*, limit: int = DRAIN_BATCH) -> list[InboundEvent]:
    """Claim up to ``limit`` pending events, oldest first, in one statement: the
    events as they are after the claim (the UPDATE returns the rows: no read after it).

    Rows another worker is claiming are skipped (``SKIP LOCKED``), so drains running
    side by side never take the same event; an event that failed unexpectedly is
    left alone for ``RETRY_SECONDS`` x its attempts (backoff)."""
    sql, names = _claim_sql()
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": timezone.now(), "retry": RETRY_SECONDS, "limit": limit})
        found = cursor.fetchall()
    return sorted((rows.from_row(InboundEvent, names, row) for row in found), key=lambda e: e.pk)


@dataclass
class Drained:
    """What one drain did: outcomes counted, and whether events may still wait."""

    outcomes: dict[str, int] = field(default_factory=dict)
    more: bool = False

    def count(self, outcome: str, n: int = 1) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + n


def inbound_events_drain(
    *, max_seconds: float = DRAIN_SECONDS, batch: int = DRAIN_BATCH
) -> Drained:
    """Process this tenant's pending events, oldest first, a claimed batch at a time,
    until none is left or ``max_seconds`` have passed (``more`` is then True).

    Each event is applied in its own transaction, as by :func:`inbound_event_process`:
    one that fails does not hold back the others. An unexpected error (the database
    went away) stops the drain after its batch; the failed event is pending again
    with a backoff, and what was claimed but not reached goes back as it was."""
    drained = Drained()
    deadline = time.monotonic() + max_seconds
    channels: dict[int, Channel] = {}
    while True:
        events = inbound_events_claim(limit=batch)
        if not events:
            return drained
        for index, event in enumerate(events):
            event.channel = _channel(channels, event.channel_id)
            try:
                drained.count(_process_claimed(event))
            except Exception as exc:  # noqa: BLE001 - left pending by _process_claimed
                logger.warning("inbound event %s: %s; retried later", event.pk, type(exc).__name__)
                drained.count("retry")
                stop = True
            else:
                # One event can hold a batch of 50 messages: the time budget is
                # checked after each event, not each claimed batch.
                stop = time.monotonic() > deadline
            if stop:
                rest = [e.pk for e in events[index + 1 :]]
                if rest:
                    _unclaim(rest)
                    drained.count("returned", len(rest))
                drained.more = True
                return drained


def _channel(cache: dict[int, Channel], channel_id: int) -> Channel:
    """The event's channel with its inbox, read once per drain (not per event)."""
    if channel_id not in cache:
        cache[channel_id] = channel_with_inbox(channel_id=channel_id)
    return cache[channel_id]


def _unclaim(event_ids: list[int]) -> None:
    """Give claimed events back as they were (not tried): pending, attempt uncounted."""
    InboundEvent.objects.filter(pk__in=event_ids, status=InboundEvent.Status.PROCESSING).update(
        status=InboundEvent.Status.PENDING, claimed_at=None, attempts=F("attempts") - 1
    )


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
