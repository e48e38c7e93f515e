"""Web chat: channels, visitor tokens, and a visitor's messages in and out.

A visitor is a random id Parley makes when the widget opens a session. The
visitor holds it only inside a token Parley signs (``django.core.signing``
under ``SECRET_KEY``, salted with the tenant's schema, the channel's public id
and the channel's token epoch), so a token from one tenant or channel never
verifies at another, and it expires after ``PARLEY_WEBCHAT_TOKEN_SECONDS``.
The visitor's contact is the ``ContactIdentity`` ``web:<visitor>`` on the
channel; a visitor reads the messages (never the private notes) of that
contact's conversations in the channel's inbox, nothing else.

Replies are not pushed anywhere: the visitor's poll fetches them and marks
them delivered (``visitor_messages``); the widget reports what it has shown
(``visitor_read``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction

from accounts.policy import Perm, user_has
from audit.services import record
from connectors.health import channel_event_seen, channel_health_ok
from connectors.models import Channel
from connectors.webchat.adapter import KIND
from conversations.access import inbox_create, inbox_member_add
from conversations.models import ContactIdentity, Inbox, Message
from conversations.services import body_of, message_delivery_update, message_receive
from parley import validation

MAX_TEXT = 2000  # characters per visitor message (the inbox takes 4096; a widget needs less)
MAX_ORIGINS = 20
PAGE = 100  # messages per poll answer at most
IDENTITY_PREFIX = "web:"
_VISITOR = re.compile(r"[A-Za-z0-9_-]{22}")
# scheme://host[:port], nothing else: no path, query, user info or wildcard.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)(?::(?P<port>[0-9]{1,5}))?"
)


class TokenError(Exception):
    """A refused visitor token; ``code`` is the stable API code (answered with 401)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Visitor:
    channel: Channel
    visitor_id: str

    @property
    def external_id(self) -> str:
        return IDENTITY_PREFIX + self.visitor_id


# --- configuration ------------------------------------------------------------------------------


def origin_clean(value: str) -> str:
    """``https://shop.example.com[:port]`` (``http://`` outside production), lower-cased."""
    if not isinstance(value, str):
        raise ValidationError({"allowed_origins": "Origins are text."})
    origin = value.strip().lower().rstrip("/")
    match = _ORIGIN.fullmatch(origin) if len(origin) <= 300 else None
    port = match and match.group("port")
    if match is None or (port is not None and not 1 <= int(port) <= 65535):
        raise ValidationError(
            {"allowed_origins": f"{value[:80]!r} is not an origin like https://shop.example.com."}
        )
    if settings.PRODUCTION and match.group("scheme") != "https":
        raise ValidationError({"allowed_origins": "Use https:// origins."})
    return origin


def origins_clean(values) -> list[str]:
    """A list of origins (or text with one per line or comma-separated), deduplicated."""
    if isinstance(values, str):
        values = [v for v in re.split(r"[\s,]+", values) if v]
    if not isinstance(values, list | tuple):
        raise ValidationError({"allowed_origins": "Give a list of origins."})
    if len(values) > MAX_ORIGINS:
        raise ValidationError({"allowed_origins": f"At most {MAX_ORIGINS} origins."})
    cleaned: list[str] = []
    for value in values:
        origin = origin_clean(value)
        if origin not in cleaned:
            cleaned.append(origin)
    return cleaned


_EPOCH = re.compile(r"[0-9a-f]{16}")


def webchat_settings_clean(values: dict) -> dict:
    """The kind's settings validator (``connectors.channels.SETTINGS_CLEANERS``):
    ``allowed_origins`` (at least one) and ``token_epoch`` (16 hex digits; a new
    one when absent, which invalidates every visitor token of the channel)."""
    origins = origins_clean(values.get("allowed_origins", []))
    if not origins:
        raise ValidationError({"allowed_origins": "Name at least one site that embeds the widget."})
    epoch = values.get("token_epoch")
    if epoch in (None, ""):
        epoch = secrets.token_hex(8)
    elif not isinstance(epoch, str) or not _EPOCH.fullmatch(epoch):
        raise ValidationError({"token_epoch": "16 lower-case hex digits."})
    return {"allowed_origins": origins, "token_epoch": epoch}


def allowed_origins_of(channel: Channel) -> list[str]:
    """The channel's configured origins, re-validated (a hand-edited row fails closed)."""
    stored = (channel.settings or {}).get("allowed_origins") or []
    try:
        return origins_clean(list(stored))
    except (ValidationError, TypeError):
        return []


def _require(by) -> None:
    if not user_has(by, Perm.CONNECTORS_MANAGE):
        raise PermissionDenied
    if getattr(by, "is_break_glass", False):
        raise PermissionDenied("Break-glass access is read-only.")


def webchat_channel_create(
    *, by, name: str, allowed_origins: list[str] | str, inbox_id: int | None = None
) -> Channel:
    """A web chat channel bound to ``inbox_id`` (an inbox without a channel), audited.

    ``inbox_id`` None creates an inbox of the channel's name (``inboxes.manage``).
    """
    _require(by)
    name = validation.clean_text(name, field="name", label="The name", max_length=80, required=True)
    channel_settings = webchat_settings_clean({"allowed_origins": allowed_origins})
    origins = channel_settings["allowed_origins"]
    if inbox_id is None and not user_has(by, Perm.INBOXES_MANAGE):
        raise ValidationError(
            {"inbox": "Pick an existing inbox: only owners and admins create inboxes."}
        )
    try:
        with transaction.atomic():
            if Channel.objects.filter(name__iexact=name).exists():
                raise ValidationError({"name": "A channel with this name exists."})
            if inbox_id is None:
                inbox = inbox_create(by=by, name=name)
            else:
                inbox = Inbox.objects.select_for_update().filter(pk=inbox_id).first()
            if inbox is None:
                raise ValidationError({"inbox": "No such inbox."})
            if inbox.channel_id is not None:
                raise ValidationError({"inbox": "This inbox already has a channel."})
            channel = Channel.objects.create(
                name=name,
                kind=KIND,
                public_id=secrets.token_urlsafe(16),
                settings=channel_settings,
            )
            Inbox.objects.filter(pk=inbox.pk).update(channel=channel)
            record(
                "channel.created",
                target_type="channel",
                target_id=channel.pk,
                details={
                    "name": name,
                    "kind": KIND,
                    "public_id": channel.public_id,
                    "inbox": inbox.pk,
                    "allowed_origins": origins,
                },
            )
    except IntegrityError:
        raise ValidationError({"name": "This name or inbox was just taken; try again."}) from None
    return channel


def webchat_origins_set(*, by, channel: Channel, allowed_origins: list[str] | str) -> Channel:
    """Replace the sites that may embed the chat (CORS and ``frame-ancestors`` follow at once)."""
    _require(by)
    with transaction.atomic():
        channel = Channel.objects.select_for_update().get(pk=channel.pk, kind=KIND)
        before = allowed_origins_of(channel)
        cleaned = webchat_settings_clean(
            {**(channel.settings or {}), "allowed_origins": allowed_origins}
        )
        origins = cleaned["allowed_origins"]
        if before != origins:
            channel.settings = cleaned
            channel.save(update_fields=["settings"])
            record(
                "channel.origins_changed",
                target_type="channel",
                target_id=channel.pk,
                details={"name": channel.name, "before": before, "after": origins},
            )
    return channel


WIDGET_PATH = "/static/webchat/widget.js"  # a fixed address: host pages embed it


def widget_snippet(channel: Channel, request) -> str:
    """The script tag a site embeds, on the scheme and host the request came to."""
    return (
        f'<script src="{request.scheme}://{request.get_host()}{WIDGET_PATH}" '
        f'data-parley-channel="{channel.public_id}" async></script>'
    )


def channel_for_visitor(*, public_id: str) -> Channel | None:
    """The enabled web chat channel behind a widget URL, in the request's tenant."""
    if not isinstance(public_id, str) or not 1 <= len(public_id) <= 32:
        return None
    return (
        Channel.objects.select_related("inbox")
        .filter(public_id=public_id, kind=KIND, enabled=True)
        .first()
    )


# --- tokens -------------------------------------------------------------------------------------


def _salt(channel: Channel) -> str:
    epoch = str((channel.settings or {}).get("token_epoch", ""))
    return f"parley.webchat.v1:{connection.schema_name}:{channel.public_id}:{epoch}"


def token_issue(*, channel: Channel, visitor_id: str | None = None) -> tuple[str, Visitor]:
    """A signed token for a new visitor (or for ``visitor_id``, a refresh)."""
    visitor_id = visitor_id or secrets.token_urlsafe(16)
    payload = {"t": connection.schema_name, "c": channel.public_id, "v": visitor_id}
    token = signing.dumps(payload, salt=_salt(channel), compress=False)
    return token, Visitor(channel=channel, visitor_id=visitor_id)


def token_verify(*, channel: Channel, token: str) -> Visitor:
    """The visitor a token names, or :class:`TokenError` (missing, invalid, expired)."""
    if not token:
        raise TokenError("token_missing", "Send the visitor token: Authorization: Bearer <token>.")
    if not isinstance(token, str) or len(token) > 512 or not token.isascii():
        raise TokenError("token_invalid", "The visitor token is not valid here.")
    try:
        payload = signing.loads(
            token, salt=_salt(channel), max_age=settings.PARLEY_WEBCHAT_TOKEN_SECONDS
        )
    except signing.SignatureExpired:
        raise TokenError(
            "token_expired", "The visitor token has expired; start a new session."
        ) from None
    except (signing.BadSignature, ValueError, UnicodeDecodeError):
        raise TokenError("token_invalid", "The visitor token is not valid here.") from None
    if (
        not isinstance(payload, dict)
        or payload.get("t") != connection.schema_name
        or payload.get("c") != channel.public_id
        or not isinstance(payload.get("v"), str)
        or not _VISITOR.fullmatch(payload["v"])
    ):
        raise TokenError("token_invalid", "The visitor token is not valid here.")
    return Visitor(channel=channel, visitor_id=payload["v"])


# --- messages -----------------------------------------------------------------------------------


def _identity(visitor: Visitor) -> ContactIdentity | None:
    return ContactIdentity.objects.filter(
        channel_id=visitor.channel.pk, external_id=visitor.external_id
    ).first()


def _shown(message: Message) -> dict:
    sender = "visitor" if message.direction == Message.Direction.IN else message.sender
    return {
        "id": message.pk,
        "from": sender,
        "text": body_of(message),
        "at": message.created_at.isoformat(),
    }


def visitor_message_send(*, visitor: Visitor, text, client_id) -> tuple[dict, bool]:
    """A visitor's message into the channel's inbox: ``(message as shown, created)``.

    ``client_id`` (the widget's id for this message) makes a resend after a
    lost answer idempotent. Text is stored as text, never interpreted.
    """
    text = validation.clean_text(text, field="text", label="The message", max_length=MAX_TEXT)
    if not text.strip():
        raise ValidationError({"text": "Write a message first."})
    client_id = validation.clean_text(
        client_id, field="client_id", label="The message id", max_length=64, required=True
    )
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", client_id):
        raise ValidationError({"client_id": "Letters, digits, - and _ only."})
    inbox = getattr(visitor.channel, "inbox", None)
    if inbox is None:
        raise ValidationError({"channel": "This channel is not bound to an inbox."})
    kwargs = {
        "inbox": inbox,
        "contact_external_id": visitor.external_id,
        "contact_name": f"Web visitor {visitor.visitor_id[:6]}",
        "body": text,
        "external_id": f"{IDENTITY_PREFIX}{visitor.visitor_id}:{client_id}",
    }
    try:
        message, created = message_receive(**kwargs)
    except IntegrityError:
        # Two first messages of one new visitor raced on the identity: retry finds it.
        message, created = message_receive(**kwargs)
    # The channel works: its page shows the last event and "Working", as a
    # webhook's stored event or a delivered reply shows them for the other kinds.
    channel_event_seen(channel=visitor.channel)
    channel_health_ok(channel=visitor.channel)
    return _shown(message), created


def visitor_messages(*, visitor: Visitor, after: int = 0) -> list[dict]:
    """The visitor's messages after id ``after`` (oldest first); replies returned are
    marked delivered — this answer is their delivery."""
    identity = _identity(visitor)
    inbox = getattr(visitor.channel, "inbox", None)
    if identity is None or inbox is None:
        return []
    messages = list(
        Message.objects.filter(
            conversation__inbox_id=inbox.pk,
            conversation__contact_id=identity.contact_id,
            kind=Message.Kind.MESSAGE,  # never a private note
            pk__gt=after,
        ).order_by("pk")[:PAGE]
    )
    for message in messages:
        if message.direction == Message.Direction.OUT and message.delivery in (
            Message.Delivery.QUEUED,
            Message.Delivery.SENT,
        ):
            message_delivery_update(message=message, status=Message.Delivery.DELIVERED)
    return [_shown(m) for m in messages]


def visitor_has_news(*, visitor: Visitor, after: int) -> bool:
    """One indexed query: is there anything for :func:`visitor_messages` to return?"""
    identity = _identity(visitor)
    inbox = getattr(visitor.channel, "inbox", None)
    if identity is None or inbox is None:
        return False
    return Message.objects.filter(
        conversation__inbox_id=inbox.pk,
        conversation__contact_id=identity.contact_id,
        kind=Message.Kind.MESSAGE,
        pk__gt=after,
    ).exists()


def visitor_read(*, visitor: Visitor, up_to: int) -> int:
    """The widget showed the replies up to id ``up_to``: mark them read; how many changed."""
    identity = _identity(visitor)
    inbox = getattr(visitor.channel, "inbox", None)
    if identity is None or inbox is None:
        return 0
    unread = Message.objects.filter(
        conversation__inbox_id=inbox.pk,
        conversation__contact_id=identity.contact_id,
        kind=Message.Kind.MESSAGE,
        direction=Message.Direction.OUT,
        pk__lte=up_to,
    ).exclude(delivery__in=(Message.Delivery.READ, Message.Delivery.FAILED))[:PAGE]
    changed = 0
    for message in unread:
        message_delivery_update(message=message, status=Message.Delivery.READ)
        changed += 1
    return changed


DEMO_INBOX = "Website chat"


def webchat_demo_ensure(*, by, origin: str, members=()) -> Channel:
    """The demo's web chat (development seed): an inbox "Website chat" with ``members``,
    bound to a web chat channel that allows ``origin`` (the tenant's own host, where
    the demo page lives). Idempotent; the allowed origin follows the current port."""
    origin = origin_clean(origin)
    channel = Channel.objects.filter(kind=KIND, inbox__name=DEMO_INBOX).first()
    if channel is None:
        inbox = Inbox.objects.filter(name=DEMO_INBOX).first() or inbox_create(
            by=by, name=DEMO_INBOX
        )
        channel = webchat_channel_create(
            by=by, name=DEMO_INBOX, allowed_origins=[origin], inbox_id=inbox.pk
        )
        for user in members:
            inbox_member_add(by=by, inbox=inbox, user=user)
    elif origin not in allowed_origins_of(channel):
        channel.settings = {**(channel.settings or {}), "allowed_origins": [origin]}
        channel.save(update_fields=["settings"])
    return channel
