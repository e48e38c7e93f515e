"""The channel adapter contract: what every channel kind turns a webhook into,
what it is asked to send, and how it says a send failed.

An adapter is pure: it verifies (signature, GET challenge), parses raw bytes
into frozen values and sends through an ``http`` callable it is given. It knows
no model, no tenant and no database; the generic webhook view, the delivery
task and the channel pages (the seam) call it and store what it returns.

Failure contract, the same for every kind:

- ``parse`` raises :class:`PayloadInvalid` (with a stable ``code``) and nothing
  else, whatever the bytes. :meth:`ChannelAdapter.parse` enforces this.
- ``send`` raises :class:`DeliveryError` and nothing else; ``permanent`` says
  whether another attempt can help, ``retry_after`` when to make it.
- No exception message carries a message body, a token or a secret.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from connectors.adapters.http import HttpCall
from connectors.adapters.payload import PayloadInvalid, load_json

logger = logging.getLogger(__name__)

__all__ = [
    "MAX_BUTTONS",
    "Button",
    "ChannelAdapter",
    "ChannelError",
    "DeliveryError",
    "DeliveryResult",
    "DeliveryStatus",
    "ListRow",
    "ListSection",
    "Location",
    "Media",
    "MediaLink",
    "MessageKind",
    "OutboundMessage",
    "InboundMessage",
    "ParsedEvent",
    "PayloadInvalid",
    "Reaction",
    "SharedContact",
    "StatusUpdate",
    "Template",
]

MAX_BUTTONS = 3  # WhatsApp reply buttons; the common denominator of every kind
MAX_LIST_ROWS = 10  # WhatsApp interactive lists: at most 10 rows across all sections
MAX_TEMPLATE_JSON = 64 * 1024


# --- what a webhook becomes ----------------------------------------------------------------------


class MessageKind(StrEnum):
    TEXT = "text"
    INTERACTIVE_REPLY = "interactive_reply"  # a tapped button, list row, quick reply or postback
    MEDIA = "media"
    LOCATION = "location"
    CONTACTS = "contacts"
    REACTION = "reaction"
    UNSUPPORTED = "unsupported"  # a type this adapter does not know: kept, never an error


class DeliveryStatus(StrEnum):
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Media:
    """An attachment as the channel hands it over: an id to fetch and/or a link.

    Nothing is downloaded here; ``url`` may need the channel's token (WhatsApp)
    and expires.
    """

    type: str  # image, audio, video, document, sticker, file
    id: str = ""
    url: str = ""
    mime_type: str = ""
    caption: str = ""
    filename: str = ""
    sha256: str = ""
    size: int = 0  # bytes, when the channel says (the API channel does)


@dataclass(frozen=True, slots=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""
    url: str = ""


@dataclass(frozen=True, slots=True)
class SharedContact:
    """A contact card the customer shared (not the sender)."""

    name: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reaction:
    """An emoji on an earlier message; ``emoji == ""`` means the reaction was removed."""

    message_id: str
    emoji: str = ""

    @property
    def removed(self) -> bool:
        return not self.emoji


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a customer.

    ``external_id`` is unique per channel kind and routing key (the store's
    idempotency key: Meta's retries must create nothing twice). When the channel
    gives no id (a Messenger postback, a reaction), the adapter derives a
    deterministic one from the event, so a retried webhook yields the same id.
    """

    channel_kind: str
    # Which of our accounts it was sent to: phone_number_id, page id, IG account id.
    routing_key: str
    external_id: str
    sender_id: str  # the customer's id on the channel: wa_id, PSID, IGSID
    timestamp: datetime  # aware, UTC
    kind: MessageKind
    sender_name: str = ""  # the profile name, when the channel gives one
    text: str = ""  # text body, media caption or the tapped option's title
    reply_id: str = ""  # interactive_reply: the button/row/quick-reply id or postback payload
    reply_title: str = ""
    reply_description: str = ""
    media: tuple[Media, ...] = ()
    location: Location | None = None
    contacts: tuple[SharedContact, ...] = ()
    reaction: Reaction | None = None
    context_id: str = ""  # the message this one answers or quotes, when given
    raw_type: str = ""  # the channel's own type name (kept for unsupported messages)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A change in the delivery state of a message we sent.

    Messenger reports "read" as a watermark (every message sent up to that time
    was read): then ``external_id`` is empty and ``watermark`` is set.
    """

    channel_kind: str
    routing_key: str
    external_id: str
    status: DeliveryStatus
    timestamp: datetime
    recipient_id: str = ""
    error_code: int | None = None
    error_title: str = ""
    watermark: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChannelError:
    """An error the channel reports about the account rather than one message
    (WhatsApp ``value.errors[]``): for the channel's health page, not a message."""

    channel_kind: str
    routing_key: str
    code: int | None
    title: str = ""


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    messages: tuple[InboundMessage, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()
    errors: tuple[ChannelError, ...] = ()
    routing_keys: tuple[str, ...] = ()  # every account the batch concerns, first-seen order
    ignored: int = 0  # items of kinds that carry nothing to store (echoes, opt-ins, …)


# --- what an adapter is asked to send ------------------------------------------------------------


def _strings(value: object, *names: str) -> None:
    """Each named field is a str without NUL or lone surrogates (ValueError otherwise)."""
    for name in names:
        field_value = getattr(value, name)
        if not isinstance(field_value, str):
            raise ValueError(f"{type(value).__name__}.{name} is a string.")
        if "\x00" in field_value:
            raise ValueError(f"{type(value).__name__}.{name} contains a NUL character.")
        try:
            field_value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{type(value).__name__}.{name} contains a lone surrogate.") from None


def _tuple_of(value: object, kind: type, what: str) -> None:
    if not isinstance(value, tuple) or not all(isinstance(item, kind) for item in value):
        raise ValueError(f"{what} is a tuple of {kind.__name__}.")


@dataclass(frozen=True, slots=True)
class Button:
    id: str  # comes back as InboundMessage.reply_id when tapped
    title: str

    def __post_init__(self) -> None:
        _strings(self, "id", "title")


@dataclass(frozen=True, slots=True)
class ListRow:
    id: str
    title: str
    description: str = ""

    def __post_init__(self) -> None:
        _strings(self, "id", "title", "description")


@dataclass(frozen=True, slots=True)
class ListSection:
    title: str
    rows: tuple[ListRow, ...]

    def __post_init__(self) -> None:
        _strings(self, "title")
        _tuple_of(self.rows, ListRow, "ListSection.rows")


@dataclass(frozen=True, slots=True)
class Template:
    """A pre-approved WhatsApp template (the only way to write first or after 24 hours).

    ``components`` is the Cloud API's JSON list (header/body/button parameters), as is.
    """

    name: str
    language: str  # e.g. "en_US"
    components: tuple[Mapping[str, Any], ...] = ()

    def __post_init__(self) -> None:
        _strings(self, "name", "language")
        _tuple_of(self.components, Mapping, "Template.components")
        try:
            encoded = json.dumps([dict(c) for c in self.components], allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError("Template.components is plain JSON.") from None
        if len(encoded) > MAX_TEMPLATE_JSON:
            raise ValueError("Template.components is too large.")


@dataclass(frozen=True, slots=True)
class MediaLink:
    type: str  # image, audio, video, document (file on Messenger/Instagram)
    url: str = ""  # a public https link, or
    id: str = ""  # an id the channel already holds
    caption: str = ""
    filename: str = ""

    def __post_init__(self) -> None:
        _strings(self, "type", "url", "id", "caption", "filename")


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """One reply. Exactly one of: text (optionally with buttons or a list),
    a template, a media link (optionally with ``MediaLink.caption``).

    Construction refuses shapes no channel accepts (ValueError); each adapter
    refuses what its own channel cannot carry (DeliveryError, permanent,
    ``code="content_unsupported"``).
    """

    recipient_id: str
    text: str = ""
    buttons: tuple[Button, ...] = ()
    list_button: str = ""  # the label of the button that opens the list
    list_sections: tuple[ListSection, ...] = ()
    template: Template | None = None
    media: MediaLink | None = None
    reply_to: str = ""  # external id of the message this answers (quoted where supported)
    header: str = ""
    footer: str = ""

    def __post_init__(self) -> None:
        _strings(self, "recipient_id", "text", "list_button", "reply_to", "header", "footer")
        _tuple_of(self.buttons, Button, "OutboundMessage.buttons")
        _tuple_of(self.list_sections, ListSection, "OutboundMessage.list_sections")
        if self.template is not None and not isinstance(self.template, Template):
            raise ValueError("OutboundMessage.template is a Template.")
        if self.media is not None and not isinstance(self.media, MediaLink):
            raise ValueError("OutboundMessage.media is a MediaLink.")
        if not self.recipient_id:
            raise ValueError("An outbound message needs a recipient.")
        if len(self.buttons) > MAX_BUTTONS:
            raise ValueError(f"At most {MAX_BUTTONS} buttons.")
        if self.buttons and self.list_sections:
            raise ValueError("Buttons or a list, not both.")
        forms = sum(
            (
                self.template is not None,
                self.media is not None,
                bool(self.text or self.buttons or self.list_sections),
            )
        )
        if forms != 1:
            raise ValueError(
                "Give exactly one of: text (with buttons or a list), a template, a media link "
                "(its caption goes in MediaLink.caption)."
            )
        if (self.buttons or self.list_sections) and not self.text:
            raise ValueError("Buttons and lists need a text to go with them.")
        if self.list_sections:
            rows = sum(len(section.rows) for section in self.list_sections)
            if not 1 <= rows <= MAX_LIST_ROWS:
                raise ValueError(f"A list has 1 to {MAX_LIST_ROWS} rows.")
            if not self.list_button:
                raise ValueError("A list needs the label of the button that opens it.")
        if self.media and not (self.media.url or self.media.id):
            raise ValueError("A media link needs a URL or an id.")


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    external_id: str  # the channel's id for the sent message (status updates name it)
    recipient_id: str = ""  # the recipient as the channel normalised it (WhatsApp wa_id)


class DeliveryError(Exception):
    """A send that failed; the message says what happened without any body or secret.

    ``permanent``: another attempt of the same request cannot succeed (bad
    recipient, content refused, credentials) — mark the message failed now.
    Otherwise retry, no sooner than ``retry_after`` seconds when it is set.
    ``auth_failed``: the channel's credentials are refused — mark the channel
    unhealthy and tell the integrator. ``outside_window``: the customer last
    wrote more than 24 hours ago (WhatsApp 131047) — only a template may go.
    ``code`` is stable (see ``docs/connectors.md``); ``vendor_code`` is the
    channel's own number, when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: str = "delivery_failed",
        retry_after: float | None = None,
        auth_failed: bool = False,
        outside_window: bool = False,
        vendor_code: int | None = None,
        http_status: int | None = None,
    ):
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.auth_failed = auth_failed
        self.outside_window = outside_window
        self.vendor_code = vendor_code
        self.http_status = http_status

    def __repr__(self) -> str:
        return (
            f"DeliveryError({str(self)!r}, code={self.code!r}, permanent={self.permanent}, "
            f"vendor_code={self.vendor_code}, http_status={self.http_status})"
        )


def _media_type(mime: str) -> str:
    head = mime.split("/", 1)[0]
    return head if head in ("image", "audio", "video") else "document"


# --- the contract --------------------------------------------------------------------------------


class ChannelAdapter(ABC):
    """One channel kind. Instances are stateless and shared (one per kind, in the registry).

    ``settings`` is the channel's non-secret configuration (ids, API version,
    base URL); ``secrets`` holds its decrypted credentials for this one call
    only. Each adapter documents the keys it reads in ``SETTINGS`` and ``SECRETS``.
    """

    kind: str = ""
    label: str = ""
    SETTINGS: tuple[str, ...] = ()
    SECRETS: tuple[str, ...] = ()
    # The subset of SECRETS that :meth:`verify` reads: the webhook decrypts (and
    # audits) only these for each inbound event, never the sending token. None: all.
    VERIFY_SECRETS: tuple[str, ...] | None = None
    # The subset that :meth:`send` reads: a delivery decrypts only these. None: all.
    SEND_SECRETS: tuple[str, ...] | None = None
    # The subset that :meth:`verify_challenge` reads (a subscription handshake). None: all.
    CHALLENGE_SECRETS: tuple[str, ...] | None = None
    # The header carrying the signature: absent → 401 ``signature_missing`` before
    # any secret is decrypted. Empty: the kind has none to look for.
    signature_header: str = ""
    # True: the webhook processes the stored event in the request and answers
    # with what it stored (the API channel's contract); False: the worker does.
    answers_inline: bool = False
    # True: status updates name our own message id, not the channel's.
    status_names_our_id: bool = False
    # True: nothing is pushed; the recipient fetches replies (web chat's poll, which
    # marks them delivered). The delivery seam leaves such a reply queued: not
    # sent, not failed, not retried, and the channel's health untouched.
    PULL: bool = False
    # Sends per second per channel (the delivery seam's rate limit, shared by every
    # worker through Redis); None: PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND.
    RATE_PER_SECOND: float | None = None
    # True: ``send`` carries ``OutboundMessage(template=…)`` (WhatsApp); the delivery
    # seam fails a template reply on any other kind before calling it.
    TEMPLATES: bool = False

    def refusal(
        self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]
    ) -> tuple[str, str] | None:
        """None when :meth:`verify` passes, else ``(code, detail)`` for the 401 answer."""
        if self.verify(headers, body, secrets):
            return None
        return ("signature_invalid", "The signature does not match the body.")

    def outbound(
        self,
        *,
        recipient_id: str,
        message_id: int,
        conversation_id: int,
        body: str,
        attachments: tuple[Mapping[str, Any], ...],
        created_at: str,
        attempt: int,
    ) -> Any:
        """The value :meth:`send` takes for one stored reply: text, or the first
        attachment as a media link when there is no text. Kinds whose wire
        format carries more (the API channel) override this."""
        if body:
            return OutboundMessage(recipient_id=recipient_id, text=body)
        first = attachments[0] if attachments else {}
        return OutboundMessage(
            recipient_id=recipient_id,
            media=MediaLink(
                type=_media_type(str(first.get("type", ""))), url=str(first.get("url", ""))
            ),
        )

    def verify_challenge(self, params: Mapping[str, str], secrets: Mapping[str, str]) -> str | None:
        """A subscription handshake (GET): the text to echo, or None to refuse (403).

        Kinds without a handshake refuse every GET.
        """
        return None

    @abstractmethod
    def verify(self, headers: Mapping[str, str], body: bytes, secrets: Mapping[str, str]) -> bool:
        """Whether ``body`` (the raw bytes as received) is signed by the channel.

        ``headers`` is looked up case-insensitively by the adapter. Constant-time.
        Never raises: a missing or malformed header is False.
        """

    def parse(self, body: bytes) -> ParsedEvent:
        """Raw webhook bytes → :class:`ParsedEvent`, or :class:`PayloadInvalid`. Nothing else.

        Call only after :meth:`verify`: parsing an unsigned body wastes work on
        an attacker's input (it is safe, not useful).
        """
        try:
            document = load_json(body)
            return self.parse_document(document)
        except PayloadInvalid:
            raise
        except Exception as exc:  # noqa: BLE001 - the contract: PayloadInvalid, whatever the bytes
            # A bug in an adapter, not a property of the payload: logged by type
            # only (the body may carry PII), refused with a code tests look for.
            logger.error("%s adapter failed to parse a payload: %s", self.kind, type(exc).__name__)
            raise PayloadInvalid("payload_unreadable") from None

    @abstractmethod
    def parse_document(self, document: Any) -> ParsedEvent:
        """The decoded (already bounded and cleaned) JSON → :class:`ParsedEvent`."""

    @abstractmethod
    def send(
        self,
        message: OutboundMessage,
        settings: Mapping[str, str],
        secrets: Mapping[str, str],
        http: HttpCall,
    ) -> DeliveryResult:
        """Send one message through ``http`` (one attempt; the caller retries).

        Raises :class:`DeliveryError`, nothing else.
        """
