from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet, Sum

from conversations.access import conversation_list_for_user
from conversations.models import Contact, Conversation, Message
from parley import phones
from parley.keyring import fields
from tenants.selectors import tenant_phone_region

MESSAGE_TABLE = "conversations_message"


def body_of(message: Message) -> str:
    """A message's text, decrypted for the reader who already holds the message."""
    if not message.body_ct:
        return ""
    return fields.decrypt(
        bytes(message.body_ct),
        schema=connection.schema_name,
        table=MESSAGE_TABLE,
        column="body",
        pk=message.pk,
    ).decode()


def contact_find_by_phone(phone: str) -> Contact | None:
    """Equality lookup through the blind index: nothing is decrypted."""
    schema = connection.schema_name
    key, _display = phones.normalise(phone, region=tenant_phone_region(schema))
    if not key:
        return None
    digest = fields.blind_index(key, schema=schema, field="contact.phone")
    return Contact.objects.filter(phone_bi=digest).first()


def contact_find_by_email(email: str) -> Contact | None:
    normalised = fields.normalise_email(email)
    if not normalised:
        return None
    digest = fields.blind_index(normalised, schema=connection.schema_name, field="contact.email")
    return Contact.objects.filter(email_bi=digest).first()


# --- the agent inbox ------------------------------------------------------------------------


PAGE_SIZE = 25
MAX_PAGE_SIZE = 100
FILTERS = ("mine", "unassigned", "all")


@dataclass(frozen=True)
class ConversationFilter:
    scope: str = "all"  # mine | unassigned | all (all I can see)
    status: str = "open"  # a status, or "any"
    inbox: int | None = None
    label: str = ""


def encode_cursor(conversation: Conversation) -> str:
    raw = f"{conversation.last_activity_at.isoformat()}|{conversation.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[_dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, pk = raw.split("|")
        return _dt.datetime.fromisoformat(at), int(pk)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValidationError({"cursor": "Invalid cursor."}) from exc


def conversation_page(
    user, flt: ConversationFilter, *, cursor: str = "", size: int = PAGE_SIZE
) -> tuple[list[Conversation], str | None]:
    """One keyset page of the conversations the user may see, newest activity first.

    A fixed number of queries whatever the page holds: the page itself (with
    inbox, contact and assignee joined) and nothing per row.
    """

    size = max(1, min(int(size), MAX_PAGE_SIZE))
    qs: QuerySet = conversation_list_for_user(user)
    if flt.scope == "mine":
        qs = qs.filter(assignee_id=user.pk)
    elif flt.scope == "unassigned":
        qs = qs.filter(assignee__isnull=True)
    if flt.status != "any":
        qs = qs.filter(status=flt.status)
    if flt.inbox:
        qs = qs.filter(inbox_id=flt.inbox)
    if flt.label:
        qs = qs.filter(labels__contains=[flt.label])
    if cursor:
        at, pk = decode_cursor(cursor)
        # The first filter bounds the index scan; the second breaks ties.
        qs = qs.filter(last_activity_at__lte=at).filter(
            Q(last_activity_at__lt=at) | Q(last_activity_at=at, pk__lt=pk)
        )
    rows = list(
        qs.select_related("inbox", "contact", "assignee").order_by("-last_activity_at", "-id")[
            : size + 1
        ]
    )
    more = len(rows) > size
    rows = rows[:size]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def unread_by_inbox(user) -> dict[int, int]:
    """Unread messages per inbox the user may see (one query)."""

    rows = (
        conversation_list_for_user(user)
        .exclude(status=Conversation.Status.RESOLVED)
        .filter(unread__gt=0)
        .values("inbox_id")
        .annotate(n=Sum("unread"))
    )
    return {r["inbox_id"]: r["n"] for r in rows}


THREAD_LIMIT = 200


def thread_messages(
    conversation: Conversation, *, after: int = 0, limit: int = 50
) -> list[Message]:
    """Messages and notes of one conversation, oldest first (the last ``limit``, or those after ``after``)."""
    limit = max(1, min(int(limit), THREAD_LIMIT))
    qs = Message.objects.filter(conversation=conversation).select_related("sender_user")
    if after:
        return list(qs.filter(pk__gt=after).order_by("id")[:limit])
    return list(reversed(qs.order_by("-id")[:limit]))


PREVIEW_CHARS = 90


def last_message_previews(conversations) -> dict[int, str]:
    """The start of each conversation's latest message, for the inbox list.

    One query for the page (PostgreSQL ``DISTINCT ON``), then one decryption per
    row; the caller already holds only conversations this user may read.
    """
    ids = [c.pk for c in conversations]
    if not ids:
        return {}
    latest = (
        Message.objects.filter(conversation_id__in=ids)
        .order_by("conversation_id", "-id")
        .distinct("conversation_id")
    )
    previews = {}
    for message in latest:
        text = " ".join(body_of(message).split())
        if message.kind == Message.Kind.NOTE:
            text = f"Note: {text}"
        elif message.direction == Message.Direction.OUT:
            text = f"Reply: {text}"
        previews[message.conversation_id] = (
            text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
        )
    return previews
