"""Messenger Platform webhooks (``object: page``) and the Send API; the shared
base of Messenger and Instagram messaging, which speak the same ``messaging[]``
dialect.

Inbound: ``entry[].id`` (the page, or the Instagram account) is the routing key;
each ``entry[].messaging[]`` item carries ``sender``, ``recipient``, ``timestamp``
(milliseconds) and one of ``message`` (text, quick reply, attachments,
``reply_to``; ``is_echo`` copies of our own sends are ignored), ``postback``,
``reaction``, ``delivery`` (``mids`` and/or a ``watermark``) or ``read``.
Other items (opt-ins, referrals, hand-overs, ``standby``) are counted as ignored.
Postbacks and reactions carry no message id of their own: a deterministic one
is derived from the event (``common.derived_id``) so Meta's retries dedupe.

Outbound: ``POST /{version}/{account_id}/messages`` (``/me/messages`` when no
account id is configured) with ``recipient.id``, ``messaging_type: RESPONSE`` and
``message``; buttons and list rows become quick replies; templates are
WhatsApp's only (``content_unsupported``).

Settings: ``page_id`` (Messenger) or ``account_id`` (Instagram), ``graph_base_url``,
``api_version``. Secrets: ``app_secret``, ``verify_token``, ``access_token`` (page token).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from connectors.adapters.base import (
    DeliveryError,
    DeliveryResult,
    DeliveryStatus,
    InboundMessage,
    Location,
    Media,
    MessageKind,
    OutboundMessage,
    ParsedEvent,
    Reaction,
    StatusUpdate,
)
from connectors.adapters.http import HttpCall
from connectors.adapters.payload import (
    PayloadInvalid,
    coordinate,
    ident,
    items,
    obj,
    optional_obj,
    text,
    timestamp,
)
from connectors.meta import common

ATTACHMENT_TYPES = ("image", "video", "audio", "file")
MAX_ATTACHMENTS = 20
MAX_QUICK_REPLIES = 13
QUICK_REPLY_TITLE_LIMIT = 20
PAYLOAD_LIMIT = 1000


class PageMessagingAdapter(common.MetaAdapter):
    """Messenger and Instagram: same envelope, different ``object``, id setting and limits."""

    object_name = "page"
    account_setting = "page_id"
    text_limit = 2000
    send_media_types: tuple[str, ...] = ATTACHMENT_TYPES

    # --- inbound ---------------------------------------------------------------------------------

    def parse_document(self, document: Any) -> ParsedEvent:
        document = obj(document, "payload_invalid")
        if document.get("object") != self.object_name:
            raise PayloadInvalid("object_unexpected", f"Not a {self.label} event.")
        builder = common.EventBuilder()
        for entry in items(document.get("entry"), "entry_invalid", limit=common.MAX_ENTRIES):
            entry = obj(entry, "entry_invalid")
            routing = ident(entry.get("id"), "routing_key_invalid")
            builder.route(routing)
            for event in items(entry.get("messaging"), "messaging_invalid", limit=common.MAX_ITEMS):
                self._event(obj(event, "messaging_invalid"), routing, builder)
            for _ in items(entry.get("standby"), "messaging_invalid", limit=common.MAX_ITEMS):
                builder.skip()  # another app owns the thread (hand-over protocol)
            for _ in items(entry.get("changes"), "change_invalid", limit=common.MAX_ITEMS):
                builder.skip()  # feed, comments, mentions: not messaging
        return builder.event()

    def _event(self, event: dict[str, Any], routing: str, builder: common.EventBuilder) -> None:
        sender = ident(
            optional_obj(event.get("sender"), "sender_invalid").get("id"), "sender_invalid"
        )
        recipient = ident(
            optional_obj(event.get("recipient"), "recipient_invalid").get("id"),
            "recipient_invalid",
            required=False,
        )
        raw_time = event.get("timestamp")
        when = timestamp(raw_time, "timestamp_invalid", millis=True)
        base: dict[str, Any] = {
            "channel_kind": self.kind,
            "routing_key": routing,
            "sender_id": sender,
            "timestamp": when,
        }
        if "message" in event:
            message = obj(event.get("message"), "message_invalid")
            if message.get("is_echo") is True:
                builder.skip()  # a copy of what the page sent (by us or another app)
                return
            builder.message(self._message(message, base))
        elif "postback" in event:
            postback = obj(event.get("postback"), "postback_invalid")
            payload = text(postback.get("payload"), "postback_invalid", limit=PAYLOAD_LIMIT)
            title = text(postback.get("title"), "postback_invalid", limit=PAYLOAD_LIMIT)
            external_id = ident(
                postback.get("mid"), "postback_invalid", required=False
            ) or common.derived_id("postback", routing, sender, str(raw_time), payload)
            builder.message(
                InboundMessage(
                    kind=MessageKind.INTERACTIVE_REPLY,
                    external_id=external_id,
                    reply_id=payload,
                    reply_title=title,
                    text=title,
                    raw_type="postback",
                    **base,
                )
            )
        elif "reaction" in event:
            reaction = obj(event.get("reaction"), "reaction_invalid")
            target = ident(reaction.get("mid"), "reaction_invalid")
            action = reaction.get("action")
            emoji = ""
            if action == "react":
                emoji = text(reaction.get("emoji"), "reaction_invalid", limit=32) or text(
                    reaction.get("reaction"), "reaction_invalid", limit=32
                )
            builder.message(
                InboundMessage(
                    kind=MessageKind.REACTION,
                    external_id=common.derived_id(
                        "reaction", routing, sender, str(raw_time), target, str(action)
                    ),
                    reaction=Reaction(message_id=target, emoji=emoji),
                    raw_type="reaction",
                    **base,
                )
            )
        elif "delivery" in event:
            delivery = obj(event.get("delivery"), "delivery_invalid")
            watermark = self._watermark(delivery)
            mids = items(delivery.get("mids"), "delivery_invalid", limit=common.MAX_ITEMS)
            for mid in mids:
                builder.status(
                    self._status(
                        DeliveryStatus.DELIVERED,
                        routing,
                        when,
                        sender,
                        ident(mid, "delivery_invalid"),
                        watermark,
                    )
                )
            if not mids:
                if watermark is None:
                    raise PayloadInvalid(
                        "delivery_invalid", "A delivery names no message and no watermark."
                    )
                builder.status(
                    self._status(DeliveryStatus.DELIVERED, routing, when, sender, "", watermark)
                )
        elif "read" in event:
            read = obj(event.get("read"), "read_invalid")
            mid = ident(
                read.get("mid"), "read_invalid", required=False
            )  # Instagram names the message
            watermark = self._watermark(read)
            if not mid and watermark is None:
                raise PayloadInvalid(
                    "read_invalid", "A read receipt names no message and no watermark."
                )
            builder.status(self._status(DeliveryStatus.READ, routing, when, sender, mid, watermark))
        else:
            builder.skip()
        del recipient  # checked for shape only: the entry id routes

    @staticmethod
    def _watermark(item: dict[str, Any]) -> datetime | None:
        value = item.get("watermark")
        return None if value is None else timestamp(value, "timestamp_invalid", millis=True)

    def _status(
        self,
        status: DeliveryStatus,
        routing: str,
        when: datetime,
        recipient: str,
        external_id: str,
        watermark: datetime | None,
    ) -> StatusUpdate:
        return StatusUpdate(
            channel_kind=self.kind,
            routing_key=routing,
            external_id=external_id,
            status=status,
            timestamp=when,
            recipient_id=recipient,  # the customer, who sent the receipt
            watermark=watermark,
        )

    def _message(self, message: dict[str, Any], base: dict[str, Any]) -> InboundMessage:
        base = {
            **base,
            "external_id": ident(message.get("mid"), "message_id_invalid"),
            "context_id": ident(
                optional_obj(message.get("reply_to"), "message_invalid").get("mid"),
                "message_invalid",
                required=False,
            ),
        }
        body = text(message.get("text"), "text_invalid")
        if message.get("is_deleted") is True:
            return InboundMessage(kind=MessageKind.UNSUPPORTED, raw_type="deleted", **base)
        quick_reply = optional_obj(message.get("quick_reply"), "quick_reply_invalid")
        if quick_reply:
            return InboundMessage(
                kind=MessageKind.INTERACTIVE_REPLY,
                reply_id=text(
                    quick_reply.get("payload"), "quick_reply_invalid", limit=PAYLOAD_LIMIT
                ),
                reply_title=body,
                text=body,
                raw_type="quick_reply",
                **base,
            )
        attachments = items(message.get("attachments"), "attachment_invalid", limit=MAX_ATTACHMENTS)
        media: list[Media] = []
        other = ""
        for attachment in attachments:
            attachment = obj(attachment, "attachment_invalid")
            kind = attachment.get("type")
            payload = optional_obj(attachment.get("payload"), "attachment_invalid")
            if kind == "location":
                coordinates = obj(payload.get("coordinates"), "location_invalid")
                location = Location(
                    latitude=coordinate(coordinates.get("lat"), "location_invalid", bound=90),
                    longitude=coordinate(coordinates.get("long"), "location_invalid", bound=180),
                    name=text(attachment.get("title"), "location_invalid", limit=1024),
                    url=text(
                        payload.get("url") or attachment.get("url"), "location_invalid", limit=4096
                    ),
                )
                return InboundMessage(
                    kind=MessageKind.LOCATION,
                    location=location,
                    raw_type="location",
                    text=body,
                    **base,
                )
            if kind in ATTACHMENT_TYPES:
                item = Media(
                    type=kind,
                    url=text(payload.get("url"), "attachment_invalid", limit=4096),
                    id=ident(
                        payload.get("attachment_id") or payload.get("sticker_id"),
                        "attachment_invalid",
                        required=False,
                    ),
                )
                if not (item.url or item.id):
                    raise PayloadInvalid(
                        "attachment_invalid", "An attachment has neither link nor id."
                    )
                media.append(item)
            elif not other:
                other = (
                    kind
                    if isinstance(kind, str)
                    and kind.isascii()
                    and kind.isidentifier()
                    and len(kind) <= 32
                    else "unknown"
                )
        if media:
            return InboundMessage(
                kind=MessageKind.MEDIA,
                media=tuple(media),
                text=body,
                raw_type="attachments",
                **base,
            )
        if other:
            # share, story_mention, ig_reel, template, fallback: kept, not understood.
            return InboundMessage(kind=MessageKind.UNSUPPORTED, text=body, raw_type=other, **base)
        if body:
            return InboundMessage(kind=MessageKind.TEXT, text=body, raw_type="text", **base)
        return InboundMessage(kind=MessageKind.UNSUPPORTED, raw_type="message", **base)

    # --- outbound --------------------------------------------------------------------------------

    def send(
        self,
        message: OutboundMessage,
        settings: Mapping[str, str],
        secrets: Mapping[str, str],
        http: HttpCall,
    ) -> DeliveryResult:
        account = settings.get(self.account_setting)
        path = (
            f"{common.path_id(account, self.account_setting)}/messages"
            if account
            else "me/messages"
        )
        url = common.graph_url(settings, path)
        authorization = common.bearer(secrets)
        answer = common.graph_post(
            http,
            url,
            body=self.request_body(message),
            authorization=authorization,
            purpose=f"{self.kind}.send",
        )
        external_id = common.answer_id(answer.get("message_id"))
        if not external_id:
            raise DeliveryError(
                "The Graph API accepted the message but named no id.",
                permanent=True,
                code="response_invalid",
            )
        return DeliveryResult(
            external_id=external_id, recipient_id=common.answer_id(answer.get("recipient_id"))
        )

    def request_body(self, message: OutboundMessage) -> dict[str, Any]:
        """The Send API request for ``message``."""
        if message.template is not None:
            raise DeliveryError(
                f"{self.label} has no WhatsApp-style templates.",
                permanent=True,
                code="content_unsupported",
            )
        if message.header or message.footer:
            raise DeliveryError(
                f"{self.label} messages have no header or footer.",
                permanent=True,
                code="content_unsupported",
            )
        if not 1 <= len(message.recipient_id) <= 256:
            raise common.content_error("The recipient id is 1 to 256 characters.")
        payload: dict[str, Any]
        if message.media is not None:
            media = message.media
            if media.caption:
                raise DeliveryError(
                    f"{self.label} attachments carry no caption: send the text separately.",
                    permanent=True,
                    code="content_unsupported",
                )
            kind = "file" if media.type == "document" else media.type
            if kind not in self.send_media_types:
                raise common.content_error(
                    f"{self.label} sends {', '.join(self.send_media_types)} attachments."
                )
            source = (
                {"attachment_id": media.id}
                if media.id
                else {"url": media.url, "is_reusable": False}
            )
            payload = {"attachment": {"type": kind, "payload": source}}
        else:
            if not 1 <= len(message.text) <= self.text_limit:
                raise common.content_error(
                    f"The text must be 1 to {self.text_limit} characters for {self.label}."
                )
            payload = {"text": message.text}
            options = [(b.id, b.title) for b in message.buttons] or [
                (row.id, row.title) for section in message.list_sections for row in section.rows
            ]
            if options:
                if len(options) > MAX_QUICK_REPLIES:
                    raise common.content_error(f"At most {MAX_QUICK_REPLIES} quick replies.")
                for option_id, title in options:
                    if (
                        not 1 <= len(title) <= QUICK_REPLY_TITLE_LIMIT
                        or not 1 <= len(option_id) <= PAYLOAD_LIMIT
                    ):
                        raise common.content_error(
                            f"Quick reply titles are 1 to {QUICK_REPLY_TITLE_LIMIT} characters, "
                            f"payloads 1 to {PAYLOAD_LIMIT}."
                        )
                payload["quick_replies"] = [
                    {"content_type": "text", "title": title, "payload": option_id}
                    for option_id, title in options
                ]
        return {
            "recipient": {"id": message.recipient_id},
            "messaging_type": "RESPONSE",
            "message": payload,
        }


class MessengerAdapter(PageMessagingAdapter):
    kind = "messenger"
    label = "Messenger"
    object_name = "page"
    account_setting = "page_id"
    text_limit = 2000
    SETTINGS = ("page_id", "graph_base_url", "api_version", "meta_app")
