"""Every change to contacts, conversations and messages: validated, access-checked, audited."""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from accounts.policy import Perm, user_has
from audit.context import SYSTEM, Actor
from audit.services import record
from conversations import events, presence
from conversations.access import conversation_get_for_user, inbox_list_for_user, inbox_members
from conversations.models import (
    CannedResponse,
    Contact,
    ContactIdentity,
    Conversation,
    Inbox,
    Message,
)
from conversations.selectors import (
    MESSAGE_TABLE,
    contact_find_by_email,
    contact_find_by_phone,
)
from conversations.selectors import body_of as body_of  # a read, re-exported for callers
from parley import phones, rows, validation
from parley.keyring import fields
from tenants.models import PUBLIC_SCHEMA, Tenant, validate_phone_region
from tenants.selectors import tenant_phone_region

TABLE = "conversations_contact"
PII = ("name", "phone", "email")


def _encrypt(contact: Contact, column: str, value: str) -> bytes | None:
    if not value:
        return None
    return fields.encrypt(
        value, schema=connection.schema_name, table=TABLE, column=column, pk=contact.pk
    )


def phone_blind_index(key: str, *, schema: str) -> str:
    """The blind index of a phone's index key (``parley.phones.normalise``), or ""."""
    return fields.blind_index(key, schema=schema, field="contact.phone") if key else ""


def contact_create(*, name: str = "", phone: str = "", email: str = "") -> Contact:
    name = validation.clean_text(name, field="name", label="The name", max_length=200)
    phone = validation.clean_text(phone, field="phone", label="The phone number", max_length=64)
    schema = connection.schema_name
    phone_key, phone = (
        phones.normalise(phone, region=tenant_phone_region(schema)) if phone else ("", "")
    )
    email = fields.normalise_email(email) if email else ""
    contact = Contact()
    # One INSERT (atomic on its own); the id is reserved first, as the ciphertexts name the row.
    contact.allocate_pk()
    contact.name_ct = _encrypt(contact, "name", name)
    contact.phone_ct = _encrypt(contact, "phone", phone)
    contact.email_ct = _encrypt(contact, "email", email)
    contact.phone_bi = phone_blind_index(phone_key, schema=schema)
    contact.email_bi = (
        fields.blind_index(email, schema=schema, field="contact.email") if email else ""
    )
    contact.save(force_insert=True)
    return contact


def contact_phones_reindex(*, region: str, model: type[Contact] = Contact, batch: int = 500) -> int:
    """Re-normalise every stored phone of the active schema's contacts in ``region``:
    rewrite the ciphertext to the canonical form and recompute the blind index.
    Returns how many rows changed. Idempotent (a second run changes nothing), so a
    crash half-way is finished by running it again.

    ``model`` lets a migration pass its historical model; only ``id``, ``phone_ct``
    and ``phone_bi`` are read or written. Legacy values (``+`` and all digits, from
    the digits-only normaliser) read as international first, then as national in
    ``region`` (``+02079460018`` was ``020 7946 0018``), then with ``00`` as prefix.
    """
    schema = connection.schema_name
    changed = 0
    last = 0
    while True:
        rows = list(
            model.objects.filter(pk__gt=last, phone_ct__isnull=False)
            .order_by("pk")
            .values_list("pk", "phone_ct", "phone_bi")[:batch]
        )
        if not rows:
            return changed
        for pk, ciphertext, old_index in rows:
            last = pk
            stored = fields.decrypt(
                bytes(ciphertext), schema=schema, table=TABLE, column="phone", pk=pk
            ).decode()
            key, display = phones.normalise(stored, region=region)
            index = phone_blind_index(key, schema=schema)
            if index == old_index and display == stored:
                continue
            values = {"phone_bi": index, "phone_ct": None}
            if display:
                values["phone_ct"] = fields.encrypt(
                    display, schema=schema, table=TABLE, column="phone", pk=pk
                )
            model.objects.filter(pk=pk).update(**values)
            changed += 1


def tenant_phone_region_set(*, tenant: Tenant, region: str, actor: Actor) -> int:
    """Change ``tenant``'s phone region and re-index its contacts in one transaction
    (both schemas live in one database): a lookup never sees a region its indexes
    were not computed for. Audited on both chains. Returns the rows re-indexed."""
    region = region.strip().upper() if isinstance(region, str) else ""
    validate_phone_region(region)
    with transaction.atomic():
        with schema_context(PUBLIC_SCHEMA):
            row = Tenant.objects.select_for_update().get(pk=tenant.pk)
            previous = row.phone_region
            Tenant.objects.filter(pk=row.pk).update(phone_region=region)
            record(
                "tenant.phone_region_changed",
                target_type="tenant",
                target_id=row.pk,
                details={"from": previous, "to": region},
                actor=actor,
            )
        with tenant_context(row):
            changed = contact_phones_reindex(region=region)
            record(
                "contact.phones_reindexed",
                target_type="contact",
                details={"region": region, "changed": changed},
                actor=actor,
            )
    return changed


def contact_pii(contact: Contact) -> dict[str, str]:
    """Decrypt one contact's fields (for a view that may show them)."""
    out = {}
    for column in PII:
        ciphertext = getattr(contact, f"{column}_ct")
        out[column] = (
            fields.decrypt(
                ciphertext, schema=connection.schema_name, table=TABLE, column=column, pk=contact.pk
            ).decode()
            if ciphertext
            else ""
        )
    return out


# --- conversations and messages ---------------------------------------------------------------
#
# Every state change goes through a function here. Each takes the acting user
# (``by``; None for the channel and system), checks the policy table and that
# the user may see the conversation (404 otherwise, like the access helpers),
# records an audit event in the same transaction, and never logs a body.


MAX_BODY = 4096
MAX_ATTACHMENTS = 10


def body_encrypt(message: Message, body: str) -> bytes | None:
    if not body:
        return None
    return fields.encrypt(
        body, schema=connection.schema_name, table=MESSAGE_TABLE, column="body", pk=message.pk
    )


def _clean_body(body: str) -> str:
    return validation.clean_text(body, field="body", label="The body", max_length=MAX_BODY)


def _clean_attachments(attachments) -> list[dict]:

    attachments = list(attachments or [])
    if len(attachments) > MAX_ATTACHMENTS:
        raise ValidationError({"attachments": f"At most {MAX_ATTACHMENTS} attachments."})
    out = []
    for item in attachments:
        if not isinstance(item, dict):
            raise ValidationError({"attachments": "Each attachment is an object."})
        url, kind, size = item.get("url"), item.get("type", ""), item.get("size", 0)
        # Both end up in a jsonb column: no NUL, no lone surrogate (validation.clean_text).
        url = validation.clean_text(
            url, field="attachments", label="An attachment link", max_length=1000, required=True
        )
        if urlsplit(url).scheme != "https":
            raise ValidationError({"attachments": "Attachment links must be https URLs."})
        kind = validation.clean_text(
            kind, field="attachments", label="An attachment type", max_length=100
        )
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 100 * 2**20:
            raise ValidationError({"attachments": "Attachment size is bytes, at most 100 MiB."})
        out.append({"url": url, "type": kind, "size": size})
    return out


def _message_build(conversation, *, body, pk: int | None = None, **values) -> Message:
    """A message, not yet saved, its body encrypted (its id reserved first, or
    ``pk`` already reserved: the body's ciphertext names the row)."""
    message = Message(
        conversation=conversation,
        inbox_id_denorm=conversation.inbox_id,
        created_at=values.pop("created_at", None) or timezone.now(),
        **values,
    )
    message.pk = pk or fields.reserve_ids(MESSAGE_TABLE)[0]
    message.body_ct = body_encrypt(message, body)
    return message


def _message(conversation, *, body, pk: int | None = None, **values) -> Message:
    """Insert a message (see :func:`_message_build`)."""
    message = _message_build(conversation, body=body, pk=pk, **values)
    message.save(force_insert=True)
    return message


def _visible(by, conversation_id) -> Conversation:

    return conversation_get_for_user(by, conversation_id, for_update=True)


def _require(by, perm=Perm.INBOX_USE) -> None:
    if not user_has(by, perm):
        raise PermissionDenied
    if getattr(by, "is_break_glass", False):
        raise PermissionDenied("Break-glass access is read-only.")


def _audit(action: str, conversation: Conversation, **details) -> None:
    record(action, target_type="conversation", target_id=conversation.pk, details=details or None)


# --- inbound ----------------------------------------------------------------------------------


def within_business_hours(inbox: Inbox, at: _dt.datetime | None = None) -> bool:
    """True when ``inbox`` is open at ``at`` (always, without business hours)."""
    hours = inbox.business_hours or {}
    if not hours:
        return True
    try:
        local = (at or timezone.now()).astimezone(ZoneInfo(inbox.timezone or "UTC"))
    except Exception:  # noqa: BLE001 - an unknown zone counts as UTC
        local = (at or timezone.now()).astimezone(_dt.UTC)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    now = local.strftime("%H:%M")
    return any(start <= now < end for start, end in hours.get(day, []))


def message_receive(
    *,
    inbox: Inbox,
    contact_external_id: str,
    contact_name: str = "",
    body: str = "",
    attachments=(),
    external_id: str = "",
    at: _dt.datetime | None = None,
) -> tuple[Message, bool]:
    """An incoming message from the inbox's channel: ``(message, created)``.

    Idempotent on ``external_id`` per channel: a repeated delivery returns the
    message stored the first time (``created`` False) and changes nothing.
    """
    body = _clean_body(body)
    attachments = _clean_attachments(attachments)
    contact_external_id = validation.clean_text(
        contact_external_id,
        field="contact",
        label="The sender's id on the channel",
        max_length=128,
        required=True,
    )
    contact_name = validation.clean_text(
        contact_name, field="contact", label="The sender's name", max_length=200
    )
    external_id = validation.clean_text(
        external_id, field="external_id", label="The message id", max_length=128
    )
    if not body and not attachments:
        raise ValidationError({"body": "A message needs text or an attachment."})
    if external_id:
        existing = _message_by_external_id(inbox.pk, external_id)
        if existing is not None:
            return existing, False
    now = timezone.now()
    try:
        with transaction.atomic():
            contact_id, new_contact = _sender_contact(inbox, contact_external_id, contact_name)
            # A contact created just now has no conversation yet: nothing to look up.
            conversation = None if new_contact else _conversation_touch(inbox.pk, contact_id, now)
            created_conversation = conversation is None
            if created_conversation:
                # Born as the message leaves it: open, one unread, active now.
                conversation = _conversation_insert(inbox.pk, contact_id, now)
                record(
                    "conversation.created",
                    actor=SYSTEM,
                    target_type="conversation",
                    target_id=conversation.pk,
                    details={"inbox": inbox.pk},
                )
            auto_reply = (
                created_conversation
                and inbox.auto_reply
                and not within_business_hours(inbox, now)
                and not events.auto_reply_vetoed(inbox.pk)
            )
            # One round trip for both ids, one INSERT for both rows, when the
            # auto-reply goes out too.
            ids = fields.reserve_ids(MESSAGE_TABLE, 2 if auto_reply else 1)
            message = _message_build(
                conversation,
                body=body,
                direction=Message.Direction.IN,
                sender=Message.Sender.CONTACT,
                attachments=attachments,
                external_id=external_id,
                created_at=at or now,
                pk=ids[0],
            )
            stored = [message]
            if auto_reply:
                stored.append(
                    _message_build(
                        conversation,
                        body=inbox.auto_reply,
                        direction=Message.Direction.OUT,
                        sender=Message.Sender.SYSTEM,
                        delivery=Message.Delivery.QUEUED,
                        pk=ids[1],
                    )
                )
            Message.objects.bulk_create(stored)
            if created_conversation and inbox.assignment == Inbox.Assignment.ROUND_ROBIN:
                assign_round_robin(conversation)
            if auto_reply:
                _enqueue_delivery(stored[1])
            events.announce(
                events.message_received,
                "message_received",
                message_id=message.pk,
                conversation_id=conversation.pk,
                inbox_id=inbox.pk,
            )
    except IntegrityError:
        # Two deliveries of one event raced; the other one stored it.
        existing = _message_by_external_id(inbox.pk, external_id) if external_id else None
        if existing is None:
            raise
        return existing, False
    return message, True


# The statements of message_receive, written out: it runs for every message a
# channel delivers, and Django's query compiler cost more CPU than PostgreSQL did.


def _message_by_external_id(inbox_id: int, external_id: str) -> Message | None:
    """The message already stored under the channel's id for it (a redelivery), or None."""
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {table} WHERE inbox_id_denorm = %s AND external_id = %s "  # noqa: S608
            "ORDER BY id LIMIT 1",
            [inbox_id, external_id],
        )
        row = cursor.fetchone()
    return None if row is None else Message.objects.get(pk=row[0])


def _sender_contact(inbox: Inbox, external_id: str, name: str) -> tuple[int, bool]:
    """(the sender's contact id, whether it was created now). Two first messages of
    one sender at once share one contact: the identity's unique key decides, and the
    loser's contact row is removed again (no savepoint on the common path)."""
    table = connection.ops.quote_name(ContactIdentity._meta.db_table)
    known = f"SELECT contact_id FROM {table} WHERE channel_id = %s AND external_id = %s"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(known, [inbox.channel_id, external_id])
        row = cursor.fetchone()
        if row is not None:
            return row[0], False
        contact = contact_create(name=name[:200])
        cursor.execute(
            f"INSERT INTO {table} (contact_id, channel_id, external_id) "  # noqa: S608
            "VALUES (%s, %s, %s) ON CONFLICT (channel_id, external_id) DO NOTHING "
            "RETURNING contact_id",
            [contact.pk, inbox.channel_id, external_id],
        )
        if cursor.fetchone() is not None:
            return contact.pk, True
        # Another first message of this sender committed its identity meanwhile.
        Contact.objects.filter(pk=contact.pk).delete()
        cursor.execute(known, [inbox.channel_id, external_id])
        return cursor.fetchone()[0], False


@functools.cache
def _conversation_sql() -> tuple[str, str, tuple[str, ...]]:
    """The reopening UPDATE and the INSERT of a conversation, each RETURNING its row."""
    names = rows.all_fields(Conversation)
    table = connection.ops.quote_name(Conversation._meta.db_table)
    returning = f" RETURNING {rows.columns(Conversation, names)}"
    touch = (
        f"UPDATE {table} SET unread = unread + 1, last_activity_at = %(now)s, "  # noqa: S608
        "status = %(open)s, snoozed_until = NULL "
        f"WHERE id = (SELECT id FROM {table} WHERE inbox_id = %(inbox)s "
        "AND contact_id = %(contact)s AND status <> %(resolved)s "
        "ORDER BY id DESC LIMIT 1 FOR UPDATE)"
    )
    insert = (
        f"INSERT INTO {table} (inbox_id, contact_id, status, unread, last_activity_at, "  # noqa: S608
        "created_at, labels, priority, handler) VALUES "
        "(%(inbox)s, %(contact)s, %(open)s, 1, %(now)s, %(now)s, '{}', %(priority)s, %(handler)s)"
    )
    return touch + returning, insert + returning, names


def _conversation_row(sql: str, inbox_id: int, contact_id: int, now) -> Conversation | None:
    params = {
        "inbox": inbox_id,
        "contact": contact_id,
        "now": now,
        "open": Conversation.Status.OPEN,
        "resolved": Conversation.Status.RESOLVED,
        "priority": Conversation.Priority.NONE,
        "handler": Conversation.Handler.HUMAN,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else rows.from_row(Conversation, _conversation_sql()[2], row)


def _conversation_touch(inbox_id: int, contact_id: int, now) -> Conversation | None:
    """The contact's conversation in the inbox that is not resolved, reopened for the
    new message (open, one more unread, active now) in one statement under its row
    lock; None when there is none (a concurrent resolve is seen: the lock's recheck)."""
    return _conversation_row(_conversation_sql()[0], inbox_id, contact_id, now)


def _conversation_insert(inbox_id: int, contact_id: int, now) -> Conversation:
    """A new conversation for the message: open, one unread, active now; the model's
    defaults for the rest (no assignee, no labels, no priority, a human handles it)."""
    return _conversation_row(_conversation_sql()[1], inbox_id, contact_id, now)


def _enqueue_delivery(message: Message) -> None:
    """After commit, announce ``reply_queued``: the channel layer subscribes and sends it."""
    kwargs = {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "inbox_id": message.inbox_id_denorm,
        "schema": connection.schema_name,
    }

    def announce_reply_queued():
        events.send_now(events.reply_queued, "reply_queued", kwargs)

    transaction.on_commit(announce_reply_queued)


def assign_round_robin(conversation: Conversation):
    """Give the conversation to the next online member of its inbox, in turn."""

    inbox = Inbox.objects.select_for_update().get(pk=conversation.inbox_id)
    members = [u for u in inbox_members(inbox) if u.is_active and user_has(u, Perm.INBOX_USE)]
    online = set(presence.online_ids([u.pk for u in members]))
    candidates = sorted((u for u in members if u.pk in online), key=lambda u: u.pk)
    if not candidates:
        return None
    after = [u for u in candidates if inbox.rr_last_user_id is None or u.pk > inbox.rr_last_user_id]
    chosen = (after or candidates)[0]
    Inbox.objects.filter(pk=inbox.pk).update(rr_last_user_id=chosen.pk)
    Conversation.objects.filter(pk=conversation.pk).update(assignee=chosen)
    conversation.assignee = chosen
    record(
        "conversation.assigned",
        actor=SYSTEM,
        target_type="conversation",
        target_id=conversation.pk,
        details={"assignee": chosen.get_username(), "by": "round-robin"},
    )
    return chosen


_DELIVERY_ORDER = ("queued", "sent", "delivered", "read")
DELIVERY_LOG_MAX = 20  # send attempts kept per message (5 counted, plus refusals held back)
_LOG_KEYS = {"attempt": int, "at": str, "status": int, "error": str, "ms": int, "network": bool}


def _log_entry_clean(entry: dict) -> dict:
    """Only the known keys of the known types, strings cut at 64: the log can never
    carry a body or a secret."""
    clean: dict = {}
    for key, kind in _LOG_KEYS.items():
        value = entry.get(key)
        if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
            clean[key] = value[:64] if isinstance(value, str) else value
        else:
            clean[key] = None
    return clean


def _log_append_sql() -> str:
    """SQL for ``delivery_log`` with a JSON array (the first parameter) appended, the
    oldest entries dropped beyond the second (``DELIVERY_LOG_MAX``): in the UPDATE itself, so the
    append is one statement under the row's lock (no read-modify-write)."""
    return (
        "delivery_log = (SELECT COALESCE(jsonb_agg(kept.e ORDER BY kept.n), '[]'::jsonb) "
        "FROM (SELECT t.e, t.n FROM jsonb_array_elements("
        "CASE WHEN jsonb_typeof(delivery_log) = 'array' THEN delivery_log ELSE '[]'::jsonb END"
        " || %s::jsonb) WITH ORDINALITY AS t(e, n) ORDER BY t.n DESC LIMIT %s)"
        " AS kept)"
    )


def message_delivery_update(
    *,
    message: Message,
    status: str,
    error: str = "",
    external_id: str = "",
    log: tuple[dict, ...] | list[dict] = (),
) -> Message:
    """The channel's word on an outbound message (sent, delivered, read, failed).

    ``external_id`` is the channel's id of the sent message (its status
    updates name it); announced as ``delivery_updated`` when anything changed.
    ``log``: send attempts to append to ``delivery_log`` in the same statement
    (see :func:`message_delivery_log`; the channel layer's ``sent``).

    A status only moves forward (queued → sent → delivered → read; ``failed`` from
    anywhere). The usual case, a status that moves the message forward, is one
    conditional UPDATE; anything else (a late or repeated status, an id that is not
    an outgoing message) takes the locked read below.
    """
    if status not in (*_DELIVERY_ORDER, "failed"):
        raise ValidationError({"status": "Unknown delivery status."})
    entries = [_log_entry_clean(entry) for entry in log]
    # The statuses a message must not be at for ``status`` to move it forward.
    ahead = () if status == "failed" else _DELIVERY_ORDER[_DELIVERY_ORDER.index(status) :]
    table = connection.ops.quote_name(Message._meta.db_table)
    sets = [
        "delivery = %s",
        "delivery_error = %s",
        "external_id = CASE WHEN external_id = '' THEN %s ELSE external_id END",
    ]
    params: list = [status, error[:300] if status == "failed" else "", external_id[:128]]
    if status != "failed":
        sets.append("delivery_next_at = NULL")
    if entries:
        sets.append(_log_append_sql())
        params += [json.dumps(entries), DELIVERY_LOG_MAX]
    where = "id = %s AND direction = %s"
    params += [message.pk, Message.Direction.OUT]
    if ahead:
        where += f" AND delivery NOT IN ({', '.join(['%s'] * len(ahead))})"
        params += list(ahead)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {', '.join(sets)} WHERE {where} "  # noqa: S608 - names from _meta
            "RETURNING conversation_id, inbox_id_denorm, external_id",
            params,
        )
        row = cursor.fetchone()
    if row is not None:
        message.conversation_id, message.inbox_id_denorm, message.external_id = row
        message.delivery = status
        message.delivery_error = error[:300] if status == "failed" else ""
        if status != "failed":
            message.delivery_next_at = None
        events.announce(
            events.delivery_updated,
            "delivery_updated",
            message_id=message.pk,
            conversation_id=message.conversation_id,
            inbox_id=message.inbox_id_denorm,
            delivery=status,
        )
        return message
    with transaction.atomic():
        message = Message.objects.select_for_update().get(pk=message.pk)
        if message.direction != Message.Direction.OUT:
            raise ValidationError({"status": "Only outgoing messages have a delivery status."})
        # Not moved forward (the UPDATE above found it at or past ``status``): only
        # the channel's id, if it had none, and the attempts are kept.
        update = []
        if external_id and not message.external_id:
            message.external_id = external_id[:128]
            update.append("external_id")
        if entries:
            message.delivery_log = [
                *(message.delivery_log if isinstance(message.delivery_log, list) else []),
                *entries,
            ][-DELIVERY_LOG_MAX:]
            update.append("delivery_log")
        if update:
            message.save(update_fields=update)
    return message


def message_delivery_retry(*, message: Message, error: str, next_at: _dt.datetime) -> None:
    """An attempt failed in a way another may fix: keep its error and the next try's time."""
    Message.objects.filter(pk=message.pk, direction=Message.Direction.OUT).update(
        delivery_error=error[:300], delivery_next_at=next_at
    )


def message_delivery_log(*, message_id: int, entry: dict) -> None:
    """Append one send attempt to the message's ``delivery_log`` (the oldest dropped
    beyond ``DELIVERY_LOG_MAX``). Only the known keys of the known types are kept,
    strings cut at 64: the log can never carry a body or a secret. One UPDATE: the
    append happens in the statement, under the row's lock."""
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {_log_append_sql()} "  # noqa: S608 - names from _meta
            "WHERE id = %s AND direction = %s",
            [
                json.dumps([_log_entry_clean(entry)]),
                DELIVERY_LOG_MAX,
                message_id,
                Message.Direction.OUT,
            ],
        )


# WhatsApp template names are lower-case letters, digits and underscores (at most
# 512); languages are codes like "en", "en_US", "fil". Anything else is refused.
_TEMPLATE_NAME = re.compile(r"[a-z0-9_]{1,512}", re.ASCII)
_TEMPLATE_LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Z]{2})?", re.ASCII)


def template_name_clean(value) -> str:
    if not isinstance(value, str) or not _TEMPLATE_NAME.fullmatch(value):
        raise ValueError("A template name is 1-512 of a-z, 0-9 and _.")
    return value


def template_language_clean(value) -> str:
    if not isinstance(value, str) or not _TEMPLATE_LANGUAGE.fullmatch(value):
        raise ValueError('A template language is a code like "en" or "en_US".')
    return value


def template_send(*, by, conversation_id: int, name: str, language: str) -> Message:
    """Queue a pre-approved template as the reply (the only message a channel like
    WhatsApp accepts once the customer's 24-hour window is closed). The thread shows
    which template went; the channel layer sends it by name and language."""
    _require(by)
    try:
        name, language = template_name_clean(name), template_language_clean(language)
    except ValueError as exc:
        raise ValidationError({"template": str(exc)}) from None
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        message = _message(
            conversation,
            body=f"Template message: {name} ({language})",
            direction=Message.Direction.OUT,
            sender=Message.Sender.AGENT,
            sender_user=by,
            delivery=Message.Delivery.QUEUED,
            template={"name": name, "language": language},
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            last_activity_at=timezone.now(), handler=Conversation.Handler.HUMAN
        )
        _audit(
            "conversation.template_sent",
            conversation,
            message=message.pk,
            template=name,
            language=language,
        )
        _enqueue_delivery(message)
    return message


# --- agent actions --------------------------------------------------------------------------


def reply_send(*, by, conversation_id, body: str, attachments=()) -> Message:
    _require(by)
    body = _clean_body(body)
    attachments = _clean_attachments(attachments)
    if not body and not attachments:
        raise ValidationError({"body": "Write a reply first."})
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        message = _message(
            conversation,
            body=body,
            direction=Message.Direction.OUT,
            sender=Message.Sender.AGENT,
            sender_user=by,
            attachments=attachments,
            delivery=Message.Delivery.QUEUED,
        )
        Conversation.objects.filter(pk=conversation.pk).update(
            last_activity_at=timezone.now(), unread=0, handler=Conversation.Handler.HUMAN
        )
        _audit("conversation.replied", conversation, message=message.pk)
        _enqueue_delivery(message)
        if conversation.handler == Conversation.Handler.BOT:
            _announce_taken_over(conversation)
    return message


def note_add(*, by, conversation_id, body: str) -> Message:
    _require(by)
    body = _clean_body(body)
    if not body:
        raise ValidationError({"body": "Write the note first."})
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        note = _message(
            conversation,
            body=body,
            kind=Message.Kind.NOTE,
            direction=Message.Direction.OUT,
            sender=Message.Sender.AGENT,
            sender_user=by,
        )
        _audit("conversation.note_added", conversation, message=note.pk)
    return note


def assign(*, by, conversation_id, assignee) -> Conversation:
    """Assign (or with ``assignee=None`` unassign) a conversation."""

    _require(by)
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        if assignee is not None and (
            not assignee.is_active
            or not inbox_list_for_user(assignee).filter(pk=conversation.inbox_id).exists()
        ):
            raise ValidationError({"assignee": "Assign to someone who works this inbox."})
        before = conversation.assignee.get_username() if conversation.assignee_id else None
        conversation.assignee = assignee
        conversation.save(update_fields=["assignee"])
        _audit(
            "conversation.assigned" if assignee else "conversation.unassigned",
            conversation,
            before=before,
            assignee=assignee.get_username() if assignee else None,
        )
    return conversation


def _change(by, conversation_id, action: str, details: dict | None = None, **fields):
    """Set ``fields`` on one conversation ``by`` may see (row locked) and audit ``action``."""
    _require(by)
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        for name, value in fields.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=list(fields))
        _audit(action, conversation, **(details or {}))
    return conversation


def _set_status(by, conversation_id, status, *, until=None, action) -> Conversation:
    details = {"until": until.isoformat()} if until else None
    return _change(by, conversation_id, action, details, status=status, snoozed_until=until)


def resolve(*, by, conversation_id) -> Conversation:
    return _set_status(
        by, conversation_id, Conversation.Status.RESOLVED, action="conversation.resolved"
    )


def reopen(*, by, conversation_id) -> Conversation:
    return _set_status(
        by, conversation_id, Conversation.Status.OPEN, action="conversation.reopened"
    )


def snooze(*, by, conversation_id, until: _dt.datetime) -> Conversation:
    if until is None or until <= timezone.now() or until > timezone.now() + _dt.timedelta(days=90):
        raise ValidationError({"until": "Snooze until a time in the next 90 days."})
    return _set_status(
        by, conversation_id, Conversation.Status.SNOOZED, until=until, action="conversation.snoozed"
    )


def snoozed_wake() -> int:
    """Beat: snoozed conversations whose time came are open again."""
    return Conversation.objects.filter(
        status=Conversation.Status.SNOOZED, snoozed_until__lte=timezone.now()
    ).update(status=Conversation.Status.OPEN, snoozed_until=None)


def labels_set(*, by, conversation_id, labels) -> Conversation:
    _require(by)
    clean = sorted(
        {str(label).strip().lower()[:40] for label in labels or [] if str(label).strip()}
    )
    if len(clean) > 20:
        raise ValidationError({"labels": "At most 20 labels."})
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        before = conversation.labels
        conversation.labels = clean
        conversation.save(update_fields=["labels"])
        _audit("conversation.labelled", conversation, before=before, labels=clean)
    return conversation


def priority_set(*, by, conversation_id, priority: int) -> Conversation:
    _require(by)
    if priority not in Conversation.Priority.values:
        raise ValidationError({"priority": "Unknown priority."})
    return _change(
        by, conversation_id, "conversation.prioritised", {"priority": priority}, priority=priority
    )


def takeover(*, by, conversation_id) -> Conversation:
    """A human takes the conversation from the bot (and is its assignee if nobody is)."""
    _require(by)
    with transaction.atomic():
        conversation = _visible(by, conversation_id)
        conversation.handler = Conversation.Handler.HUMAN
        if conversation.assignee_id is None:
            conversation.assignee = by
        conversation.save(update_fields=["handler", "assignee"])
        _audit("conversation.taken_over", conversation)
        _announce_taken_over(conversation)
    return conversation


def _announce_taken_over(conversation: Conversation) -> None:
    events.announce(
        events.taken_over,
        "taken_over",
        conversation_id=conversation.pk,
        inbox_id=conversation.inbox_id,
    )


# --- the bot (bots.engine calls these; conversations never imports bots) -------------------------


def _bot_conversation(conversation_id: int) -> Conversation:
    return Conversation.objects.select_for_update().get(pk=conversation_id)


def bot_start(*, conversation_id: int, flow_id: int, run_id: int) -> Conversation:
    """The bot takes the conversation (``handler`` bot) for a new flow run; audited."""
    with transaction.atomic():
        conversation = _bot_conversation(conversation_id)
        conversation.handler = Conversation.Handler.BOT
        conversation.save(update_fields=["handler"])
        record(
            "conversation.bot_started",
            actor=SYSTEM,
            target_type="conversation",
            target_id=conversation.pk,
            details={"flow": flow_id, "run": run_id},
        )
    return conversation


def bot_reply_send(
    *, conversation_id: int, body: str, attachments=(), run_id: int | None = None
) -> Message:
    """A bot's message to the customer: sender BOT, queued for the channel like an
    agent's reply (``reply_queued`` after commit); audited with ids, never the text."""
    body = _clean_body(body)
    attachments = _clean_attachments(attachments)
    if not body and not attachments:
        raise ValidationError({"body": "A bot message needs text or an attachment."})
    with transaction.atomic():
        conversation = _bot_conversation(conversation_id)
        message = _message(
            conversation,
            body=body,
            direction=Message.Direction.OUT,
            sender=Message.Sender.BOT,
            attachments=attachments,
            delivery=Message.Delivery.QUEUED,
        )
        Conversation.objects.filter(pk=conversation.pk).update(last_activity_at=timezone.now())
        record(
            "conversation.bot_replied",
            actor=SYSTEM,
            target_type="conversation",
            target_id=conversation.pk,
            details={"message": message.pk, "run": run_id},
        )
        _enqueue_delivery(message)
    return message


def bot_handoff(
    *,
    conversation_id: int,
    note: str,
    reason: str,
    inbox_id: int | None = None,
    run_id: int | None = None,
) -> Message:
    """The bot hands the conversation to a person: ``handler`` human, unassigned unless
    someone has it, and a private note for the agents (the flow's note and the reason).
    ``inbox_id``: the team the flow asked for; a conversation never changes channel, so
    it is named in the note and the audit (and assigned round-robin in its own inbox)."""
    reason = validation.clean_text(reason, field="reason", label="The reason", max_length=60)
    note = _clean_body(note)
    with transaction.atomic():
        conversation = _bot_conversation(conversation_id)
        target = None
        if inbox_id is not None and inbox_id != conversation.inbox_id:
            target = Inbox.objects.filter(pk=inbox_id).first()
        conversation.handler = Conversation.Handler.HUMAN
        conversation.save(update_fields=["handler"])
        lines = [note] if note else []
        if target is not None:
            lines.append(f"Asked for: {target.name}")
        lines.append(f"Handed over by the bot ({reason}).")
        message = _message(
            conversation,
            body="\n".join(lines)[:MAX_BODY],
            kind=Message.Kind.NOTE,
            direction=Message.Direction.OUT,
            sender=Message.Sender.BOT,
        )
        if (
            conversation.assignee_id is None
            and conversation.inbox.assignment == Inbox.Assignment.ROUND_ROBIN
        ):
            assign_round_robin(conversation)
        record(
            "bot.handoff",
            actor=SYSTEM,
            target_type="conversation",
            target_id=conversation.pk,
            details={
                "reason": reason,
                "note": message.pk,
                "run": run_id,
                "inbox": target.pk if target is not None else conversation.inbox_id,
            },
        )
    return message


def bot_finish(*, conversation_id: int, run_id: int | None = None) -> Conversation:
    """A flow ran to its end: the conversation goes back to the people (``handler``
    human), without a note: nothing is asked of them; audited."""
    with transaction.atomic():
        conversation = _bot_conversation(conversation_id)
        conversation.handler = Conversation.Handler.HUMAN
        conversation.save(update_fields=["handler"])
        record(
            "conversation.bot_finished",
            actor=SYSTEM,
            target_type="conversation",
            target_id=conversation.pk,
            details={"run": run_id},
        )
    return conversation


def handback(*, by, conversation_id) -> Conversation:
    return _change(
        by, conversation_id, "conversation.handed_to_bot", handler=Conversation.Handler.BOT
    )


def mark_read(*, by, conversation_id, conversation=None) -> None:
    """Clear the unread count (``conversation``: the caller already fetched it for ``by``)."""

    if conversation is None or conversation.pk != int(conversation_id):
        conversation = conversation_get_for_user(by, conversation_id)
    if conversation.unread and not getattr(by, "is_break_glass", False):
        Conversation.objects.filter(pk=conversation.pk).update(unread=0)


def canned_create(*, by, shortcut: str, title: str, body: str) -> CannedResponse:
    _require(by, Perm.INBOXES_MANAGE)
    canned = CannedResponse(shortcut=(shortcut or "").strip().lower(), title=title, body=body)
    canned.full_clean()
    with transaction.atomic():
        canned.save()
        record(
            "canned.created",
            target_type="canned_response",
            target_id=canned.pk,
            details={"shortcut": canned.shortcut},
        )
    return canned


CONTACT_SEARCH_LIMIT = 20


def contact_search(*, by, query: str) -> list:
    """Exact lookup by phone or e-mail (blind index), at most 20 rows, audited."""

    _require(by)
    query = (query or "").strip()[:254]
    kind = "email" if "@" in query else "phone"
    found = contact_find_by_email(query) if kind == "email" else contact_find_by_phone(query)
    results = [found] if found is not None else []
    record(
        "contact.searched",
        target_type="contact",
        details={"by": kind, "results": len(results)},
    )
    return results[:CONTACT_SEARCH_LIMIT]
