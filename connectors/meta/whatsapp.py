"""WhatsApp Cloud API: webhooks (``object: whatsapp_business_account``) and sends.

Inbound: ``entry[].changes[]`` with ``field: messages``; ``value.metadata.phone_number_id``
is the routing key, ``value.contacts[]`` names senders, ``value.messages[]`` are
customer messages, ``value.statuses[]`` delivery changes of ours, ``value.errors[]``
account-level errors. Outbound: ``POST /{version}/{phone_number_id}/messages``.

Settings: ``phone_number_id`` (required to send), ``graph_base_url``, ``api_version``.
Secrets: ``app_secret``, ``verify_token``, ``access_token``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from connectors.adapters.base import (
    ChannelError,
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
    SharedContact,
    StatusUpdate,
)
from connectors.adapters.http import HttpCall
from connectors.adapters.payload import (
    PayloadInvalid,
    coordinate,
    ident,
    integer,
    items,
    label,
    obj,
    optional_obj,
    text,
    timestamp,
)
from connectors.meta import common

KIND = "whatsapp"
MEDIA_TYPES = ("image", "audio", "video", "document", "sticker")
CAPTIONED = ("image", "video", "document")
_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")

# Cloud API limits (characters), checked before sending: Meta's own refusal would
# cost an attempt and say less.
TEXT_LIMIT = 4096
INTERACTIVE_BODY_LIMIT = 1024
BUTTON_TITLE_LIMIT = 20
BUTTON_ID_LIMIT = 256
HEADER_LIMIT = 60
FOOTER_LIMIT = 60
LIST_BUTTON_LIMIT = 20
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
SECTION_TITLE_LIMIT = 24
ROW_ID_LIMIT = 200
CAPTION_LIMIT = 1024


def _type_name(value: Any) -> str:
    return value if isinstance(value, str) and _TYPE.fullmatch(value) else "unknown"


class WhatsAppAdapter(common.MetaAdapter):
    kind = KIND
    label = "WhatsApp"
    # reengagement_template / reengagement_language: the approved template the inbox
    # offers after a 131047 (outside the 24-hour window), e.g. "hello_world", "en_US".
    SETTINGS = (
        "phone_number_id",
        "graph_base_url",
        "api_version",
        "meta_app",
        "reengagement_template",
        "reengagement_language",
    )
    TEMPLATES = True
    # Cloud API throughput: 80 messages per second per business phone number by default.
    RATE_PER_SECOND = 80.0

    # --- inbound ---------------------------------------------------------------------------------

    def parse_document(self, document: Any) -> ParsedEvent:
        document = obj(document, "payload_invalid")
        if document.get("object") != "whatsapp_business_account":
            raise PayloadInvalid("object_unexpected", "Not a WhatsApp Business Account event.")
        builder = common.EventBuilder()
        for entry in items(document.get("entry"), "entry_invalid", limit=common.MAX_ENTRIES):
            entry = obj(entry, "entry_invalid")
            ident(entry.get("id"), "entry_invalid", required=False)
            for change in items(entry.get("changes"), "change_invalid", limit=common.MAX_ITEMS):
                change = obj(change, "change_invalid")
                if change.get("field") != "messages":
                    builder.skip()  # account, template and quality updates: not messages
                    continue
                self._change(obj(change.get("value"), "change_invalid"), builder)
        return builder.event()

    def _change(self, value: dict[str, Any], builder: common.EventBuilder) -> None:
        metadata = obj(value.get("metadata"), "metadata_invalid")
        routing = ident(metadata.get("phone_number_id"), "routing_key_invalid")
        builder.route(routing)
        names: dict[str, str] = {}
        for contact in items(value.get("contacts"), "contact_invalid", limit=common.MAX_ITEMS):
            contact = obj(contact, "contact_invalid")
            wa_id = ident(contact.get("wa_id"), "contact_invalid", required=False)
            if wa_id:
                names[wa_id] = label(
                    optional_obj(contact.get("profile"), "contact_invalid").get("name")
                )
        for message in items(value.get("messages"), "message_invalid", limit=common.MAX_ITEMS):
            builder.message(self._message(obj(message, "message_invalid"), routing, names))
        for status in items(value.get("statuses"), "status_invalid", limit=common.MAX_ITEMS):
            update = self._status(obj(status, "status_invalid"), routing)
            if update is None:
                builder.skip()
            else:
                builder.status(update)
        for error in items(value.get("errors"), "error_invalid", limit=common.MAX_ITEMS):
            error = obj(error, "error_invalid")
            builder.error(
                ChannelError(
                    channel_kind=KIND,
                    routing_key=routing,
                    code=integer(error.get("code")),
                    title=label(error.get("title"), limit=300),
                )
            )

    def _message(self, m: dict[str, Any], routing: str, names: dict[str, str]) -> InboundMessage:
        sender = ident(m.get("from"), "sender_invalid")
        raw_type = _type_name(m.get("type"))
        context = optional_obj(m.get("context"), "context_invalid")
        base: dict[str, Any] = {
            "channel_kind": KIND,
            "routing_key": routing,
            "external_id": ident(m.get("id"), "message_id_invalid"),
            "sender_id": sender,
            "sender_name": names.get(sender, ""),
            "timestamp": timestamp(m.get("timestamp"), "timestamp_invalid"),
            "context_id": ident(context.get("id"), "context_invalid", required=False),
            "raw_type": raw_type,
        }
        if raw_type == "text":
            body = text(obj(m.get("text"), "text_invalid").get("body"), "text_invalid")
            return InboundMessage(kind=MessageKind.TEXT, text=body, **base)
        if raw_type == "interactive":
            interactive = obj(m.get("interactive"), "interactive_invalid")
            subtype = _type_name(interactive.get("type"))
            if subtype in ("button_reply", "list_reply"):
                reply = obj(interactive.get(subtype), "interactive_invalid")
                title = text(reply.get("title"), "interactive_invalid", limit=1024)
                return InboundMessage(
                    kind=MessageKind.INTERACTIVE_REPLY,
                    reply_id=text(reply.get("id"), "interactive_invalid", limit=1024),
                    reply_title=title,
                    reply_description=text(
                        reply.get("description"), "interactive_invalid", limit=1024
                    ),
                    text=title,
                    **{**base, "raw_type": f"interactive.{subtype}"},
                )
            return InboundMessage(
                kind=MessageKind.UNSUPPORTED, **{**base, "raw_type": f"interactive.{subtype}"}
            )
        if raw_type == "button":
            # A tapped quick-reply button of a template message.
            button = obj(m.get("button"), "interactive_invalid")
            title = text(button.get("text"), "interactive_invalid", limit=1024)
            return InboundMessage(
                kind=MessageKind.INTERACTIVE_REPLY,
                reply_id=text(button.get("payload"), "interactive_invalid", limit=1024),
                reply_title=title,
                text=title,
                **base,
            )
        if raw_type in MEDIA_TYPES:
            media = self._media(raw_type, obj(m.get(raw_type), "media_invalid"))
            return InboundMessage(
                kind=MessageKind.MEDIA, media=(media,), text=media.caption, **base
            )
        if raw_type == "location":
            place = obj(m.get("location"), "location_invalid")
            location = Location(
                latitude=coordinate(place.get("latitude"), "location_invalid", bound=90),
                longitude=coordinate(place.get("longitude"), "location_invalid", bound=180),
                name=text(place.get("name"), "location_invalid", limit=1024),
                address=text(place.get("address"), "location_invalid", limit=1024),
                url=text(place.get("url"), "location_invalid", limit=2048),
            )
            return InboundMessage(kind=MessageKind.LOCATION, location=location, **base)
        if raw_type == "contacts":
            cards = items(m.get("contacts"), "contacts_invalid", limit=100)
            return InboundMessage(
                kind=MessageKind.CONTACTS,
                contacts=tuple(self._card(obj(card, "contacts_invalid")) for card in cards),
                **base,
            )
        if raw_type == "reaction":
            reaction = obj(m.get("reaction"), "reaction_invalid")
            return InboundMessage(
                kind=MessageKind.REACTION,
                reaction=Reaction(
                    message_id=ident(reaction.get("message_id"), "reaction_invalid"),
                    # No emoji: the customer removed their reaction.
                    emoji=text(reaction.get("emoji"), "reaction_invalid", limit=32),
                ),
                **base,
            )
        # "unsupported", "system", "order", "request_welcome", tomorrow's types: kept, not refused.
        return InboundMessage(kind=MessageKind.UNSUPPORTED, **base)

    @staticmethod
    def _media(kind: str, media: dict[str, Any]) -> Media:
        result = Media(
            type=kind,
            id=ident(media.get("id"), "media_invalid", required=False),
            url=text(media.get("url"), "media_invalid", limit=4096),
            mime_type=label(media.get("mime_type"), limit=128),
            caption=text(media.get("caption"), "media_invalid", limit=4096),
            filename=label(media.get("filename"), limit=255),
            sha256=label(media.get("sha256"), limit=128),
        )
        if not (result.id or result.url):
            raise PayloadInvalid("media_invalid", "A media item has neither id nor link.")
        return result

    @staticmethod
    def _card(card: dict[str, Any]) -> SharedContact:
        name = optional_obj(card.get("name"), "contacts_invalid")
        phones = items(card.get("phones"), "contacts_invalid", limit=20)
        emails = items(card.get("emails"), "contacts_invalid", limit=20)
        return SharedContact(
            name=label(name.get("formatted_name") or name.get("first_name")),
            phones=tuple(
                p
                for p in (
                    label(optional_obj(x, "contacts_invalid").get("phone"), limit=64)
                    for x in phones
                )
                if p
            ),
            emails=tuple(
                e
                for e in (
                    label(optional_obj(x, "contacts_invalid").get("email"), limit=254)
                    for x in emails
                )
                if e
            ),
        )

    @staticmethod
    def _status(s: dict[str, Any], routing: str) -> StatusUpdate | None:
        status = s.get("status")
        if not isinstance(status, str) or status not in DeliveryStatus._value2member_map_:
            return None  # "deleted", "warning", …: nothing a delivery row records
        errors = items(s.get("errors"), "status_invalid", limit=16)
        first = obj(errors[0], "status_invalid") if errors else {}
        return StatusUpdate(
            channel_kind=KIND,
            routing_key=routing,
            external_id=ident(s.get("id"), "status_invalid"),
            status=DeliveryStatus(status),
            timestamp=timestamp(s.get("timestamp"), "timestamp_invalid"),
            recipient_id=ident(s.get("recipient_id"), "status_invalid", required=False),
            error_code=integer(first.get("code")),
            error_title=label(first.get("title"), limit=300),
        )

    # --- outbound --------------------------------------------------------------------------------

    def send(
        self,
        message: OutboundMessage,
        settings: Mapping[str, str],
        secrets: Mapping[str, str],
        http: HttpCall,
    ) -> DeliveryResult:
        phone_number_id = common.path_id(settings.get("phone_number_id"), "phone_number_id")
        url = common.graph_url(settings, f"{phone_number_id}/messages")
        authorization = common.bearer(secrets)
        answer = common.graph_post(
            http,
            url,
            body=self.request_body(message),
            authorization=authorization,
            purpose="whatsapp.send",
        )
        sent = answer.get("messages")
        external_id = (
            common.answer_id(sent[0].get("id"))
            if isinstance(sent, list) and sent and isinstance(sent[0], dict)
            else ""
        )
        if not external_id:
            raise DeliveryError(
                "The Graph API accepted the message but named no id.",
                permanent=True,
                code="response_invalid",
            )
        contacts = answer.get("contacts")
        wa_id = (
            common.answer_id(contacts[0].get("wa_id"))
            if isinstance(contacts, list) and contacts and isinstance(contacts[0], dict)
            else ""
        )
        return DeliveryResult(external_id=external_id, recipient_id=wa_id)

    @staticmethod
    def request_body(message: OutboundMessage) -> dict[str, Any]:
        """The Cloud API request for ``message`` (see tests/fixtures/meta/wa_send_*)."""
        _check(message.recipient_id, 1, 256, "recipient")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.recipient_id,
        }
        if message.reply_to:
            body["context"] = {"message_id": message.reply_to}
        if message.template is not None:
            template = message.template
            _check(template.name, 1, 512, "template name")
            _check(template.language, 2, 15, "template language")
            payload: dict[str, Any] = {
                "name": template.name,
                "language": {"code": template.language},
            }
            if template.components:
                payload["components"] = [dict(component) for component in template.components]
            body.update(type="template", template=payload)
        elif message.media is not None:
            media = message.media
            if media.type not in ("image", "audio", "video", "document", "sticker"):
                raise common.content_error(
                    "WhatsApp sends image, audio, video, document or sticker media."
                )
            item: dict[str, Any] = {"id": media.id} if media.id else {"link": media.url}
            if media.caption:
                if media.type not in CAPTIONED:
                    raise common.content_error(f"WhatsApp {media.type} media carries no caption.")
                item["caption"] = _check(media.caption, 1, CAPTION_LIMIT, "caption")
            if media.filename and media.type == "document":
                item["filename"] = _check(media.filename, 1, 240, "file name")
            body.update(type=media.type, **{media.type: item})
        elif message.buttons or message.list_sections:
            interactive: dict[str, Any] = {
                "body": {"text": _check(message.text, 1, INTERACTIVE_BODY_LIMIT, "text")}
            }
            if message.header:
                interactive["header"] = {
                    "type": "text",
                    "text": _check(message.header, 1, HEADER_LIMIT, "header"),
                }
            if message.footer:
                interactive["footer"] = {"text": _check(message.footer, 1, FOOTER_LIMIT, "footer")}
            if message.buttons:
                interactive["type"] = "button"
                interactive["action"] = {
                    "buttons": [
                        {
                            "type": "reply",
                            "reply": {
                                "id": _check(b.id, 1, BUTTON_ID_LIMIT, "button id"),
                                "title": _check(b.title, 1, BUTTON_TITLE_LIMIT, "button title"),
                            },
                        }
                        for b in message.buttons
                    ]
                }
            else:
                interactive["type"] = "list"
                interactive["action"] = {
                    "button": _check(message.list_button, 1, LIST_BUTTON_LIMIT, "list button"),
                    "sections": [_section(section) for section in message.list_sections],
                }
            body.update(type="interactive", interactive=interactive)
        else:
            if message.header or message.footer:
                raise common.content_error(
                    "A header or footer needs buttons or a list on WhatsApp."
                )
            body.update(
                type="text",
                text={"preview_url": False, "body": _check(message.text, 1, TEXT_LIMIT, "text")},
            )
        return body


def _check(value: str, low: int, high: int, what: str) -> str:
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise common.content_error(f"The {what} must be {low} to {high} characters for WhatsApp.")
    return value


def _section(section: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "rows": [
            {
                "id": _check(row.id, 1, ROW_ID_LIMIT, "row id"),
                "title": _check(row.title, 1, ROW_TITLE_LIMIT, "row title"),
                **(
                    {
                        "description": _check(
                            row.description, 1, ROW_DESCRIPTION_LIMIT, "row description"
                        )
                    }
                    if row.description
                    else {}
                ),
            }
            for row in section.rows
        ]
    }
    if section.title:
        payload = {
            "title": _check(section.title, 1, SECTION_TITLE_LIMIT, "section title"),
            **payload,
        }
    return payload
